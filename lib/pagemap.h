/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the page map, page of the exported device -> global slot.
 *
 * One 32-bit entry per page (SLOT_NONE, SLOT_LOST or a slot), in an
 * anonymous mapping: pages of the map that were never written cost no
 * memory.  Entries are
 * read and written atomically; callers order related updates with the
 * range lock.  With locked memory, pagemap_prefault makes the whole map
 * resident up front.
 */

#ifndef SWAPTIER_PAGEMAP_H
#define SWAPTIER_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

struct pagemap;

/* A map of npages pages, all unmapped.  NULL after log_error on failure. */
extern struct pagemap *pagemap_create (uint64_t npages);

extern void pagemap_destroy (struct pagemap *map);

extern uint64_t pagemap_npages (const struct pagemap *map);

/* The entry of a page (page < npages). */
extern slot_t pagemap_get (const struct pagemap *map, uint64_t page);

/* Replace the entry of a page and return the old one. */
extern slot_t pagemap_set (struct pagemap *map, uint64_t page, slot_t entry);

/* Replace the entry of a page only if it still equals expected. */
extern bool pagemap_replace (struct pagemap *map, uint64_t page,
                             slot_t expected, slot_t entry);

/* Fault in every page of the map (see swapsafe.h). */
extern void pagemap_prefault (struct pagemap *map);

/* Bytes of address space the map reserves (4 per page). */
extern size_t pagemap_memory (const struct pagemap *map);

#endif /* SWAPTIER_PAGEMAP_H */
