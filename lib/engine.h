/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine, NBD-style requests over the page map and tiers.
 *
 * The exported device is npages pages.  Reads of unmapped pages return
 * zeroes, reads of LOST pages fail with EIO.  A write allocates new slots
 * (one run per stripe unit where the allocator can), writes them, then
 * publishes the mapping and frees the old slots, so a page always has a
 * complete copy.  Trim and zero unmap whole pages and free their slots.
 * Requests on overlapping pages are ordered by a range lock; at most
 * ENGINE_REQUESTS run at once, each with its own preallocated bounce
 * buffer for unaligned and partial-page data, and nothing on the request
 * path allocates memory.
 *
 * Every function returns 0, or -1 with errno set after log_error.
 */

#ifndef SWAPTIER_ENGINE_H
#define SWAPTIER_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "tierset.h"

#define ENGINE_REQUESTS 32             /* requests in flight at once */
#define ENGINE_STRIPE_MAX 256          /* largest stripe unit, pages */
#define ENGINE_READ_TRIES 3            /* reads of a slot before its page
                                          is declared LOST */

struct engine;

/* Called by engine_extents for each extent, in order. */
typedef int (*engine_extent_fn) (void *opaque, uint64_t offset,
                                 uint64_t length, bool hole);

/* An engine exporting npages pages over the tier set ts (which the caller
 * keeps and frees after the engine), with a stripe unit of stripe pages
 * (1 .. ENGINE_STRIPE_MAX).  NULL after log_error on failure.
 */
extern struct engine *engine_create (struct tierset *ts, uint64_t npages,
                                     uint32_t stripe);

extern void engine_destroy (struct engine *e);

/* Fault in the page map, so that with locked memory nothing on the
 * request path needs a new page.
 */
extern void engine_prefault (struct engine *e);

/* Slots that must stay free beyond the exported pages so that every
 * request in flight can write its new copy before freeing the old one.
 */
extern uint64_t engine_min_spare (uint32_t stripe);

extern int engine_read (struct engine *e, void *buf, uint32_t count,
                        uint64_t offset);
extern int engine_write (struct engine *e, const void *buf, uint32_t count,
                         uint64_t offset, bool fua);
extern int engine_trim (struct engine *e, uint32_t count, uint64_t offset,
                        bool fua);
/* Zero a range.  With may_unmap, whole pages are unmapped (fast); without
 * (the client asked to keep the space allocated), zeroes are written.
 */
extern int engine_zero (struct engine *e, uint32_t count, uint64_t offset,
                        bool fua, bool may_unmap);
extern int engine_flush (struct engine *e);

/* Describe [offset, offset+count) as extents of whole pages: hole (reads
 * as zeroes: unmapped) or data.  The first extent may start before offset.
 */
extern int engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                           engine_extent_fn fn, void *opaque);

/* Slots this engine needs free beyond its mapped pages:
 * engine_min_spare of its stripe unit.
 */
extern uint64_t engine_spare (const struct engine *e);

/* Wait until every request in progress has finished; requests that
 * arrive meanwhile do not wait for this call.
 */
extern void engine_sync (struct engine *e);

/* What one engine_move did. */
struct engine_move {
  uint64_t next;                       /* first page not examined */
  uint32_t moved;                      /* pages copied to new slots */
  uint32_t lost;                       /* pages whose slot failed to read */
};

/* Find the first page at or after page whose slot lies in [lo, hi), the
 * slots of a backend that takes no new allocations, and move it, with
 * the pages after it in its stripe unit whose slots follow its own, to
 * new slots: read, write elsewhere (with FUA), publish, free the old
 * slots, as a rewrite does.  The range lock is held on those pages
 * only, meanwhile, so no request sees a page half moved.  A page whose slot fails to
 * read becomes LOST (its slot bad).  Returns 1 and fills *mv, 0 if no
 * page from page on has a slot in [lo, hi), or -1 with errno set when no
 * other backend could take them (the pages not moved yet stay where they
 * were).
 */
extern int engine_move (struct engine *e, uint64_t page, slot_t lo,
                        slot_t hi, struct engine_move *mv);

#endif /* SWAPTIER_ENGINE_H */
