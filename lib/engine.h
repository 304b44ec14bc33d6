/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine, NBD-style requests over the page map and tiers.
 *
 * The exported device is npages pages, each kept as copies (1 to 3)
 * copies on backends of different failure domains.  Reads of unmapped
 * pages return zeroes; a read comes from the best copy and falls back
 * to the others (engine-pages.c), and fails with EIO only for LOST
 * pages, whose every copy failed.  A write allocates new slots for each
 * copy (one run per stripe unit where the allocator can), writes them
 * all at once, then publishes the mapping and frees the old slots, so a
 * page always has complete copies.  Trim and zero unmap whole pages and free their slots.
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

#include "agemap.h"
#include "rereadq.h"
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
                                     uint32_t stripe, unsigned copies);

/* In the process that serves (after nbdkit's fork): start the threads
 * that write a page's copies at once.  Until then they are written one
 * after the other.  Returns 0, or -1 after log_error.
 */
extern int engine_serve (struct engine *e);

extern void engine_destroy (struct engine *e);

/* Encrypt pages on the backends with codec (codec.h: at least
 * ENGINE_REQUESTS x copies contexts; the caller frees it after the
 * engine), before any request.  NULL changes nothing: pages stay in
 * clear.  Returns 0, or -1 after log_error.
 */
struct codec;
extern int engine_set_codec (struct engine *e, struct codec *codec);

/* Check every page read against the CRC32C of what was written (on, the
 * default: a copy that does not match is a read error of that copy), or
 * neither compute nor check them.  Before engine_prefault (which faults
 * the sums in only if they are used) and any request.
 */
extern void engine_set_checksum (struct engine *e, bool on);

/* Whether the engine has a codec that encrypts. */
extern bool engine_encrypts (const struct engine *e);

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

/* Pages of the device. */
extern uint64_t engine_pages (const struct engine *e);

/* Copies kept of each page. */
extern unsigned engine_copies (const struct engine *e);

/* Pages holding data (at least one live copy). */
extern uint64_t engine_mapped (const struct engine *e);

/* Pages with fewer live copies than copies (not counting copies on
 * failed backends, which are live until re-created).
 */
extern uint64_t engine_degraded (const struct engine *e);

/* When each page was last written or read by a client (agemap.h). */
extern struct agemap *engine_ages (struct engine *e);

/* Pages re-read from below the highest priority (rereadq.h). */
extern struct rereadq *engine_rereads (struct engine *e);

/* Whether client requests are in progress (background work yields). */
extern bool engine_busy (const struct engine *e);

#endif /* SWAPTIER_ENGINE_H */
