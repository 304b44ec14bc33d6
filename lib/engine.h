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

#endif /* SWAPTIER_ENGINE_H */
