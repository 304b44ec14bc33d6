/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the age map, how long ago each page of the device was last
 * written or read by a client.
 *
 * One byte per page, in an anonymous mapping like the page map's: bit 7
 * says the page was read since it was last written (the measure of
 * whether promoting pages read again would pay), bits 0-6 hold the
 * epoch, modulo 128, of its last access.  The epoch is a counter that
 * agemap_tick advances (the demoter ticks once a second).  A page's age
 * is the number of ticks since its last access:
 *
 *     age = (epoch - stored) mod 128, at most AGEMAP_AGE_MAX
 *
 * Without care an old page would wrap around and look new, so every
 * AGEMAP_CLAMP_TICKS ticks agemap_tick walks the map and rewrites the
 * pages older than AGEMAP_AGE_MAX as exactly that old.  A page is then
 * never older than AGEMAP_AGE_MAX + AGEMAP_CLAMP_TICKS < 128 ticks when
 * read, which keeps the arithmetic exact; the ages above AGEMAP_AGE_MAX
 * are reported as AGEMAP_AGE_MAX, so every page untouched for that long
 * counts as equally cold.
 *
 * The request path updates a page with one relaxed load and, only when
 * the byte changes, one relaxed store: no lock, and no cache line is
 * dirtied for a page touched again in the same tick.  The walk's rewrite
 * is a compare-and-swap, so an access racing with it wins.  Pages that
 * were never accessed read as age 0 but are unmapped, so no one asks.
 */

#ifndef SWAPTIER_AGEMAP_H
#define SWAPTIER_AGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGEMAP_AGE_MAX 64              /* ticks: older counts as this */
#define AGEMAP_CLAMP_TICKS 32          /* ticks between clamping walks */

struct agemap;

/* An age map of npages pages.  NULL after log_error on failure. */
extern struct agemap *agemap_create (uint64_t npages);

extern void agemap_destroy (struct agemap *am);

/* Pages [page, page+n) were written: age 0, not read since. */
extern void agemap_written (struct agemap *am, uint64_t page, uint64_t n);

/* A page was read: age 0.  Returns whether it had been read already
 * since it was last written (a re-read).
 */
extern bool agemap_read (struct agemap *am, uint64_t page);

/* Ticks since a page was last accessed, 0 .. AGEMAP_AGE_MAX. */
extern unsigned agemap_age (const struct agemap *am, uint64_t page);

/* One tick has passed; every AGEMAP_CLAMP_TICKS ticks this also walks
 * the whole map (one pass over a byte per page).  Called from one
 * thread only.
 */
extern void agemap_tick (struct agemap *am);

/* Fault in every page of the map (see swapsafe.h). */
extern void agemap_prefault (struct agemap *am);

/* Bytes of address space the map reserves (1 per page). */
extern size_t agemap_memory (const struct agemap *am);

#endif /* SWAPTIER_AGEMAP_H */
