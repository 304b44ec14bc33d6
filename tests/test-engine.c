/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the engine (lib/engine), over in-memory
 * backends: its requests, and where they put the pages.
 *
 * Most tests keep a model of the exported device (test-engine-model.h):
 * its bytes, and whether each page holds a slot.  After every request
 * they read the device back and compare it with the model, compare the
 * extents with the mapped pages, and check invariant 5 (used + free +
 * bad = capacity) and that the slots in use are exactly one per mapped
 * page, so that a rewrite that leaked its old slots would be seen.
 * Others count the requests the backends receive (clustering, striping,
 * a run split over two backends).  Backend errors and requests from
 * several threads at once are the matter of test-engine-faults.c.
 *
 * The randomized tests use fixed seeds; set ENGINE_TEST_SEED to another
 * number to explore, or to the seed printed by a failure to replay it.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
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
#include "test-engine-model.h"
#include "tierset.h"

/* The randomized single-threaded test: requests, and the most pages one
 * request touches.
 */
#define TEST_RANDOM_OPS 1500
#define TEST_RANDOM_MAX_PAGES 12

/* Seed of the randomized tests (ENGINE_TEST_SEED overrides it). */
static uint64_t test_seed = UINT64_C (0xe1161e);

/* Find the backend and slot holding the stamp (page, version); fails the
 * test unless exactly one slot in all the backends holds it.
 */
static void
test_model_locate (struct test_model *d, uint64_t page, uint64_t version,
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
  struct test_model d;

  test_model_create (&d, 64, 16, 3, 1, nslots, priority);
  test_model_check (&d, "new device");
  memset (d.buf, 0xa5, PAGE_SIZE * 3);
  test_model_read (&d, d.buf + 1, 5000, 3, "unaligned read");
  test_model_read (&d, d.buf, 1, d.size - 1, "last byte");
  ck_assert_uint_eq (test_model_counters (&d, 0).reads, 0);
  ck_assert_uint_eq (test_common_errors, 0);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;
  size_t i;

  test_model_create (&d, 40, 4, 3, 2, nslots, priority);
  src = test_common_alloc (d.size + PAGE_SIZE);
  for (i = 0; i < sizeof req / sizeof req[0]; i++) {
    char where[64];
    char *p = src + _i;

    snprintf (where, sizeof where, "request %zu", i);
    test_fill_random (&rng, p, req[i].count);
    test_model_write (&d, p, req[i].count, req[i].offset, where);
    test_model_check (&d, where);
    test_model_read (&d, d.buf + _i, req[i].count, req[i].offset, where);
  }
  ck_assert_uint_eq (test_common_errors, 0);
  free (src);
  test_model_destroy (&d);
}
END_TEST

/* A random request range of up to TEST_RANDOM_MAX_PAGES pages, which
 * starts and ends on a page boundary two times out of three each.
 */
static void
test_random_range (uint64_t *rng, const struct test_model *d,
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
  struct test_model d;
  char *src;
  unsigned op;

  test_model_create (&d, 96, 4, 3, 3, nslots, priority);
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
      test_model_write (&d, src + misalign, count, offset, where);
    }
    else if (dice < 7)
      test_model_read (&d, src + misalign, count, offset, where);
    else
      test_model_clear (&d, (enum test_clear) (dice - 7), count, offset,
                        where);
    test_model_check (&d, where);
  }
  ck_assert_uint_eq (test_common_errors, 0);
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;
  size_t i;

  test_model_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (17 * PAGE_SIZE);
  memset (src, 'x', 17 * PAGE_SIZE);
  test_model_write (&d, src, 16 * PAGE_SIZE, 0, "fill");
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
    test_model_check (&d, "after a refused request");
  }
  ck_assert_uint_eq (x.n, 0);

  ck_assert_int_eq (engine_read (d.e, d.buf, 0, d.size), 0);
  ck_assert_int_eq (engine_write (d.e, src, 0, d.size, false), 0);
  ck_assert_int_eq (engine_trim (d.e, 0, d.size, false), 0);
  ck_assert_int_eq (engine_zero (d.e, 0, d.size, false, true), 0);
  ck_assert_int_eq (engine_zero (d.e, 0, d.size, false, false), 0);
  test_model_check (&d, "after empty requests");
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;

  test_model_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (8 * PAGE_SIZE);
  test_fill_random (&rng, src, 8 * PAGE_SIZE);
  test_model_write (&d, src, 8 * PAGE_SIZE, 0, "write 8 pages");
  test_model_check (&d, "write 8 pages");
  ck_assert_uint_eq (test_model_used (&d, "write"), 8);

  test_model_clear (&d, TEST_TRIM, 8 * PAGE_SIZE, 0, "trim 8 pages");
  test_model_check (&d, "trim 8 pages");
  ck_assert_uint_eq (test_model_used (&d, "trim"), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).trim_slots, 8);

  mem_backend_fail_all (d.be[0], MEM_FAIL_TRIM);
  test_model_write (&d, src, PAGE_SIZE, 0, "write 1 page");
  test_model_clear (&d, TEST_TRIM, PAGE_SIZE, 0, "failed backend trim");
  test_model_check (&d, "failed backend trim");
  ck_assert_int_eq (test_model_stats (&d, 0).state, TIER_ACTIVE);
  mem_backend_heal (d.be[0]);

  test_model_write (&d, src, 3 * PAGE_SIZE, 0, "write 3 pages");
  test_model_clear (&d, TEST_TRIM, 2 * PAGE_SIZE, 100, "partial trim");
  test_model_check (&d, "partial trim");
  ck_assert_uint_eq (test_model_used (&d, "partial trim"), 2);
  ck_assert (d.mapped[0] && !d.mapped[1] && d.mapped[2]);
  ck_assert_int_eq (memcmp (d.model, src, 100), 0);

  /* Trimming inside one page, or what is already unmapped, does nothing. */
  test_model_clear (&d, TEST_TRIM, 10, 5, "trim inside a page");
  test_model_clear (&d, TEST_TRIM, 4 * PAGE_SIZE, 8 * PAGE_SIZE, "trim holes");
  test_model_check (&d, "small trims");
  ck_assert_uint_eq (test_model_used (&d, "small trims"), 2);
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  uint64_t writes;
  char *src;

  test_model_create (&d, 16, 4, 3, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 0, "write 4 pages");

  test_model_clear (&d, TEST_ZERO, 2 * PAGE_SIZE, 100, "zero across 3 pages");
  test_model_check (&d, "zero across 3 pages");
  ck_assert (d.mapped[0] && !d.mapped[1] && d.mapped[2] && d.mapped[3]);
  ck_assert_uint_eq (test_model_used (&d, "zero"), 3);

  test_model_clear (&d, TEST_ZERO, 10, 3 * PAGE_SIZE + 5,
                    "zero inside a page");
  test_model_clear (&d, TEST_ZERO, PAGE_SIZE - 1, PAGE_SIZE * 2 + 1,
                    "zero to a page end");
  test_model_clear (&d, TEST_ZERO, PAGE_SIZE + 1, 0,
                    "zero one page and a byte");
  test_model_check (&d, "small zeroes");
  ck_assert_uint_eq (test_model_used (&d, "small zeroes"), 2);

  writes = test_model_counters (&d, 0).writes;
  test_model_clear (&d, TEST_ZERO, 100, 8 * PAGE_SIZE + 10, "zero in a hole");
  test_model_check (&d, "zero in a hole");
  ck_assert (!d.mapped[8]);
  ck_assert_uint_eq (test_model_counters (&d, 0).writes, writes);

  /* Keeping the space, zeroes are written: the pages touched are mapped,
   * holes and data alike.
   */
  test_model_clear (&d, TEST_ZERO_KEEP, 2 * PAGE_SIZE, 8 * PAGE_SIZE,
                    "keep in a hole");
  test_model_clear (&d, TEST_ZERO_KEEP, PAGE_SIZE + 10, 2 * PAGE_SIZE - 5,
                    "keep over data");
  test_model_check (&d, "zeroes kept");
  ck_assert (d.mapped[1] && d.mapped[2] && d.mapped[3] && d.mapped[8] &&
             d.mapped[9]);
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;

  test_model_create (&d, 10, 4, 3, 1, nslots, priority);
  src = test_common_alloc (2 * PAGE_SIZE);
  memset (src, 'e', 2 * PAGE_SIZE);
  test_model_write (&d, src, 2 * PAGE_SIZE, 2 * PAGE_SIZE, "pages 2-3");
  test_model_write (&d, src, 1, 7 * PAGE_SIZE + 100, "page 7");
  test_model_check (&d, "written");

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
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;

  test_model_create (&d, 48, 16, 3, 1, nslots, priority);
  src = test_common_alloc (16 * PAGE_SIZE);
  test_fill_random (&rng, src, 16 * PAGE_SIZE);

  before = test_model_counters (&d, 0);
  test_model_write (&d, src, 16 * PAGE_SIZE, 0, "one unit");
  after = test_model_counters (&d, 0);
  ck_assert_uint_eq (after.writes - before.writes, 1);
  ck_assert_uint_eq (after.write_slots - before.write_slots, 16);
  ck_assert_uint_eq (after.reads, before.reads);

  before = after;
  test_model_read (&d, d.buf, 16 * PAGE_SIZE, 0, "aligned read");
  after = test_model_counters (&d, 0);
  ck_assert_uint_eq (after.reads - before.reads, 1);
  ck_assert_uint_eq (after.read_slots - before.read_slots, 16);

  before = after;
  test_model_read (&d, d.buf + 1, 16 * PAGE_SIZE, 0, "unaligned read");
  after = test_model_counters (&d, 0);
  ck_assert_uint_eq (after.reads - before.reads, 1);
  ck_assert_uint_eq (after.read_slots - before.read_slots, 16);

  before = after;
  test_model_write (&d, src, 16 * PAGE_SIZE, 24 * PAGE_SIZE, "two halves");
  after = test_model_counters (&d, 0);
  ck_assert_uint_eq (after.writes - before.writes, 2);
  ck_assert_uint_eq (after.write_slots - before.write_slots, 16);
  test_model_check (&d, "clustering");
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  unsigned unit, i, first_backend = 0;
  char *src;

  test_model_create (&d, 64, 4, 3, 2, nslots, priority);
  src = test_common_alloc (32 * PAGE_SIZE);
  for (i = 0; i < 32; i++)
    test_stamp (src + i * PAGE_SIZE, i, 1);
  test_model_write (&d, src, 32 * PAGE_SIZE, 0, "32 pages");
  test_model_check (&d, "32 pages");

  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_model_counters (&d, i);

    ck_assert_uint_eq (c.writes, 4);
    ck_assert_uint_eq (c.write_slots, 16);
  }
  for (unit = 0; unit < 8; unit++) {
    unsigned backend;
    uint64_t slot0, slot;

    test_model_locate (&d, unit * 4, 1, &backend, &slot0);
    if (unit == 0)
      first_backend = backend;
    ck_assert_msg (backend == (first_backend + unit) % 2,
                   "unit %u is on backend %u", unit, backend);
    for (i = 1; i < 4; i++) {
      unsigned b;

      test_model_locate (&d, unit * 4 + i, 1, &b, &slot);
      ck_assert_uint_eq (b, backend);
      ck_assert_uint_eq (slot, slot0 + i);
    }
  }
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  unsigned i;
  char *src;

  test_model_create (&d, 8, 8, 3, 2, nslots, priority);
  src = test_common_alloc (8 * PAGE_SIZE);
  test_fill_random (&rng, src, 8 * PAGE_SIZE);
  test_model_write (&d, src, 8 * PAGE_SIZE, 0, "8 pages");
  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_model_counters (&d, i);

    ck_assert_uint_eq (c.writes, 1);
    ck_assert_uint_eq (c.write_slots, 4);
  }
  test_model_read (&d, d.buf, 8 * PAGE_SIZE, 0, "8 pages");
  for (i = 0; i < 2; i++) {
    struct mem_counters c = test_model_counters (&d, i);

    ck_assert_uint_eq (c.reads, 1);
    ck_assert_uint_eq (c.read_slots, 4);
  }
  test_model_check (&d, "split");
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  unsigned i;
  char *src;

  test_model_create (&d, 16, 4, 3, 2, nslots, priority);
  src = test_common_alloc (17 * PAGE_SIZE);
  test_fill_random (&rng, src, 16 * PAGE_SIZE);
  test_model_write (&d, src, 16 * PAGE_SIZE, 0, "all pages");
  for (i = 0; i < 300; i++) {
    uint64_t offset;
    uint32_t count;
    char where[64];

    snprintf (where, sizeof where, "rewrite %u", i);
    test_random_range (&rng, &d, &offset, &count);
    test_fill_random (&rng, src, count);
    test_model_write (&d, src + i % 2, count, offset, where);
    ck_assert_uint_eq (test_model_used (&d, where), 16);
  }
  test_model_check (&d, "rewrites");
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;

  test_model_create (&d, 8, 4, 3, 2, nslots, priority);
  src = test_common_alloc (PAGE_SIZE);
  memset (src, 'f', PAGE_SIZE);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, true), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).fua_writes, 1);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).fua_writes, 1);

  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).flushes, 1);
  ck_assert_uint_eq (test_model_counters (&d, 1).flushes, 0);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).flushes, 1);

  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, PAGE_SIZE, false), 0);
  ck_assert_int_eq (engine_trim (d.e, PAGE_SIZE, 0, true), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).flushes, 2);
  ck_assert_int_eq (engine_write (d.e, src, 100, 0, false), 0);
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, PAGE_SIZE, false), 0);
  ck_assert_int_eq (engine_zero (d.e, 10, 0, true, true), 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).flushes, 3);
  ck_assert_uint_eq (test_model_counters (&d, 1).flushes, 0);
  free (src);
  test_model_destroy (&d);
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

/* The suite of engine request tests. */
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

  return s;
}

int
main (void)
{
  return test_common_main ("test-engine", test_suite, "ENGINE_TEST_SEED",
                           &test_seed);
}
