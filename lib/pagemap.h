/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the page map, page of the exported device -> its copies'
 * global slots.
 *
 * copies (1 to PAGEMAP_COPIES_MAX) 32-bit entries per page, those of one
 * page side by side, in an anonymous mapping: pages of the map that were
 * never written cost no memory.  Entry c of a page is SLOT_NONE (no copy
 * c), SLOT_LOST or a slot.  A page is
 *   unmapped  when all its entries are SLOT_NONE (it reads as zeroes);
 *   mapped    when at least one entry is a slot (its data is there), and
 *             degraded if fewer than copies are;
 *   lost      when none is a slot and one is SLOT_LOST (its last copy
 *             failed to read: reads fail until it is written or trimmed).
 * Every copy of a mapped page holds the same bytes.  Entries are read
 * and written atomically; callers order related updates with the range
 * lock.  With locked memory, pagemap_prefault makes the whole map
 * resident up front.
 */

#ifndef SWAPTIER_PAGEMAP_H
#define SWAPTIER_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

#define PAGEMAP_COPIES_MAX 3

struct pagemap;

/* A map of npages pages of copies entries each, all unmapped.  NULL
 * after log_error on failure.
 */
extern struct pagemap *pagemap_create (uint64_t npages, unsigned copies);

extern void pagemap_destroy (struct pagemap *map);

extern uint64_t pagemap_npages (const struct pagemap *map);
extern unsigned pagemap_copies (const struct pagemap *map);

/* Entry c (c < copies) of a page (page < npages). */
extern slot_t pagemap_get (const struct pagemap *map, uint64_t page,
                           unsigned c);

/* Replace entry c of a page and return the old one. */
extern slot_t pagemap_set (struct pagemap *map, uint64_t page, unsigned c,
                           slot_t entry);

/* Replace entry c of a page only if it still equals expected. */
extern bool pagemap_replace (struct pagemap *map, uint64_t page, unsigned c,
                             slot_t expected, slot_t entry);

/* How many entries of a page are slots (its live copies). */
extern unsigned pagemap_live (const struct pagemap *map, uint64_t page);

/* Whether a page is unmapped (every entry SLOT_NONE). */
extern bool pagemap_unmapped (const struct pagemap *map, uint64_t page);

/* Fault in every page of the map (see swapsafe.h). */
extern void pagemap_prefault (struct pagemap *map);

/* Bytes of address space the map reserves (4 per page and copy). */
extern size_t pagemap_memory (const struct pagemap *map);

#endif /* SWAPTIER_PAGEMAP_H */
