/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the engine (lib/engine), over in-memory
 * backends.
 *
 * Most tests keep a model of the exported device: its bytes, and whether
 * each page holds a slot.  After every request they read the device back
 * and compare it with the model, compare the extents with the mapped
 * pages, and check invariant 5 (used + free + bad = capacity) and that
 * the slots in use are exactly one per mapped page, so that a rewrite
 * that leaked its old slots would be seen.  Other tests count the
 * requests the backends receive (clustering, striping), inject backend
 * errors (invariants 1, 2 and 4), or run requests from several threads
 * at once (invariant 3).
 *
 * The randomized tests use fixed seeds; set ENGINE_TEST_SEED to another
 * number to explore, or to the seed printed by a failure to replay it.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "engine.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "tierset.h"

/* The most backends one test device has. */
#define TEST_MAX_BACKENDS 4

/* The most extents the extent check collects. */
#define TEST_MAX_EXTENTS 1024

/* The randomized single-threaded test: requests, and the most pages one
 * request touches.
 */
#define TEST_RANDOM_OPS 1500
#define TEST_RANDOM_MAX_PAGES 12

/* The concurrency test: device size, the most pages one request
 * touches, and its runs: a few threads with many requests each, then
 * more threads than the engine serves at once (ENGINE_REQUESTS), so that
 * some wait for a request slot.
 */
#define TEST_CONC_PAGES 256
#define TEST_CONC_MAX_PAGES 8
#define TEST_MAX_THREADS 40
static const struct { unsigned threads, ops; } test_conc_runs[] = {
  { 6, 1500 }, { TEST_MAX_THREADS, 250 },
};
#define TEST_NCONC (sizeof test_conc_runs / sizeof test_conc_runs[0])

/* Seed of the randomized tests (ENGINE_TEST_SEED overrides it). */
static uint64_t test_seed = UINT64_C (0xe1161e);

/* Fill len bytes of buf with pseudo-random bytes. */
static void
test_fill_random (uint64_t *state, void *buf, size_t len)
{
  unsigned char *p = buf;
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = test_common_rand (state);
}

/* Word i of the stamp of version version of page page.  A stamp fills a
 * page: word 0 is the page, word 1 the version, the others derive from
 * both, so that a page read back tells whose data it is.
 */
static uint64_t
test_stamp_word (uint64_t page, uint64_t version, size_t i)
{
  if (i == 0)
    return page;
  if (i == 1)
    return version;
  return (page * UINT64_C (0x9e3779b97f4a7c15)) ^
    (version * UINT64_C (0xc2b2ae3d27d4eb4f)) ^
    (i * UINT64_C (0x165667b19e3779f9));
}

/* Write the stamp of (page, version), version >= 1, into buf. */
static void
test_stamp (void *buf, uint64_t page, uint64_t version)
{
  uint64_t *w = buf;
  size_t i;

  for (i = 0; i < PAGE_SIZE / sizeof *w; i++)
    w[i] = test_stamp_word (page, version, i);
}

/* What one page of data holds: 0 if it is all zeroes, the version if it
 * is a whole stamp of page, UINT64_MAX for anything else (another page's
 * stamp, a torn or foreign page).
 */
static uint64_t
test_stamp_version (const void *buf, uint64_t page)
{
  const uint64_t *w = buf;
  uint64_t version = w[1];
  size_t i;

  if (w[0] == 0 && version == 0) {
    for (i = 2; i < PAGE_SIZE / sizeof *w; i++)
      if (w[i] != 0)
        return UINT64_MAX;
    return 0;
  }
  if (version == 0)
    return UINT64_MAX;
  for (i = 0; i < PAGE_SIZE / sizeof *w; i++)
    if (w[i] != test_stamp_word (page, version, i))
      return UINT64_MAX;
  return version;
}

/* A device under test: the engine, its tier set and backends, and the
 * model of what the device must hold.
 */
struct test_dev {
  struct tierset *ts;
  struct engine *e;
  unsigned n;
  struct backend *be[TEST_MAX_BACKENDS];
  uint64_t npages, size;
  char *model;                         /* expected bytes of the device */
  bool *mapped;                        /* expected: page holds a slot */
  char *buf;                           /* scratch: size + 2 pages */
};

/* Build a device of npages pages with the given stripe, over n backends
 * (backend i has id i) failed after max_errors consecutive errors.
 */
static void
test_dev_create (struct test_dev *d, uint64_t npages, uint32_t stripe,
                 unsigned max_errors, unsigned n, const uint64_t *nslots,
                 const int *priority)
{
  unsigned i;

  ck_assert_uint_le (n, TEST_MAX_BACKENDS);
  memset (d, 0, sizeof *d);
  d->ts = tierset_create (max_errors);
  ck_assert_ptr_nonnull (d->ts);
  d->n = n;
  for (i = 0; i < n; i++) {
    char name[32];

    snprintf (name, sizeof name, "mem%u", i);
    d->be[i] = mem_backend_create (name, nslots[i]);
    ck_assert_int_eq (tierset_add (d->ts, d->be[i], priority[i]), i);
  }
  d->npages = npages;
  d->size = npages * PAGE_SIZE;
  d->e = engine_create (d->ts, npages, stripe, 1);
  ck_assert_ptr_nonnull (d->e);
  d->model = calloc (d->size, 1);
  d->mapped = calloc (npages, sizeof *d->mapped);
  ck_assert_ptr_nonnull (d->model);
  ck_assert_ptr_nonnull (d->mapped);
  d->buf = test_common_alloc (d->size + 2 * PAGE_SIZE);
}

/* Free the device and everything it holds. */
static void
test_dev_destroy (struct test_dev *d)
{
  engine_destroy (d->e);
  tierset_destroy (d->ts);
  free (d->model);
  free (d->mapped);
  free (d->buf);
}

/* Stats of backend id of the device. */
static struct tier_stats
test_dev_stats (struct test_dev *d, unsigned id)
{
  struct tier_stats st;

  TEST_REQUIRE (tierset_stats (d->ts, id, &st), "backend %u has no stats",
                id);
  return st;
}

/* Check invariant 5 on every backend and return the slots in use, summed
 * over the backends.
 */
static uint64_t
test_dev_used (struct test_dev *d, const char *where)
{
  uint64_t used = 0;
  unsigned i;

  for (i = 0; i < d->n; i++) {
    struct tier_stats st = test_dev_stats (d, i);

    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity,
                  "%s: backend %u: used %" PRIu64 " + free %" PRIu64
                  " + bad %" PRIu64 " != capacity %" PRIu64,
                  where, i, st.used, st.free, st.bad, st.capacity);
    used += st.used;
  }
  return used;
}

/* The pages the model says are mapped. */
static uint64_t
test_dev_mapped (const struct test_dev *d)
{
  uint64_t page, n = 0;

  for (page = 0; page < d->npages; page++)
    n += d->mapped[page];
  return n;
}

/* The extents engine_extents reported, in order. */
struct test_extents {
  unsigned n;
  uint64_t offset[TEST_MAX_EXTENTS], length[TEST_MAX_EXTENTS];
  bool hole[TEST_MAX_EXTENTS];
  unsigned stop_after;                 /* fail the call after so many */
};

/* Extent callback: record the extent; fail once stop_after are recorded. */
static int
test_extent_fn (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct test_extents *x = opaque;

  TEST_REQUIRE (x->n < TEST_MAX_EXTENTS, "too many extents");
  x->offset[x->n] = offset;
  x->length[x->n] = length;
  x->hole[x->n] = hole;
  x->n++;
  return x->stop_after > 0 && x->n == x->stop_after ? -1 : 0;
}

/* Check that the extents of the whole device cover it in order, in
 * alternating holes and data, with holes exactly where the model has
 * unmapped pages.
 */
static void
test_dev_check_extents (struct test_dev *d, const char *where)
{
  static struct test_extents x;
  uint64_t next = 0;
  unsigned i;

  memset (&x, 0, sizeof x);
  TEST_REQUIRE (engine_extents (d->e, d->size, 0, test_extent_fn, &x) == 0,
                "%s: extents: %s", where, strerror (errno));
  for (i = 0; i < x.n; i++) {
    uint64_t page;

    TEST_REQUIRE (x.offset[i] == next && x.length[i] > 0 &&
                  x.length[i] % PAGE_SIZE == 0,
                  "%s: extent %u is %" PRIu64 "+%" PRIu64 ", expected it "
                  "at %" PRIu64, where, i, x.offset[i], x.length[i], next);
    TEST_REQUIRE (i == 0 || x.hole[i] != x.hole[i - 1],
                  "%s: extents %u and %u are both %s", where, i - 1, i,
                  x.hole[i] ? "holes" : "data");
    for (page = x.offset[i] / PAGE_SIZE;
         page < (x.offset[i] + x.length[i]) / PAGE_SIZE; page++)
      TEST_REQUIRE (x.hole[i] == !d->mapped[page],
                    "%s: page %" PRIu64 " is reported as %s", where, page,
                    x.hole[i] ? "a hole" : "data");
    next = x.offset[i] + x.length[i];
  }
  TEST_REQUIRE (next == d->size, "%s: extents end at %" PRIu64
                " of %" PRIu64, where, next, d->size);
}

/* Check the whole device against the model: its bytes, its extents,
 * invariant 5, and one slot in use per mapped page.
 */
static void
test_dev_check (struct test_dev *d, const char *where)
{
  uint64_t used = test_dev_used (d, where);
  uint64_t mapped = test_dev_mapped (d);

  TEST_REQUIRE (used == mapped, "%s: %" PRIu64 " slots in use for %" PRIu64
                " mapped pages", where, used, mapped);
  memset (d->buf, 0xa5, d->size);
  TEST_REQUIRE (engine_read (d->e, d->buf, d->size, 0) == 0,
                "%s: read of the device: %s", where, strerror (errno));
  TEST_REQUIRE (memcmp (d->buf, d->model, d->size) == 0,
                "%s: the device differs from the model", where);
  test_dev_check_extents (d, where);
}

/* Write count bytes from src at offset, which must succeed, and apply
 * the write to the model: the pages it touches are mapped.
 */
static void
test_dev_write (struct test_dev *d, const void *src, uint32_t count,
                uint64_t offset, const char *where)
{
  uint64_t page;

  TEST_REQUIRE (engine_write (d->e, src, count, offset, false) == 0,
                "%s: write of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, count, offset, strerror (errno));
  memcpy (d->model + offset, src, count);
  for (page = offset / PAGE_SIZE;
       page * PAGE_SIZE < offset + count; page++)
    d->mapped[page] = true;
}

/* Requests that clear a range. */
enum test_clear {
  TEST_TRIM,                           /* engine_trim */
  TEST_ZERO,                           /* engine_zero, may unmap */
  TEST_ZERO_KEEP,                      /* engine_zero, keeping the space */
};

/* Clear count bytes at offset as told, which must succeed, and apply it
 * to the model.  Trim and zero unmap the whole pages they cover, which
 * read as zeroes; zero also zeroes the parts of the end pages it covers,
 * which keep their slot if they had one.  Zero keeping the space writes
 * zeroes, so every page it touches is mapped.
 */
static void
test_dev_clear (struct test_dev *d, enum test_clear how, uint32_t count,
                uint64_t offset, const char *where)
{
  uint64_t page, end = offset + count;
  int r;

  if (how == TEST_TRIM)
    r = engine_trim (d->e, count, offset, false);
  else
    r = engine_zero (d->e, count, offset, false, how == TEST_ZERO);
  TEST_REQUIRE (r == 0, "%s: %s of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, how == TEST_TRIM ? "trim" : "zero", count, offset,
                strerror (errno));
  if (how != TEST_TRIM)
    memset (d->model + offset, 0, count);
  if (how == TEST_ZERO_KEEP) {
    for (page = offset / PAGE_SIZE; page * PAGE_SIZE < end; page++)
      d->mapped[page] = true;
    return;
  }
  for (page = (offset + PAGE_SIZE - 1) / PAGE_SIZE;
       (page + 1) * PAGE_SIZE <= end; page++) {
    memset (d->model + page * PAGE_SIZE, 0, PAGE_SIZE);
    d->mapped[page] = false;
  }
}

/* Read count bytes at offset into dst, which must succeed and give what
 * the model holds.
 */
static void
test_dev_read (struct test_dev *d, void *dst, uint32_t count,
               uint64_t offset, const char *where)
{
  TEST_REQUIRE (engine_read (d->e, dst, count, offset) == 0,
                "%s: read of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, count, offset, strerror (errno));
  TEST_REQUIRE (memcmp (dst, d->model + offset, count) == 0,
                "%s: read of %" PRIu32 " bytes at %" PRIu64 " differs from "
                "the model", where, count, offset);
}

/* Counters of backend i of the device. */
static struct mem_counters
test_dev_counters (struct test_dev *d, unsigned i)
{
  struct mem_counters c;

  mem_backend_counters (d->be[i], &c);
  return c;
}

/* Find the backend and slot holding the stamp (page, version); fails the
 * test unless exactly one slot in all the backends holds it.
 */
static void
test_dev_locate (struct test_dev *d, uint64_t page, uint64_t version,
                 unsigned *backend, uint64_t *slot)
{
  char *p = test_common_alloc (PAGE_SIZE);
  unsigned i, found = 0;
  uint64_t s;

  for (i = 0; i < d->n; i++)
    for (s = 0; s < d->be[i]->nslots; s++) {
      mem_backend_peek (d->be[i], s, p);
      if (test_stamp_version (p, page) == version) {
        *backend = i;
        *slot = s;
        found++;
      }
    }
  free (p);
  ck_assert_msg (found == 1, "page %" PRIu64 " version %" PRIu64 " found "
                 "in %u slots", page, version, found);
}

/* Unmapped pages read as zeroes, aligned or not, without any backend
 * read, and the whole device is one hole.
 */
START_TEST (test_unmapped)
{
  static const uint64_t nslots[] = { 128 };
  static const int priority[] = { 0 };
  struct test_dev d;

  test_dev_create (&d, 64, 16, 3, 1, nslots, priority);
  test_dev_check (&d, "new device");
  memset (d.buf, 0xa5, PAGE_SIZE * 3);
  test_dev_read (&d, d.buf + 1, 5000, 3, "unaligned read");
  test_dev_read (&d, d.buf, 1, d.size - 1, "last byte");
  ck_assert_uint_eq (test_dev_counters (&d, 0).reads, 0);
  ck_assert_uint_eq (test_common_errors, 0);
  test_dev_destroy (&d);
}
END_TEST

/* Writes of every shape read back as written, from an aligned source
 * (_i == 0) or an unaligned one (_i == 1): aligned pages, unaligned and
 * partial pages, requests straddling pages and stripe units, the last
 * page and the last byte, the whole device.
 */
START_TEST (test_round_trip)
{
  static const uint64_t nslots[] = { 64, 64 };
  static const int priority[] = { 0, 0 };
  static const struct { uint64_t offset; uint32_t count; } req[] = {
    { 0, PAGE_SIZE },                          /* one aligned page */
    { 2 * PAGE_SIZE, 3 * PAGE_SIZE },          /* aligned pages */
    { 100, 5000 },                             /* unaligned, two pages */
    { 5 * PAGE_SIZE + 10, 20 },                /* inside one page */
    { 8 * PAGE_SIZE - 1, 2 },                  /* two bytes, two pages */
    { 10 * PAGE_SIZE, 16 * PAGE_SIZE },        /* four stripe units */
    { 39 * PAGE_SIZE, PAGE_SIZE },             /* the last page */
    { 40 * PAGE_SIZE - 1, 1 },                 /* the last byte */
    { 30 * PAGE_SIZE + 7, 5 * PAGE_SIZE },     /* unaligned, units */
    { 3 * PAGE_SIZE + 4095, 4097 },            /* ends on a page end */
    { 0, 40 * PAGE_SIZE },                     /* the whole device */
  };
  uint64_t rng = test_seed;
  struct test_dev d;
  char *src;
  size_t i;

  test_dev_create (&d, 40, 4, 3, 2, nslots, priority);
  src = test_common_alloc (d.size + PAGE_SIZE);
  for (i = 0; i < sizeof req / sizeof req[0]; i++) {
    char where[64];
    char *p = src + _i;

    snprintf (where, sizeof where, "request %zu", i);
    test_fill_random (&rng, p, req[i].count);
    test_dev_write (&d, p, req[i].count, req[i].offset, where);
    test_dev_check (&d, where);
    test_dev_read (&d, d.buf + _i, req[i].count, req[i].offset, where);
  }
  ck_assert_uint_eq (test_common_errors, 0);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* A random request range of up to TEST_RANDOM_MAX_PAGES pages, which
 * starts and ends on a page boundary two times out of three each.
 */
static void
test_random_range (uint64_t *rng, const struct test_dev *d,
                   uint64_t *offset, uint32_t *count)
{
  uint64_t page = test_common_below (rng, d->npages);
  uint64_t start = page * PAGE_SIZE;
  uint64_t end = (page + 1 + test_common_below (rng, TEST_RANDOM_MAX_PAGES)) *
    PAGE_SIZE;

  if (test_common_below (rng, 3) == 0)
    start += test_common_below (rng, PAGE_SIZE);
  if (end > d->size)
    end = d->size;
  if (test_common_below (rng, 3) == 0)
    end -= test_common_below (rng, PAGE_SIZE);
  if (end <= start)
    end = start + 1;
  *offset = start;
  *count = end - start;
}

/* Random writes, reads, trims and zeroes of random ranges over three
 * backends of two priorities, each checked against the model, with the
 * whole device, its extents and its slot counts checked after every
 * request.
 */
START_TEST (test_random)
{
  static const uint64_t nslots[] = { 64, 64, 128 };
  static const int priority[] = { 1, 1, 0 };
  uint64_t rng = test_seed + 1;
  struct test_dev d;
  char *src;
  unsigned op;

  test_dev_create (&d, 96, 4, 3, 3, nslots, priority);
  src = test_common_alloc (d.size + 2 * PAGE_SIZE);
  for (op = 0; op < TEST_RANDOM_OPS; op++) {
    unsigned dice = test_common_below (&rng, 10);
    size_t misalign =
      test_common_below (&rng, 2) ? 1 + test_common_below (&rng, 64) : 0;
    uint64_t offset;
    uint32_t count;
    char where[64];

    test_random_range (&rng, &d, &offset, &count);
    snprintf (where, sizeof where, "op %u", op);
    if (dice < 5) {
      test_fill_random (&rng, src + misalign, count);
      test_dev_write (&d, src + misalign, count, offset, where);
    }
    else if (dice < 7)
      test_dev_read (&d, src + misalign, count, offset, where);
    else
      test_dev_clear (&d, (enum test_clear) (dice - 7), count, offset,
                      where);
    test_dev_check (&d, where);
  }
  ck_assert_uint_eq (test_common_errors, 0);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Check that a request past the end fails with errno err after logging
 * an error.
 */
static void
test_refused (int r, int err, const char *what, unsigned errors)
{
  int saved_errno = errno;

  ck_assert_msg (r == -1, "%s succeeded", what);
  ck_assert_msg (saved_errno == err, "%s: errno %d (%s), expected %d (%s)",
                 what, saved_errno, strerror (saved_errno), err,
                 strerror (err));
  ck_assert_msg (test_common_errors > errors, "%s failed silently", what);
}

/* Requests reaching past the end of the device fail: reads, trims and
 * extents with EINVAL, writes and zeroes with ENOSPC, offsets near
 * UINT64_MAX included; they change nothing.  Empty requests at the very
 * end succeed.
 */
START_TEST (test_out_of_range)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  static const struct { uint64_t offset; uint32_t count; } req[] = {
    { 16 * PAGE_SIZE, 1 },
    { 16 * PAGE_SIZE - 1, 2 },
    { 15 * PAGE_SIZE, 2 * PAGE_SIZE },
    { 0, 16 * PAGE_SIZE + 1 },
    { 17 * PAGE_SIZE, 0 },
    { UINT64_MAX, 1 },
    { UINT64_MAX - 10, 100 },
    { UINT64_MAX - PAGE_SIZE + 1, PAGE_SIZE },
  };
  struct test_extents x = { 0 };
  struct test_dev d;
  char *src;
  size_t i;

  test_dev_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (17 * PAGE_SIZE);
  memset (src, 'x', 17 * PAGE_SIZE);
  test_dev_write (&d, src, 16 * PAGE_SIZE, 0, "fill");
  for (i = 0; i < sizeof req / sizeof req[0]; i++) {
    uint64_t o = req[i].offset;
    uint32_t c = req[i].count;
    unsigned e;

    e = test_common_errors;
    test_refused (engine_read (d.e, d.buf, c, o), EINVAL, "read", e);
    e = test_common_errors;
    test_refused (engine_write (d.e, src, c, o, false), ENOSPC, "write", e);
    e = test_common_errors;
    test_refused (engine_trim (d.e, c, o, false), EINVAL, "trim", e);
    e = test_common_errors;
    test_refused (engine_zero (d.e, c, o, false, true), ENOSPC, "zero", e);
    e = test_common_errors;
    test_refused (engine_zero (d.e, c, o, false, false), ENOSPC,
                  "zero keeping the space", e);
    e = test_common_errors;
    test_refused (engine_extents (d.e, c, o, test_extent_fn, &x), EINVAL,
                  "extents", e);
    test_dev_check (&d, "after a refused request");
  }
  ck_assert_uint_eq (x.n, 0);

  ck_assert_int_eq (engine_read (d.e, d.buf, 0, d.size), 0);
  ck_assert_int_eq (engine_write (d.e, src, 0, d.size, false), 0);
  ck_assert_int_eq (engine_trim (d.e, 0, d.size, false), 0);
  ck_assert_int_eq (engine_zero (d.e, 0, d.size, false, true), 0);
  ck_assert_int_eq (engine_zero (d.e, 0, d.size, false, false), 0);
  test_dev_check (&d, "after empty requests");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Trim frees the slots of the whole pages it covers, which then read as
 * zeroes, and trims them on the backend, whose failure to trim changes
 * nothing; pages it covers in part keep their data.
 */
START_TEST (test_trim)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  uint64_t rng = test_seed + 2;
  struct test_dev d;
  char *src;

  test_dev_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (8 * PAGE_SIZE);
  test_fill_random (&rng, src, 8 * PAGE_SIZE);
  test_dev_write (&d, src, 8 * PAGE_SIZE, 0, "write 8 pages");
  test_dev_check (&d, "write 8 pages");
  ck_assert_uint_eq (test_dev_used (&d, "write"), 8);

  test_dev_clear (&d, TEST_TRIM, 8 * PAGE_SIZE, 0, "trim 8 pages");
  test_dev_check (&d, "trim 8 pages");
  ck_assert_uint_eq (test_dev_used (&d, "trim"), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).trim_slots, 8);

  mem_backend_fail_all (d.be[0], MEM_FAIL_TRIM);
  test_dev_write (&d, src, PAGE_SIZE, 0, "write 1 page");
  test_dev_clear (&d, TEST_TRIM, PAGE_SIZE, 0, "failed backend trim");
  test_dev_check (&d, "failed backend trim");
  ck_assert_int_eq (test_dev_stats (&d, 0).state, TIER_ACTIVE);
  mem_backend_heal (d.be[0]);

  test_dev_write (&d, src, 3 * PAGE_SIZE, 0, "write 3 pages");
  test_dev_clear (&d, TEST_TRIM, 2 * PAGE_SIZE, 100, "partial trim");
  test_dev_check (&d, "partial trim");
  ck_assert_uint_eq (test_dev_used (&d, "partial trim"), 2);
  ck_assert (d.mapped[0] && !d.mapped[1] && d.mapped[2]);
  ck_assert_int_eq (memcmp (d.model, src, 100), 0);

  /* Trimming inside one page, or what is already unmapped, does nothing. */
  test_dev_clear (&d, TEST_TRIM, 10, 5, "trim inside a page");
  test_dev_clear (&d, TEST_TRIM, 4 * PAGE_SIZE, 8 * PAGE_SIZE, "trim holes");
  test_dev_check (&d, "small trims");
  ck_assert_uint_eq (test_dev_used (&d, "small trims"), 2);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Zero unmaps the whole pages it covers and zeroes the covered part of
 * the pages at either end, which keep one slot each; on an unmapped page
 * a partial zero writes nothing and leaves it unmapped.  Zero keeping the
 * space writes zeroes instead, and maps every page it touches.
 */
START_TEST (test_zero)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  uint64_t rng = test_seed + 3;
  struct test_dev d;
  uint64_t writes;
  char *src;

  test_dev_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 0, "write 4 pages");

  test_dev_clear (&d, TEST_ZERO, 2 * PAGE_SIZE, 100, "zero across 3 pages");
  test_dev_check (&d, "zero across 3 pages");
  ck_assert (d.mapped[0] && !d.mapped[1] && d.mapped[2] && d.mapped[3]);
  ck_assert_uint_eq (test_dev_used (&d, "zero"), 3);

  test_dev_clear (&d, TEST_ZERO, 10, 3 * PAGE_SIZE + 5,
                  "zero inside a page");
  test_dev_clear (&d, TEST_ZERO, PAGE_SIZE - 1, PAGE_SIZE * 2 + 1,
                  "zero to a page end");
  test_dev_clear (&d, TEST_ZERO, PAGE_SIZE + 1, 0,
                  "zero one page and a byte");
  test_dev_check (&d, "small zeroes");
  ck_assert_uint_eq (test_dev_used (&d, "small zeroes"), 2);

  writes = test_dev_counters (&d, 0).writes;
  test_dev_clear (&d, TEST_ZERO, 100, 8 * PAGE_SIZE + 10, "zero in a hole");
  test_dev_check (&d, "zero in a hole");
  ck_assert (!d.mapped[8]);
  ck_assert_uint_eq (test_dev_counters (&d, 0).writes, writes);

  /* Keeping the space, zeroes are written: the pages touched are mapped,
   * holes and data alike.
   */
  test_dev_clear (&d, TEST_ZERO_KEEP, 2 * PAGE_SIZE, 8 * PAGE_SIZE,
                  "keep in a hole");
  test_dev_clear (&d, TEST_ZERO_KEEP, PAGE_SIZE + 10, 2 * PAGE_SIZE - 5,
                  "keep over data");
  test_dev_check (&d, "zeroes kept");
  ck_assert (d.mapped[1] && d.mapped[2] && d.mapped[3] && d.mapped[8] &&
             d.mapped[9]);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Extents describe holes and data by whole pages, start at the page
 * holding offset, and stop at the first callback error, which engine
 * returns.
 */
START_TEST (test_extents)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  static struct test_extents x;
  struct test_dev d;
  char *src;

  test_dev_create (&d, 10, 4, 3, 1, nslots, priority);
  src = test_common_alloc (2 * PAGE_SIZE);
  memset (src, 'e', 2 * PAGE_SIZE);
  test_dev_write (&d, src, 2 * PAGE_SIZE, 2 * PAGE_SIZE, "pages 2-3");
  test_dev_write (&d, src, 1, 7 * PAGE_SIZE + 100, "page 7");
  test_dev_check (&d, "written");

  memset (&x, 0, sizeof x);
  ck_assert_int_eq (engine_extents (d.e, d.size, 0, test_extent_fn, &x), 0);
  ck_assert_uint_eq (x.n, 5);
  ck_assert (x.hole[0] && x.offset[0] == 0 && x.length[0] == 2 * PAGE_SIZE);
  ck_assert (!x.hole[1] && x.offset[1] == 2 * PAGE_SIZE &&
             x.length[1] == 2 * PAGE_SIZE);
  ck_assert (x.hole[2] && x.offset[2] == 4 * PAGE_SIZE &&
             x.length[2] == 3 * PAGE_SIZE);
  ck_assert (!x.hole[3] && x.offset[3] == 7 * PAGE_SIZE &&
             x.length[3] == PAGE_SIZE);
  ck_assert (x.hole[4] && x.offset[4] == 8 * PAGE_SIZE &&
             x.length[4] == 2 * PAGE_SIZE);

  /* A query inside page 2 to inside page 4. */
  memset (&x, 0, sizeof x);
  ck_assert_int_eq (engine_extents (d.e, 2 * PAGE_SIZE, 2 * PAGE_SIZE + 5,
                                    test_extent_fn, &x), 0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert (!x.hole[0] && x.offset[0] == 2 * PAGE_SIZE &&
             x.length[0] == 2 * PAGE_SIZE);
  ck_assert (x.hole[1] && x.offset[1] == 4 * PAGE_SIZE &&
             x.length[1] == PAGE_SIZE);

  /* The callback fails on the second extent. */
  memset (&x, 0, sizeof x);
  x.stop_after = 2;
  ck_assert_int_eq (engine_extents (d.e, d.size, 0, test_extent_fn, &x), -1);
  ck_assert_uint_eq (x.n, 2);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Clustering: on an empty backend a write of one aligned stripe unit is
 * one backend write of the whole unit, and a read of the pages is one
 * backend read, into an aligned buffer or not.  A write that is not
 * aligned to the units is one write per unit it touches.
 */
START_TEST (test_clustering)
{
  static const uint64_t nslots[] = { 64 };
  static const int priority[] = { 0 };
  uint64_t rng = test_seed + 4;
  struct mem_counters before, after;
  struct test_dev d;
  char *src;

  test_dev_create (&d, 48, 16, 3, 1, nslots, priority);
  src = test_common_alloc (16 * PAGE_SIZE);
  test_fill_random (&rng, src, 16 * PAGE_SIZE);

  before = test_dev_counters (&d, 0);
  test_dev_write (&d, src, 16 * PAGE_SIZE, 0, "one unit");
  after = test_dev_counters (&d, 0);
  ck_assert_uint_eq (after.writes - before.writes, 1);
  ck_assert_uint_eq (after.write_slots - before.write_slots, 16);
  ck_assert_uint_eq (after.reads, before.reads);

  before = after;
  test_dev_read (&d, d.buf, 16 * PAGE_SIZE, 0, "aligned read");
  after = test_dev_counters (&d, 0);
  ck_assert_uint_eq (after.reads - before.reads, 1);
  ck_assert_uint_eq (after.read_slots - before.read_slots, 16);

  before = after;
  test_dev_read (&d, d.buf + 1, 16 * PAGE_SIZE, 0, "unaligned read");
  after = test_dev_counters (&d, 0);
  ck_assert_uint_eq (after.reads - before.reads, 1);
  ck_assert_uint_eq (after.read_slots - before.read_slots, 16);

  before = after;
  test_dev_write (&d, src, 16 * PAGE_SIZE, 24 * PAGE_SIZE, "two halves");
  after = test_dev_counters (&d, 0);
  ck_assert_uint_eq (after.writes - before.writes, 2);
  ck_assert_uint_eq (after.write_slots - before.write_slots, 16);
  test_dev_check (&d, "clustering");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Striping: over two backends of equal priority with a stripe of 4
 * pages, a 32-page write is 8 backend writes of 4 slots, alternating
 * between the backends, each unit in consecutive slots.
 */
START_TEST (test_striping)
{
  static const uint64_t nslots[] = { 64, 64 };
  static const int priority[] = { 3, 3 };
  struct test_dev d;
  unsigned unit, i, first_backend = 0;
  char *src;

  test_dev_create (&d, 64, 4, 3, 2, nslots, priority);
  src = test_common_alloc (32 * PAGE_SIZE);
  for (i = 0; i < 32; i++)
    test_stamp (src + i * PAGE_SIZE, i, 1);
  test_dev_write (&d, src, 32 * PAGE_SIZE, 0, "32 pages");
  test_dev_check (&d, "32 pages");

  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_dev_counters (&d, i);

    ck_assert_uint_eq (c.writes, 4);
    ck_assert_uint_eq (c.write_slots, 16);
  }
  for (unit = 0; unit < 8; unit++) {
    unsigned backend;
    uint64_t slot0, slot;

    test_dev_locate (&d, unit * 4, 1, &backend, &slot0);
    if (unit == 0)
      first_backend = backend;
    ck_assert_msg (backend == (first_backend + unit) % 2,
                   "unit %u is on backend %u", unit, backend);
    for (i = 1; i < 4; i++) {
      unsigned b;

      test_dev_locate (&d, unit * 4 + i, 1, &b, &slot);
      ck_assert_uint_eq (b, backend);
      ck_assert_uint_eq (slot, slot0 + i);
    }
  }
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* A unit that does not fit on the preferred backend is split into one
 * run there and one on the next priority; a read of it is one backend
 * read per run, never one read across the two backends.
 */
START_TEST (test_split_run)
{
  static const uint64_t nslots[] = { 4, 16 };
  static const int priority[] = { 1, 0 };
  uint64_t rng = test_seed + 5;
  struct test_dev d;
  unsigned i;
  char *src;

  test_dev_create (&d, 8, 8, 3, 2, nslots, priority);
  src = test_common_alloc (8 * PAGE_SIZE);
  test_fill_random (&rng, src, 8 * PAGE_SIZE);
  test_dev_write (&d, src, 8 * PAGE_SIZE, 0, "8 pages");
  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_dev_counters (&d, i);

    ck_assert_uint_eq (c.writes, 1);
    ck_assert_uint_eq (c.write_slots, 4);
  }
  test_dev_read (&d, d.buf, 8 * PAGE_SIZE, 0, "8 pages");
  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_dev_counters (&d, i);

    ck_assert_uint_eq (c.reads, 1);
    ck_assert_uint_eq (c.read_slots, 4);
  }
  test_dev_check (&d, "split");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* While a backend is down, writes go to the others without trying it,
 * and its pages are still read; once up, it takes writes again.
 */
START_TEST (test_backend_down)
{
  static const uint64_t nslots[] = { 16, 16 };
  static const int priority[] = { 1, 0 };
  uint64_t rng = test_seed + 11;
  struct mem_counters before;
  struct test_dev d;
  char *src;

  test_dev_create (&d, 8, 4, 3, 2, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 0, "pages 0-3");
  ck_assert_uint_eq (test_dev_stats (&d, 0).used, 4);

  mem_backend_set_health (d.be[0], BACKEND_DOWN);
  before = test_dev_counters (&d, 0);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 4 * PAGE_SIZE, "pages 4-7");
  test_dev_write (&d, src, PAGE_SIZE, 0, "page 0 again");
  test_dev_check (&d, "backend 0 down");
  ck_assert_uint_eq (test_dev_counters (&d, 0).writes, before.writes);
  ck_assert_uint_eq (test_dev_stats (&d, 0).used, 3);
  ck_assert_uint_eq (test_dev_stats (&d, 1).used, 5);
  ck_assert_uint_eq (test_dev_stats (&d, 0).errors, 0);

  mem_backend_set_health (d.be[0], BACKEND_UP);
  test_dev_write (&d, src, PAGE_SIZE, 5 * PAGE_SIZE, "page 5 again");
  ck_assert_uint_eq (test_dev_stats (&d, 0).used, 4);
  test_dev_check (&d, "backend 0 up");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* A failed write marks its run bad and the data goes to another backend;
 * the request succeeds and reads back, also once the first backend is
 * dead (invariant 4).  The bad slots are never written again, however
 * many writes follow on that backend (invariant 2).
 */
START_TEST (test_write_error)
{
  static const uint64_t nslots[] = { 32, 32 };
  static const int priority[] = { 1, 0 };
  uint64_t rng = test_seed + 6;
  struct tier_stats st;
  struct test_dev d;
  uint64_t slot;
  unsigned i;
  char *src, *peek;

  test_dev_create (&d, 16, 4, 3, 2, nslots, priority);
  src = test_common_alloc (16 * PAGE_SIZE);
  peek = test_common_alloc (PAGE_SIZE);

  /* The first run goes to slots 0-3 of backend 0; slot 2 fails. */
  mem_backend_fail_slots (d.be[0], 2, 1, MEM_FAIL_WRITE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 0, "failed run");
  test_dev_check (&d, "failed run");
  st = test_dev_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 4);
  ck_assert_uint_eq (st.used, 0);
  ck_assert_uint_eq (st.errors, 1);
  ck_assert_int_eq (st.state, TIER_ACTIVE);
  ck_assert_uint_eq (test_dev_stats (&d, 1).used, 4);

  /* Backend 0 dies: the pages are on backend 1. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_ALL);
  test_dev_check (&d, "backend 0 dead");
  mem_backend_heal (d.be[0]);

  /* Many rewrites go round all of backend 0's slots, never the bad ones. */
  for (i = 0; i < 60; i++) {
    char where[64];

    snprintf (where, sizeof where, "rewrite %u", i);
    test_fill_random (&rng, src, 12 * PAGE_SIZE);
    test_dev_write (&d, src, 12 * PAGE_SIZE, 4 * PAGE_SIZE, where);
    test_dev_check (&d, where);
  }
  ck_assert_uint_eq (test_dev_stats (&d, 0).bad, 4);
  ck_assert_uint_gt (test_dev_counters (&d, 0).write_slots, 4 * 32);
  for (slot = 0; slot < 4; slot++) {
    static const char zero[PAGE_SIZE];

    mem_backend_peek (d.be[0], slot, peek);
    ck_assert_msg (memcmp (peek, zero, PAGE_SIZE) == 0,
                   "bad slot %" PRIu64 " was written again", slot);
  }
  free (src);
  free (peek);
  test_dev_destroy (&d);
}
END_TEST

/* When no backend can take a write, it fails with EIO, and the page
 * still reads as before the write; backends are failed after max_errors
 * write errors in a row (reads that work in between do not reset that)
 * and then not tried any more.
 */
START_TEST (test_write_nowhere)
{
  static const uint64_t nslots[] = { 16, 16 };
  static const int priority[] = { 1, 0 };
  uint64_t rng = test_seed + 7;
  struct test_dev d;
  uint64_t writes;
  unsigned i;
  char *src;

  test_dev_create (&d, 4, 4, 3, 2, nslots, priority);
  src = test_common_alloc (PAGE_SIZE);
  test_fill_random (&rng, src, PAGE_SIZE);
  test_dev_write (&d, src, PAGE_SIZE, 0, "page 0");

  /* Backend 0 cannot write: page 1 lands on backend 1. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_WRITE);
  test_fill_random (&rng, src, PAGE_SIZE);
  test_dev_write (&d, src, PAGE_SIZE, PAGE_SIZE, "page 1");
  test_dev_check (&d, "page 1");
  ck_assert_uint_eq (test_dev_stats (&d, 1).used, 1);

  /* Neither can: page 0 keeps its old data. */
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  test_fill_random (&rng, src, PAGE_SIZE);
  errno = 0;
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), -1);
  ck_assert_msg (errno == EIO, "errno %d (%s)", errno, strerror (errno));
  test_dev_check (&d, "no backend");
  /* Backend 0 failed a write for page 1; the reads of the device check
   * in between succeeded but do not end its run of write errors, so two
   * more failed it.  Each failed write marked its slot bad.
   */
  for (i = 0; i < 2; i++) {
    struct tier_stats st = test_dev_stats (&d, i);

    ck_assert_int_eq (st.state, TIER_FAILED);
    ck_assert_uint_eq (st.errors, 3);
    ck_assert_uint_eq (st.bad, st.errors);
  }

  /* Failed backends are not written at all any more. */
  writes = test_dev_counters (&d, 0).writes + test_dev_counters (&d, 1).writes;
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), -1);
  ck_assert_uint_eq (test_dev_counters (&d, 0).writes +
                     test_dev_counters (&d, 1).writes, writes);
  test_dev_check (&d, "failed backends");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Check that reading count bytes at offset fails with EIO. */
static void
test_read_fails (struct test_dev *d, uint32_t count, uint64_t offset,
                 const char *what)
{
  errno = 0;
  ck_assert_msg (engine_read (d->e, d->buf, count, offset) == -1,
                 "%s: read of a lost page succeeded", what);
  ck_assert_msg (errno == EIO, "%s: errno %d (%s), expected EIO", what,
                 errno, strerror (errno));
}

/* A page whose slot fails to read is LOST (invariant 1): every read of
 * it fails with EIO, even once the backend reads again, and never gives
 * zeroes or stale data; its slot is bad.  The other pages of the same
 * backend read are served.  A full write or a trim ends the loss; a
 * partial write cannot.
 */
START_TEST (test_read_error)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  uint64_t rng = test_seed + 8;
  struct tier_stats st;
  struct test_dev d;
  uint64_t reads;
  char *src;

  test_dev_create (&d, 8, 4, 10, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 0, "4 pages");

  /* Page 2 is in slot 2, read as part of one run of 4. */
  mem_backend_fail_slots (d.be[0], 2, 1, MEM_FAIL_READ);
  test_read_fails (&d, 4 * PAGE_SIZE, 0, "run");
  st = test_dev_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 1);
  ck_assert_uint_eq (st.used, 3);
  ck_assert_uint_eq (st.used + st.free + st.bad, st.capacity);
  test_dev_read (&d, d.buf, 2 * PAGE_SIZE, 0, "pages 0-1");
  test_dev_read (&d, d.buf, PAGE_SIZE, 3 * PAGE_SIZE, "page 3");

  /* Lost pages are not read from the backend again, even healed: the
   * backend sees at most the reads of pages 0-1 before page 2 in the last
   * two requests.
   */
  mem_backend_heal (d.be[0]);
  reads = test_dev_counters (&d, 0).reads;
  test_read_fails (&d, PAGE_SIZE, 2 * PAGE_SIZE, "page 2");
  test_read_fails (&d, 1, 2 * PAGE_SIZE + 100, "a byte of page 2");
  test_read_fails (&d, 4 * PAGE_SIZE, 0, "pages 0-3");
  test_read_fails (&d, 3 * PAGE_SIZE, 100, "unaligned");
  ck_assert_uint_le (test_dev_counters (&d, 0).reads - reads, 2);

  /* A lost page is data for extents, and a partial write fails. */
  test_dev_check_extents (&d, "lost page");
  errno = 0;
  ck_assert_int_eq (engine_write (d.e, src, 10, 2 * PAGE_SIZE + 5, false),
                    -1);
  ck_assert_int_eq (errno, EIO);
  test_read_fails (&d, PAGE_SIZE, 2 * PAGE_SIZE, "after a partial write");

  /* A full write makes the page readable again, in a new slot. */
  test_fill_random (&rng, src, PAGE_SIZE);
  test_dev_write (&d, src, PAGE_SIZE, 2 * PAGE_SIZE, "rewrite page 2");
  test_dev_check (&d, "rewrite page 2");
  ck_assert_uint_eq (test_dev_stats (&d, 0).bad, 1);

  /* Lose page 3 and page 1 too, then trim one and zero the other. */
  mem_backend_fail_slots (d.be[0], 1, 1, MEM_FAIL_READ);
  mem_backend_fail_slots (d.be[0], 3, 1, MEM_FAIL_READ);
  test_read_fails (&d, PAGE_SIZE, PAGE_SIZE, "page 1");
  test_read_fails (&d, PAGE_SIZE, 3 * PAGE_SIZE, "page 3");
  mem_backend_heal (d.be[0]);
  test_dev_clear (&d, TEST_TRIM, PAGE_SIZE, PAGE_SIZE, "trim page 1");
  test_dev_clear (&d, TEST_ZERO, PAGE_SIZE, 3 * PAGE_SIZE, "zero page 3");
  test_dev_check (&d, "after trim and zero");
  st = test_dev_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 3);
  ck_assert_uint_eq (st.used, 2);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* A read error that does not repeat loses nothing: the run is read again
 * page by page and the request succeeds.
 */
START_TEST (test_transient_read_error)
{
  static const uint64_t nslots[] = { 32 };
  static const int priority[] = { 0 };
  uint64_t rng = test_seed + 9;
  struct tier_stats st;
  struct test_dev d;
  char *src;

  test_dev_create (&d, 8, 4, 10, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_dev_write (&d, src, 4 * PAGE_SIZE, 0, "4 pages");
  mem_backend_fail_every (d.be[0], 100);
  test_dev_read (&d, d.buf, 4 * PAGE_SIZE, 0, "retried run");
  mem_backend_heal (d.be[0]);
  st = test_dev_stats (&d, 0);
  ck_assert_uint_eq (st.errors, 1);
  ck_assert_uint_eq (st.bad, 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).failures, 1);
  test_dev_check (&d, "after a transient error");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* Rewriting pages, whole or in part, frees their old slots: the slots in
 * use stay one per page however often the pages are rewritten.
 */
START_TEST (test_rewrite)
{
  static const uint64_t nslots[] = { 24, 24 };
  static const int priority[] = { 0, 0 };
  uint64_t rng = test_seed + 10;
  struct test_dev d;
  unsigned i;
  char *src;

  test_dev_create (&d, 16, 4, 3, 2, nslots, priority);
  src = test_common_alloc (17 * PAGE_SIZE);
  test_fill_random (&rng, src, 16 * PAGE_SIZE);
  test_dev_write (&d, src, 16 * PAGE_SIZE, 0, "all pages");
  for (i = 0; i < 300; i++) {
    uint64_t offset;
    uint32_t count;
    char where[64];

    snprintf (where, sizeof where, "rewrite %u", i);
    test_random_range (&rng, &d, &offset, &count);
    test_fill_random (&rng, src, count);
    test_dev_write (&d, src + i % 2, count, offset, where);
    ck_assert_uint_eq (test_dev_used (&d, where), 16);
  }
  test_dev_check (&d, "rewrites");
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* FUA reaches the backend write; flush flushes the backends holding
 * pages written since their last flush and only those; a trim or zero
 * with FUA flushes.
 */
START_TEST (test_fua_flush)
{
  static const uint64_t nslots[] = { 16, 16 };
  static const int priority[] = { 1, 0 };
  struct test_dev d;
  char *src;

  test_dev_create (&d, 8, 4, 3, 2, nslots, priority);
  src = test_common_alloc (PAGE_SIZE);
  memset (src, 'f', PAGE_SIZE);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, true), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).fua_writes, 1);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).fua_writes, 1);

  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).flushes, 1);
  ck_assert_uint_eq (test_dev_counters (&d, 1).flushes, 0);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).flushes, 1);

  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, PAGE_SIZE, false), 0);
  ck_assert_int_eq (engine_trim (d.e, PAGE_SIZE, 0, true), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).flushes, 2);
  ck_assert_int_eq (engine_write (d.e, src, 100, 0, false), 0);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, PAGE_SIZE, false), 0);
  ck_assert_int_eq (engine_zero (d.e, 10, 0, true, true), 0);
  ck_assert_uint_eq (test_dev_counters (&d, 0).flushes, 3);
  ck_assert_uint_eq (test_dev_counters (&d, 1).flushes, 0);
  free (src);
  test_dev_destroy (&d);
}
END_TEST

/* engine_create refuses stripes outside 1 .. ENGINE_STRIPE_MAX and an
 * empty device, logging why.
 */
START_TEST (test_create_errors)
{
  struct tierset *ts = tierset_create (3);
  struct engine *e;
  unsigned errors;

  ck_assert_ptr_nonnull (ts);
  ck_assert_int_eq (tierset_add (ts, mem_backend_create ("mem", 16), 0), 0);
  errors = test_common_errors;
  ck_assert_ptr_null (engine_create (ts, 8, 0, 1));
  ck_assert_uint_gt (test_common_errors, errors);
  errors = test_common_errors;
  ck_assert_ptr_null (engine_create (ts, 8, ENGINE_STRIPE_MAX + 1, 1));
  ck_assert_uint_gt (test_common_errors, errors);
  errors = test_common_errors;
  ck_assert_ptr_null (engine_create (ts, 0, 4, 1));
  ck_assert_uint_gt (test_common_errors, errors);
  e = engine_create (ts, 8, ENGINE_STRIPE_MAX, 1);
  ck_assert_ptr_nonnull (e);
  engine_destroy (e);
  tierset_destroy (ts);
}
END_TEST

/* State shared by the threads of the concurrency test. */
struct test_conc {
  struct test_dev *d;
  unsigned ops;                        /* requests per worker */
  uint64_t last_version;               /* atomic: last version handed out */
  bool done;                           /* atomic: the workers finished */
};

/* One thread of the concurrency test. */
struct test_worker {
  struct test_conc *c;
  pthread_t tid;
  uint64_t rng;
  char *buf;                           /* TEST_CONC_MAX_PAGES + 1 pages */
  char failure[256];                   /* the first failure, or "" */
};

/* Record the first failure of a worker. */
static void
test_worker_fail (struct test_worker *w, const char *fmt, ...)
{
  va_list args;

  if (w->failure[0] != '\0')
    return;
  va_start (args, fmt);
  vsnprintf (w->failure, sizeof w->failure, fmt, args);
  va_end (args);
}

/* Check that the n pages from page in buf each hold zeroes or a stamp of
 * their own page with a version already handed out.
 */
static void
test_worker_check (struct test_worker *w, const char *buf, uint64_t page,
                   uint64_t n, const char *what)
{
  uint64_t last = __atomic_load_n (&w->c->last_version, __ATOMIC_ACQUIRE);
  uint64_t i;

  for (i = 0; i < n; i++) {
    uint64_t v = test_stamp_version (buf + i * PAGE_SIZE, page + i);

    if (v == UINT64_MAX || v > last) {
      const uint64_t *word = (const uint64_t *) (buf + i * PAGE_SIZE);

      test_worker_fail (w, "%s: page %" PRIu64 " holds page %" PRIu64
                        " version %" PRIu64 " (a torn page, another page's "
                        "data or a version never written; last %" PRIu64
                        ")", what, page + i, word[0], word[1], last);
      return;
    }
  }
}

/* A worker: random writes of stamped pages, reads, trims and zeroes of
 * whole pages, overlapping those of the other workers, each read checked
 * with test_worker_check.  Half of the requests use an unaligned buffer.
 */
static void *
test_worker_run (void *arg)
{
  struct test_worker *w = arg;
  struct test_dev *d = w->c->d;
  unsigned op;

  for (op = 0; op < w->c->ops && w->failure[0] == '\0'; op++) {
    uint64_t page = test_common_below (&w->rng, d->npages);
    uint64_t n = 1 + test_common_below (&w->rng, TEST_CONC_MAX_PAGES);
    unsigned dice = test_common_below (&w->rng, 20);
    char *p = w->buf + (test_common_below (&w->rng, 2) ? 0 : 8);
    uint32_t count;
    uint64_t i;

    if (page + n > d->npages)
      n = d->npages - page;
    count = n * PAGE_SIZE;
    if (dice < 9) {
      uint64_t v = __atomic_add_fetch (&w->c->last_version, 1,
                                       __ATOMIC_ACQ_REL);

      for (i = 0; i < n; i++)
        test_stamp (p + i * PAGE_SIZE, page + i, v);
      if (engine_write (d->e, p, count, page * PAGE_SIZE, false) == -1)
        test_worker_fail (w, "write: %s", strerror (errno));
    }
    else if (dice < 17) {
      if (engine_read (d->e, p, count, page * PAGE_SIZE) == -1)
        test_worker_fail (w, "read: %s", strerror (errno));
      else
        test_worker_check (w, p, page, n, "read");
    }
    else if (dice < 19) {
      if (engine_trim (d->e, count, page * PAGE_SIZE, false) == -1)
        test_worker_fail (w, "trim: %s", strerror (errno));
    }
    else if (engine_zero (d->e, count, page * PAGE_SIZE, false,
                          true) == -1)
      test_worker_fail (w, "zero: %s", strerror (errno));
  }
  return NULL;
}

/* A thread reading the stats of every backend until the workers are
 * done, checking invariant 5 at each reading.
 */
static void *
test_stats_run (void *arg)
{
  struct test_worker *w = arg;
  struct test_dev *d = w->c->d;

  while (!__atomic_load_n (&w->c->done, __ATOMIC_ACQUIRE) &&
         w->failure[0] == '\0') {
    unsigned i;

    for (i = 0; i < d->n; i++) {
      struct tier_stats st;

      if (!tierset_stats (d->ts, i, &st))
        test_worker_fail (w, "backend %u has no stats", i);
      else if (st.used + st.free + st.bad != st.capacity)
        test_worker_fail (w, "backend %u: used %" PRIu64 " + free %" PRIu64
                          " + bad %" PRIu64 " != capacity %" PRIu64,
                          i, st.used, st.free, st.bad, st.capacity);
    }
  }
  return NULL;
}

/* Several threads write, read, trim and zero overlapping whole pages at
 * once; every page read holds zeroes or a stamp of that very page, never
 * another page's data (invariant 3), and invariant 5 holds at every
 * reading of the stats.  At the end every page holds zeroes or its own
 * stamp, the mapped pages are those holding a stamp, and the slots in use
 * are exactly one per mapped page: as the stamps of different pages
 * differ, no slot serves two pages and none leaked.
 */
START_TEST (test_concurrency)
{
  static const uint64_t nslots[] = { 256, 256 };
  static const int priority[] = { 0, 0 };
  static struct test_worker w[TEST_MAX_THREADS + 1];
  const unsigned nthreads = test_conc_runs[_i].threads;
  struct test_conc c = { .ops = test_conc_runs[_i].ops };
  struct test_dev d;
  uint64_t page, stamped = 0;
  unsigned i;

  test_dev_create (&d, TEST_CONC_PAGES, 4, 3, 2, nslots, priority);
  ck_assert_uint_ge (2 * 256, TEST_CONC_PAGES + engine_min_spare (4));
  for (i = 0; i < d.n; i++)
    mem_backend_set_yield (d.be[i], true);
  c.d = &d;
  for (i = 0; i <= nthreads; i++) {
    memset (&w[i], 0, sizeof w[i]);
    w[i].c = &c;
    w[i].rng = test_seed + 100 + i;
    w[i].buf = test_common_alloc ((TEST_CONC_MAX_PAGES + 1) * PAGE_SIZE);
    ck_assert_int_eq (pthread_create (&w[i].tid, NULL,
                                      i < nthreads ? test_worker_run
                                      : test_stats_run, &w[i]), 0);
  }
  for (i = 0; i < nthreads; i++)
    ck_assert_int_eq (pthread_join (w[i].tid, NULL), 0);
  __atomic_store_n (&c.done, true, __ATOMIC_RELEASE);
  ck_assert_int_eq (pthread_join (w[nthreads].tid, NULL), 0);
  for (i = 0; i <= nthreads; i++) {
    ck_assert_msg (w[i].failure[0] == '\0', "thread %u: %s", i,
                   w[i].failure);
    free (w[i].buf);
  }

  /* The model of the final state: stamped pages are mapped. */
  ck_assert_int_eq (engine_read (d.e, d.buf, d.size, 0), 0);
  for (page = 0; page < d.npages; page++) {
    uint64_t v = test_stamp_version (d.buf + page * PAGE_SIZE, page);

    ck_assert_msg (v != UINT64_MAX && v <= c.last_version,
                   "page %" PRIu64 " holds foreign data", page);
    d.mapped[page] = v != 0;
    stamped += v != 0;
  }
  memcpy (d.model, d.buf, d.size);
  test_dev_check (&d, "after the threads");
  ck_assert_uint_eq (test_dev_used (&d, "end"), stamped);
  ck_assert_uint_eq (test_common_errors, 0);
  test_dev_destroy (&d);
}
END_TEST

/* The suite of engine tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("engine");
  TCase *tc;

  tc = tcase_create ("data");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_unmapped);
  tcase_add_loop_test (tc, test_round_trip, 0, 2);
  tcase_add_test (tc, test_random);
  tcase_add_test (tc, test_out_of_range);
  tcase_add_test (tc, test_trim);
  tcase_add_test (tc, test_zero);
  tcase_add_test (tc, test_extents);
  tcase_add_test (tc, test_rewrite);
  tcase_add_test (tc, test_fua_flush);
  tcase_add_test (tc, test_create_errors);
  suite_add_tcase (s, tc);

  tc = tcase_create ("placement");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_clustering);
  tcase_add_test (tc, test_striping);
  tcase_add_test (tc, test_split_run);
  suite_add_tcase (s, tc);

  tc = tcase_create ("errors");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_write_error);
  tcase_add_test (tc, test_write_nowhere);
  tcase_add_test (tc, test_read_error);
  tcase_add_test (tc, test_transient_read_error);
  tcase_add_test (tc, test_backend_down);
  suite_add_tcase (s, tc);

  tc = tcase_create ("concurrency");
  tcase_set_timeout (tc, 120);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_loop_test (tc, test_concurrency, 0, TEST_NCONC);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-engine", test_suite, "ENGINE_TEST_SEED",
                           &test_seed);
}
