/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine's own structures, shared by engine.c (requests),
 * engine-pages.c (pages: reading their copies, placing and writing new
 * ones, publishing) and mover.c (moving copies of pages that are in
 * place).  Nothing else includes this.
 *
 * Counters: mapped is the number of pages with at least one live copy
 * (an entry that is a slot), degraded the number of those with fewer
 * than copies.  Every change of a page's entries adjusts them through
 * engine_count, under the range lock held for writing, or under the
 * range lock held for reading and the page's drop lock (a reader giving
 * up a copy that failed: two readers of one page must not both believe
 * that the other copy is still there).
 */

#ifndef SWAPTIER_ENGINE_INTERNAL_H
#define SWAPTIER_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agemap.h"
#include "codec.h"
#include "engine.h"
#include "fanout.h"
#include "pagemap.h"
#include "rangelock.h"
#include "rereadq.h"

#define ENGINE_DROP_LOCKS 64           /* striped by page */

struct engine {
  struct tierset *ts;
  struct pagemap *map;
  struct agemap *ages;                 /* when each page was last used */
  uint32_t *sums;                      /* CRC32C of each mapped page */
  bool unchecked;                      /* checksum=off */
  struct codec *codec;                 /* NULL: pages in clear */
  char *cipher;                        /* ENGINE_REQUESTS x copies
                                          stripe units: ciphertexts */
  size_t sums_bytes;
  struct rangelock *rl;
  struct fanout *fanout;               /* writes of the copies at once */
  uint64_t npages;
  uint32_t stripe;                     /* pages per stripe unit */
  unsigned copies;
  char *bounce;                        /* ENGINE_REQUESTS stripe units */
  pthread_mutex_t drop_lock[ENGINE_DROP_LOCKS];
  struct rereadq rereads;              /* promotion candidates */

  /* Atomics. */
  uint64_t mapped, degraded;           /* pages: see above */
  unsigned clients;                    /* client requests in progress */
};

/* New copies of a run of pages, placed on distinct domains. */
struct engine_placed {
  unsigned n;                          /* copies placed */
  slot_t first[PAGEMAP_COPIES_MAX];    /* each a run of the run's length */
};

/* Checksums: the one of page, and the check of n pages read into buf
 * (page aligned) for pages [page, page+n): the first that does not
 * match, or n if all do.
 */
static inline uint32_t
engine_sum (const struct engine *e, uint64_t page)
{
  return __atomic_load_n (&e->sums[page], __ATOMIC_RELAXED);
}
extern uint32_t engine_check_sums (struct engine *e, uint64_t page,
                                   uint32_t n, const char *buf);

/* Account for a page whose live copies went from was to now. */
extern void engine_count (struct engine *e, unsigned was, unsigned now);

/* Read pages [page, page+n) into dst (page aligned), each from its best
 * copy, falling back to the others: see engine_read.  The caller holds
 * the range lock (either way) on them, entry idx (which picks the cipher
 * context).
 */
extern int engine_read_pages (struct engine *e, unsigned idx, uint64_t page,
                              uint64_t n, char *dst);

/* The same, each copy read once without waiting for a lost server and
 * none given up when it fails (a move that is only worth making, such
 * as a demotion, must not cost a page): -1 (EIO) if a page could not be
 * read, its copies as they were.
 */
extern int engine_read_pages_keep (struct engine *e, unsigned idx,
                                   uint64_t page, uint64_t n, char *dst);

/* Place want (1 .. copies) new copies of *n pages of src, on backends
 * of distinct domains outside exclude and of priorities in win
 * (TIERSET_ANY_WINDOW: any), and write them (all at once,
 * through the fanout slot idx, with FUA if fua).  A copy whose write
 * fails has its slots marked bad and goes elsewhere (unless the process
 * is stopping, ESHUTDOWN: then no further slot is tried); *n may shrink to
 * what the allocator could give as one run on every domain.  Returns 0
 * with *pl filled (at least one copy, maybe fewer than want when no
 * other domain could take one), or -1 with errno set when no copy could
 * be written: EIO if backends failed, ENOSPC if there was no room.
 */
extern int engine_place (struct engine *e, unsigned idx, const char *src,
                         uint32_t *n, unsigned want, domain_mask exclude,
                         struct tier_window win, bool fua,
                         struct engine_placed *pl);

/* Write pages [page, page+n) from src to new copies and publish them,
 * freeing the old ones (a rewrite): the range lock held for writing,
 * idx its entry.
 */
extern int engine_write_pages (struct engine *e, unsigned idx,
                               uint64_t page, uint32_t n, const char *src,
                               bool fua);

/* Pages [page, page+n), locked, were read by a client: make them
 * young, and count each that had been read before since its last write
 * as a re-read on the backend of the copy a read takes; queue it for
 * promotion when that backend is below the highest priority.
 */
extern void engine_note_read (struct engine *e, uint64_t page, uint64_t n);

/* Unmap pages [page, page+n), trim their slots and free them. */
extern void engine_unmap (struct engine *e, uint64_t page, uint64_t n);

/* Free slot s of a page that no longer uses it (SLOT_NONE and SLOT_LOST
 * are ignored): collected into runs, see engine-pages.c.
 */
struct engine_free_run {
  bool trim;                           /* tell the backend first */
  slot_t first;
  uint32_t n;
};
extern void engine_free_slot (struct engine *e, struct engine_free_run *run,
                              slot_t s);

/* The bounce buffer of the request holding range lock entry idx. */
static inline char *
engine_bounce (const struct engine *e, unsigned idx)
{
  return e->bounce + (size_t) idx * e->stripe * PAGE_SIZE;
}

/* Where copy c of the write holding range lock entry idx is encrypted. */
static inline char *
engine_cipher (const struct engine *e, unsigned idx, unsigned c)
{
  return e->cipher ? e->cipher + ((size_t) idx * e->copies + c)
    * e->stripe * PAGE_SIZE : NULL;
}

/* Decrypt n pages read from slots first.. into buf in place (nothing
 * without a codec).
 */
static inline int
engine_decrypt (struct engine *e, unsigned idx, slot_t first, uint32_t n,
                char *buf)
{
  return e->codec && tierset_slot_encrypted (e->ts, first)
    ? codec_decrypt (e->codec, idx * e->copies, first, n, buf, buf) : 0;
}

/* The end of the stripe unit holding page, capped at limit. */
static inline uint64_t
engine_unit_end (const struct engine *e, uint64_t page, uint64_t limit)
{
  uint64_t end = (page / e->stripe + 1) * e->stripe;

  return end < limit ? end : limit;
}

#endif /* SWAPTIER_ENGINE_INTERNAL_H */
