/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "page.h"
#include "pagemap.h"
#include "rangelock.h"

struct engine {
  struct tierset *ts;
  struct pagemap *map;
  struct rangelock *rl;
  uint64_t npages;
  uint32_t stripe;                     /* pages per stripe unit */
  char *bounce;                        /* ENGINE_REQUESTS stripe units */
};

/* A run of consecutive slots collected for freeing in one call. */
struct engine_free_run {
  bool trim;                           /* tell the backend first */
  slot_t first;
  uint32_t n;
};

struct engine *
engine_create (struct tierset *ts, uint64_t npages, uint32_t stripe)
{
  struct engine *e;

  if (stripe < 1 || stripe > ENGINE_STRIPE_MAX) {
    log_error ("stripe %" PRIu32 " is out of range (1 to %d pages)",
               stripe, ENGINE_STRIPE_MAX);
    return NULL;
  }
  e = calloc (1, sizeof *e);
  if (e == NULL) {
    log_error ("engine: %m");
    return NULL;
  }
  e->ts = ts;
  e->npages = npages;
  e->stripe = stripe;
  e->map = pagemap_create (npages);
  e->rl = rangelock_create (ENGINE_REQUESTS);
  e->bounce = aligned_alloc (PAGE_SIZE,
                             (size_t) ENGINE_REQUESTS * stripe * PAGE_SIZE);
  if (e->map == NULL || e->rl == NULL || e->bounce == NULL) {
    if (e->bounce == NULL)
      log_error ("engine: bounce buffers: %m");
    engine_destroy (e);
    return NULL;
  }
  /* Touch the bounce buffers now, not on the request path. */
  memset (e->bounce, 0, (size_t) ENGINE_REQUESTS * stripe * PAGE_SIZE);
  return e;
}

void
engine_destroy (struct engine *e)
{
  if (e) {
    pagemap_destroy (e->map);
    rangelock_destroy (e->rl);
    free (e->bounce);
    free (e);
  }
}

void
engine_prefault (struct engine *e)
{
  pagemap_prefault (e->map);
}

uint64_t
engine_min_spare (uint32_t stripe)
{
  return (uint64_t) ENGINE_REQUESTS * stripe;
}

/* Check that a request lies inside the device; err is the errno for a
 * request past the end.
 */
static int
engine_check_range (const struct engine *e, const char *what, uint32_t count,
                    uint64_t offset, int err)
{
  uint64_t size = e->npages << PAGE_SHIFT;

  if (offset > size || count > size - offset) {
    log_error ("%s of %" PRIu32 " bytes at offset %" PRIu64 " reaches past "
               "the end of the device (%" PRIu64 " bytes)",
               what, count, offset, size);
    errno = err;
    return -1;
  }
  return 0;
}

/* The bounce buffer of the request holding range lock entry idx. */
static char *
engine_bounce (const struct engine *e, unsigned idx)
{
  return e->bounce + (size_t) idx * e->stripe * PAGE_SIZE;
}

/* Add slot s to the run being collected, freeing the run first when s does
 * not extend it (trimming it before, with trim: once freed, the slots may
 * hold another page's data; a trim of unknown outcome leaves them bad).
 * SLOT_NONE flushes the run.  LOST pages have no slot to free: theirs
 * was marked bad when they were lost.
 */
static void
engine_free_slot (struct engine *e, struct engine_free_run *run, slot_t s)
{
  if (s == SLOT_LOST)
    return;
  if (run->n > 0 && (s == SLOT_NONE || s != run->first + run->n)) {
    if (run->trim)
      tierset_trim_free (e->ts, run->first, run->n);
    else
      tierset_free_run (e->ts, run->first, run->n);
    run->n = 0;
  }
  if (s == SLOT_NONE)
    return;
  if (run->n == 0)
    run->first = s;
  run->n++;
}

/* Point pages [page, page+n) at the slots from first, freeing whatever
 * they held before.
 */
static void
engine_publish (struct engine *e, uint64_t page, uint32_t n, slot_t first)
{
  struct engine_free_run run = { 0 };
  uint32_t i;

  for (i = 0; i < n; i++)
    engine_free_slot (e, &run, pagemap_set (e->map, page + i, first + i));
  engine_free_slot (e, &run, SLOT_NONE);
  if (swaptier_debug_map)
    log_debug ("map: pages %" PRIu64 "+%" PRIu32 " -> slot %" PRIu32,
               page, n, first);
}

/* Unmap pages [page, page+n), trim their slots and free them. */
static void
engine_unmap (struct engine *e, uint64_t page, uint64_t n)
{
  struct engine_free_run run = { .trim = true };
  uint64_t i;

  for (i = 0; i < n; i++)
    engine_free_slot (e, &run, pagemap_set (e->map, page + i, SLOT_NONE));
  engine_free_slot (e, &run, SLOT_NONE);
  if (swaptier_debug_map && n > 0)
    log_debug ("map: pages %" PRIu64 "+%" PRIu64 " unmapped", page, n);
}

/* Repeated messages about lost pages: one per read of such a page. */
static struct log_limit engine_lost_limit = LOG_LIMIT_INIT;

/* After a failed read of a run, read its pages one by one: each page
 * whose slot still fails after ENGINE_READ_TRIES tries becomes LOST, its
 * slot bad and the loss counted, unless the process is stopping
 * (ESHUTDOWN), which loses nothing.  Returns 0 if every page was read
 * after all, else -1 (EIO).
 */
static int
engine_read_salvage (struct engine *e, uint64_t page, uint32_t n,
                     slot_t first, char *dst)
{
  uint32_t i;
  int r = 0;

  for (i = 0; i < n; i++) {
    if (tierset_read (e->ts, first + i, 1, dst + (size_t) i * PAGE_SIZE,
                      ENGINE_READ_TRIES) == 0)
      continue;
    /* The process is stopping: the copy is not known to be gone. */
    if (errno == ESHUTDOWN) {
      r = -1;
      break;
    }
    /* Concurrent readers of the page race here; one of them wins, so the
     * slot is marked bad and the page counted lost once.
     */
    if (pagemap_replace (e->map, page + i, first + i, SLOT_LOST)) {
      log_error ("page %" PRIu64 " is lost: its only copy cannot be read",
                 page + i);
      tierset_mark_lost (e->ts, first + i);
    }
    r = -1;
  }
  if (r == -1)
    errno = EIO;
  return r;
}

/* Read pages [page, page+n) into dst (page aligned), one backend request
 * per run of pages whose slots are consecutive.
 */
static int
engine_read_pages (struct engine *e, uint64_t page, uint64_t n, char *dst)
{
  uint64_t i = 0;

  while (i < n) {
    slot_t s = pagemap_get (e->map, page + i);
    char *p = dst + i * PAGE_SIZE;
    uint32_t run = 1;

    if (s == SLOT_NONE) {
      memset (p, 0, PAGE_SIZE);
      i++;
      continue;
    }
    if (s == SLOT_LOST) {
      log_error_limited (&engine_lost_limit, "read of page %" PRIu64 ": the "
                         "page is lost (its only copy failed to read); it "
                         "reads again after a write or trim", page + i);
      errno = EIO;
      return -1;
    }
    /* Consecutive addresses are on one backend: there is a gap between
     * backends, and the address after a real slot is never SLOT_LOST.
     */
    while (i + run < n && run < UINT32_MAX &&
           pagemap_get (e->map, page + i + run) == s + run)
      run++;
    if (tierset_read (e->ts, s, run, p, 1) == -1 &&
        engine_read_salvage (e, page + i, run, s, p) == -1)
      return -1;
    i += run;
  }
  return 0;
}

/* Write pages [page, page+n) from src (page aligned) to newly allocated
 * slots, then publish them.  A run whose write fails is marked bad and
 * the data goes to another run, another backend first; the request fails
 * only when no backend can take it.
 */
static int
engine_write_pages (struct engine *e, uint64_t page, uint32_t n,
                    const char *src, bool fua)
{
  slot_t avoid = SLOT_NONE;
  uint32_t done = 0;

  while (done < n) {
    uint32_t len;
    slot_t s = tierset_alloc_run (e->ts, n - done, &len, avoid);

    if (s == SLOT_NONE) {
      /* EIO if the data was refused by failing backends, ENOSPC if there
       * simply is no room (the reserve makes that a configuration error).
       */
      log_error ("write of page %" PRIu64 ": no backend %s", page + done,
                 avoid != SLOT_NONE ? "that works has a free slot"
                 : "has a free slot");
      errno = avoid != SLOT_NONE ? EIO : ENOSPC;
      return -1;
    }
    if (tierset_write (e->ts, s, len,
                       src + (size_t) done * PAGE_SIZE, fua) == -1) {
      tierset_mark_bad (e->ts, s, len);
      avoid = s;
      continue;
    }
    engine_publish (e, page + done, len, s);
    done += len;
  }
  return 0;
}

/* The end of the stripe unit holding page, capped at limit. */
static uint64_t
engine_unit_end (const struct engine *e, uint64_t page, uint64_t limit)
{
  uint64_t end = (page / e->stripe + 1) * e->stripe;

  return end < limit ? end : limit;
}

/* Whether p may be handed to a backend directly (no bounce buffer). */
static bool
engine_aligned (const void *p)
{
  return ((uintptr_t) p & (PAGE_SIZE - 1)) == 0;
}

int
engine_read (struct engine *e, void *buf, uint32_t count, uint64_t offset)
{
  uint64_t p0, p1, page, end_byte = offset + count;
  unsigned idx;
  char *bounce;
  int r = 0;

  if (engine_check_range (e, "read", count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 0;
  p0 = offset >> PAGE_SHIFT;
  p1 = (end_byte + PAGE_SIZE - 1) >> PAGE_SHIFT;
  idx = rangelock_acquire (e->rl, p0, p1, false);

  /* Whole pages into an aligned buffer: no copy at all. */
  if (((offset | count) & (PAGE_SIZE - 1)) == 0 && engine_aligned (buf)) {
    r = engine_read_pages (e, p0, p1 - p0, buf);
    goto out;
  }

  bounce = engine_bounce (e, idx);
  for (page = p0; page < p1; ) {
    uint64_t end = engine_unit_end (e, page, p1);
    uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;
    uint64_t from = lo > offset ? lo : offset;
    uint64_t to = hi < end_byte ? hi : end_byte;

    r = engine_read_pages (e, page, end - page, bounce);
    if (r == -1)
      goto out;
    memcpy ((char *) buf + (from - offset), bounce + (from - lo), to - from);
    page = end;
  }
 out:
  rangelock_release (e->rl, idx);
  return r;
}

/* Fill the bounce buffer for pages [page, end) with the new bytes
 * [from, to) of the request (zeroes if src is NULL), and the old content
 * of a first or last page that the request covers only in part
 * (read-modify-write).
 */
static int
engine_fill_bounce (struct engine *e, char *bounce, uint64_t page,
                    uint64_t end, uint64_t from, uint64_t to, const char *src)
{
  uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;

  if (from > lo && engine_read_pages (e, page, 1, bounce) == -1)
    return -1;
  if (to < hi && (end - 1 > page || from == lo) &&
      engine_read_pages (e, end - 1, 1,
                         bounce + (end - 1 - page) * PAGE_SIZE) == -1)
    return -1;
  if (src)
    memcpy (bounce + (from - lo), src, to - from);
  else
    memset (bounce + (from - lo), 0, to - from);
  return 0;
}

/* Write count bytes from buf (zeroes if buf is NULL) at offset, a range
 * already checked, one stripe unit at a time.
 */
static int
engine_write_range (struct engine *e, const char *buf, uint32_t count,
                    uint64_t offset, bool fua)
{
  uint64_t p0, p1, page, end_byte = offset + count;
  unsigned idx;
  char *bounce;
  int r = 0;

  p0 = offset >> PAGE_SHIFT;
  p1 = (end_byte + PAGE_SIZE - 1) >> PAGE_SHIFT;
  idx = rangelock_acquire (e->rl, p0, p1, true);
  bounce = engine_bounce (e, idx);

  for (page = p0; page < p1; ) {
    uint64_t end = engine_unit_end (e, page, p1);
    uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;
    uint64_t from = lo > offset ? lo : offset;
    uint64_t to = hi < end_byte ? hi : end_byte;
    const char *src = buf ? buf + (from - offset) : NULL;

    if (src == NULL || from != lo || to != hi || !engine_aligned (src)) {
      r = engine_fill_bounce (e, bounce, page, end, from, to, src);
      if (r == -1)
        goto out;
      src = bounce;
    }
    r = engine_write_pages (e, page, end - page, src, fua);
    if (r == -1)
      goto out;
    page = end;
  }
 out:
  rangelock_release (e->rl, idx);
  return r;
}

int
engine_write (struct engine *e, const void *buf, uint32_t count,
              uint64_t offset, bool fua)
{
  if (engine_check_range (e, "write", count, offset, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 0;
  return engine_write_range (e, buf, count, offset, fua);
}

/* Zero the bytes [from, to) of one page that they cover only in part. */
static int
engine_zero_partial (struct engine *e, char *bounce, uint64_t page,
                     uint64_t from, uint64_t to, bool fua)
{
  uint64_t lo = page << PAGE_SHIFT;

  /* An unmapped page reads as zeroes already. */
  if (pagemap_get (e->map, page) == SLOT_NONE)
    return 0;
  if (engine_read_pages (e, page, 1, bounce) == -1)
    return -1;
  memset (bounce + (from - lo), 0, to - from);
  return engine_write_pages (e, page, 1, bounce, fua);
}

/* Unmap the whole pages of [offset, offset+count); with zero, also zero
 * the parts of pages at either end that it covers in part.
 */
static int
engine_discard (struct engine *e, uint32_t count, uint64_t offset, bool zero,
                bool fua)
{
  uint64_t end_byte = offset + count;
  uint64_t p0 = offset >> PAGE_SHIFT;
  uint64_t p1 = (end_byte + PAGE_SIZE - 1) >> PAGE_SHIFT;
  uint64_t full0 = (offset + PAGE_SIZE - 1) >> PAGE_SHIFT;
  uint64_t full1 = end_byte >> PAGE_SHIFT;
  unsigned idx;
  int r = 0;

  idx = rangelock_acquire (e->rl, p0, p1, true);
  if (full0 < full1)
    engine_unmap (e, full0, full1 - full0);
  if (zero && full0 > p0) {
    uint64_t to = (p0 + 1) << PAGE_SHIFT;

    r = engine_zero_partial (e, engine_bounce (e, idx), p0, offset,
                             to < end_byte ? to : end_byte, fua);
  }
  if (zero && r == 0 && full1 < p1 && (full1 > p0 || full0 == p0)) {
    uint64_t from = full1 << PAGE_SHIFT;

    r = engine_zero_partial (e, engine_bounce (e, idx), full1,
                             from > offset ? from : offset, end_byte, fua);
  }
  if (r == 0 && fua)
    r = tierset_flush (e->ts);
  rangelock_release (e->rl, idx);
  return r;
}

int
engine_trim (struct engine *e, uint32_t count, uint64_t offset, bool fua)
{
  if (engine_check_range (e, "trim", count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 0;
  return engine_discard (e, count, offset, false, fua);
}

int
engine_zero (struct engine *e, uint32_t count, uint64_t offset, bool fua,
             bool may_unmap)
{
  if (engine_check_range (e, "zero", count, offset, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 0;
  if (!may_unmap)
    return engine_write_range (e, NULL, count, offset, fua);
  return engine_discard (e, count, offset, true, fua);
}

int
engine_flush (struct engine *e)
{
  return tierset_flush (e->ts);
}

int
engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                engine_extent_fn fn, void *opaque)
{
  uint64_t p0, p1, page, start;
  unsigned idx;
  bool hole;
  int r = 0;

  if (engine_check_range (e, "extents", count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 0;
  p0 = offset >> PAGE_SHIFT;
  p1 = (offset + count + PAGE_SIZE - 1) >> PAGE_SHIFT;
  idx = rangelock_acquire (e->rl, p0, p1, false);
  start = p0;
  hole = pagemap_get (e->map, p0) == SLOT_NONE;
  for (page = p0 + 1; page <= p1 && r == 0; page++) {
    bool next = page < p1 && pagemap_get (e->map, page) == SLOT_NONE;

    if (page == p1 || next != hole) {
      r = fn (opaque, start << PAGE_SHIFT, (page - start) << PAGE_SHIFT, hole);
      start = page;
      hole = next;
    }
  }
  rangelock_release (e->rl, idx);
  return r;
}

uint64_t
engine_spare (const struct engine *e)
{
  return engine_min_spare (e->stripe);
}

void
engine_sync (struct engine *e)
{
  rangelock_sync (e->rl);
}

/* Move pages [page, page+n), locked, mapped to the slots from first, to
 * new slots: see engine_move.  Pages whose slots failed to read are
 * counted lost and left LOST.
 */
static int
engine_move_run (struct engine *e, uint64_t page, uint32_t n, slot_t first,
                 char *buf, struct engine_move *mv)
{
  uint32_t i = 0, j;

  if (tierset_read (e->ts, first, n, buf, 1) == -1)
    engine_read_salvage (e, page, n, first, buf);
  while (i < n) {
    if (pagemap_get (e->map, page + i) != first + i) {
      mv->lost++;
      i++;
      continue;
    }
    for (j = i + 1; j < n && pagemap_get (e->map, page + j) == first + j; j++)
      ;
    /* With FUA: the old slots are freed at once, and the page must stay
     * as durable as it was there, whatever a later flush says.
     */
    if (engine_write_pages (e, page + i, j - i,
                            buf + (size_t) i * PAGE_SIZE, true) == -1)
      return -1;
    mv->moved += j - i;
    i = j;
  }
  return 0;
}

int
engine_move (struct engine *e, uint64_t page, slot_t lo, slot_t hi,
             struct engine_move *mv)
{
  uint64_t end;
  uint32_t n = 0;
  unsigned idx;
  slot_t s;
  int r = 0;

  /* Looking without the lock is enough to find the pages: none comes to
   * [lo, hi) while nothing allocates there.
   */
  for (; page < e->npages; page++) {
    s = pagemap_get (e->map, page);
    if (s >= lo && s < hi)
      break;
  }
  if (page == e->npages)
    return 0;

  end = engine_unit_end (e, page, e->npages);
  idx = rangelock_acquire (e->rl, page, end, true);
  /* A request may have rewritten, trimmed or lost the page meanwhile. */
  s = pagemap_get (e->map, page);
  if (s >= lo && s < hi)
    for (n = 1; page + n < end && s + n < hi &&
           pagemap_get (e->map, page + n) == s + n; n++)
      ;
  *mv = (struct engine_move) { .next = page + (n > 0 ? n : 1) };
  if (n > 0)
    r = engine_move_run (e, page, n, s, engine_bounce (e, idx), mv);
  rangelock_release (e->rl, idx);
  return r == -1 ? -1 : 1;
}
