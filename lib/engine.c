/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine-internal.h"
#include "log.h"
#include "page.h"
#include "pagemap.h"
#include "rangelock.h"
#include "swapsafe.h"

struct engine *
engine_create (struct tierset *ts, uint64_t npages, uint32_t stripe,
               unsigned copies)
{
  struct engine *e;
  unsigned i;

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
  e->copies = copies;
  for (i = 0; i < ENGINE_DROP_LOCKS; i++)
    pthread_mutex_init (&e->drop_lock[i], NULL);
  e->map = pagemap_create (npages, copies);
  e->ages = e->map ? agemap_create (npages) : NULL;
  e->sums_bytes = npages * sizeof *e->sums;
  e->sums = mmap (NULL, e->sums_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (e->sums == MAP_FAILED) {
    log_error ("engine: checksums: mmap of %zu bytes: %m", e->sums_bytes);
    e->sums = NULL;
  }
  e->rl = rangelock_create (ENGINE_REQUESTS);
  e->fanout = e->map ? fanout_create (ENGINE_REQUESTS, copies) : NULL;
  e->bounce = aligned_alloc (PAGE_SIZE,
                             (size_t) ENGINE_REQUESTS * stripe * PAGE_SIZE);
  if (e->map == NULL || e->ages == NULL || e->sums == NULL || e->rl == NULL ||
      e->fanout == NULL || e->bounce == NULL) {
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
  unsigned i;

  if (e) {
    fanout_destroy (e->fanout);
    pagemap_destroy (e->map);
    agemap_destroy (e->ages);
    if (e->sums)
      munmap (e->sums, e->sums_bytes);
    rangelock_destroy (e->rl);
    free (e->bounce);
    free (e->cipher);
    for (i = 0; i < ENGINE_DROP_LOCKS; i++)
      pthread_mutex_destroy (&e->drop_lock[i]);
    free (e);
  }
}

int
engine_set_codec (struct engine *e, struct codec *codec)
{
  size_t len = (size_t) ENGINE_REQUESTS * e->copies * e->stripe * PAGE_SIZE;

  if (codec) {
    e->cipher = aligned_alloc (PAGE_SIZE, len);
    if (e->cipher == NULL) {
      log_error ("engine: cipher buffers: %m");
      return -1;
    }
    memset (e->cipher, 0, len);
    e->codec = codec;
  }
  return 0;
}

bool
engine_encrypts (const struct engine *e)
{
  return e->codec != NULL;
}

void
engine_set_checksum (struct engine *e, bool on)
{
  e->unchecked = !on;
}

int
engine_serve (struct engine *e)
{
  return fanout_serve (e->fanout);
}

void
engine_prefault (struct engine *e)
{
  pagemap_prefault (e->map);
  agemap_prefault (e->ages);
  /* Without checksums the sums are never touched: they cost nothing. */
  if (!e->unchecked)
    swapsafe_prefault (e->sums, e->sums_bytes);
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

/* Take the range lock on pages [p0, p1) for a client request, counted
 * in clients so that background work can yield to it.
 */
static unsigned
engine_lock (struct engine *e, uint64_t p0, uint64_t p1, bool exclusive)
{
  __atomic_add_fetch (&e->clients, 1, __ATOMIC_RELAXED);
  return rangelock_acquire (e->rl, p0, p1, exclusive);
}

static void
engine_unlock (struct engine *e, unsigned idx)
{
  rangelock_release (e->rl, idx);
  __atomic_sub_fetch (&e->clients, 1, __ATOMIC_RELAXED);
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
  idx = engine_lock (e, p0, p1, false);

  /* Whole pages into an aligned buffer: no copy at all. */
  if (((offset | count) & (PAGE_SIZE - 1)) == 0 && engine_aligned (buf)) {
    r = engine_read_pages (e, idx, p0, p1 - p0, buf);
    if (r == 0)
      engine_note_read (e, p0, p1 - p0);
    goto out;
  }

  bounce = engine_bounce (e, idx);
  for (page = p0; page < p1; ) {
    uint64_t end = engine_unit_end (e, page, p1);
    uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;
    uint64_t from = lo > offset ? lo : offset;
    uint64_t to = hi < end_byte ? hi : end_byte;

    r = engine_read_pages (e, idx, page, end - page, bounce);
    if (r == -1)
      goto out;
    memcpy ((char *) buf + (from - offset), bounce + (from - lo), to - from);
    engine_note_read (e, page, end - page);
    page = end;
  }
 out:
  engine_unlock (e, idx);
  return r;
}

/* Fill the bounce buffer for pages [page, end) with the new bytes
 * [from, to) of the request (zeroes if src is NULL), and the old content
 * of a first or last page that the request covers only in part
 * (read-modify-write).
 */
static int
engine_fill_bounce (struct engine *e, unsigned idx, char *bounce,
                    uint64_t page, uint64_t end, uint64_t from, uint64_t to,
                    const char *src)
{
  uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;

  if (from > lo && engine_read_pages (e, idx, page, 1, bounce) == -1)
    return -1;
  if (to < hi && (end - 1 > page || from == lo) &&
      engine_read_pages (e, idx, end - 1, 1,
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
  idx = engine_lock (e, p0, p1, true);
  bounce = engine_bounce (e, idx);

  for (page = p0; page < p1; ) {
    uint64_t end = engine_unit_end (e, page, p1);
    uint64_t lo = page << PAGE_SHIFT, hi = end << PAGE_SHIFT;
    uint64_t from = lo > offset ? lo : offset;
    uint64_t to = hi < end_byte ? hi : end_byte;
    const char *src = buf ? buf + (from - offset) : NULL;

    if (src == NULL || from != lo || to != hi || !engine_aligned (src)) {
      r = engine_fill_bounce (e, idx, bounce, page, end, from, to, src);
      if (r == -1)
        goto out;
      src = bounce;
    }
    r = engine_write_pages (e, idx, page, end - page, src, fua);
    if (r == -1)
      goto out;
    agemap_written (e->ages, page, end - page);
    page = end;
  }
 out:
  engine_unlock (e, idx);
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
engine_zero_partial (struct engine *e, unsigned idx, uint64_t page,
                     uint64_t from, uint64_t to, bool fua)
{
  uint64_t lo = page << PAGE_SHIFT;

  /* An unmapped page reads as zeroes already. */
  char *bounce = engine_bounce (e, idx);

  if (pagemap_unmapped (e->map, page))
    return 0;
  if (engine_read_pages (e, idx, page, 1, bounce) == -1)
    return -1;
  memset (bounce + (from - lo), 0, to - from);
  if (engine_write_pages (e, idx, page, 1, bounce, fua) == -1)
    return -1;
  agemap_written (e->ages, page, 1);
  return 0;
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

  idx = engine_lock (e, p0, p1, true);
  if (full0 < full1)
    engine_unmap (e, full0, full1 - full0);
  if (zero && full0 > p0) {
    uint64_t to = (p0 + 1) << PAGE_SHIFT;

    r = engine_zero_partial (e, idx, p0, offset,
                             to < end_byte ? to : end_byte, fua);
  }
  if (zero && r == 0 && full1 < p1 && (full1 > p0 || full0 == p0)) {
    uint64_t from = full1 << PAGE_SHIFT;

    r = engine_zero_partial (e, idx, full1,
                             from > offset ? from : offset, end_byte, fua);
  }
  if (r == 0 && fua)
    r = tierset_flush (e->ts);
  engine_unlock (e, idx);
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
  idx = engine_lock (e, p0, p1, false);
  start = p0;
  hole = pagemap_unmapped (e->map, p0);
  for (page = p0 + 1; page <= p1 && r == 0; page++) {
    bool next = page < p1 && pagemap_unmapped (e->map, page);

    if (page == p1 || next != hole) {
      r = fn (opaque, start << PAGE_SHIFT, (page - start) << PAGE_SHIFT, hole);
      start = page;
      hole = next;
    }
  }
  engine_unlock (e, idx);
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

uint64_t
engine_pages (const struct engine *e)
{
  return e->npages;
}

unsigned
engine_copies (const struct engine *e)
{
  return e->copies;
}

uint64_t
engine_mapped (const struct engine *e)
{
  return __atomic_load_n (&e->mapped, __ATOMIC_RELAXED);
}

uint64_t
engine_degraded (const struct engine *e)
{
  return __atomic_load_n (&e->degraded, __ATOMIC_RELAXED);
}

struct agemap *
engine_ages (struct engine *e)
{
  return e->ages;
}

struct rereadq *
engine_rereads (struct engine *e)
{
  return &e->rereads;
}

bool
engine_busy (const struct engine *e)
{
  return __atomic_load_n (&e->clients, __ATOMIC_RELAXED) > 0;
}
