/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the engine (lib/engine) under backend faults
 * and concurrent requests, over in-memory backends.
 *
 * The fault tests inject backend errors and take a backend down, and
 * check each request against the model of the device of
 * test-engine-model.h: a page whose slot fails to read is lost, never
 * served stale or as zeroes (invariant 1); a slot that failed is never
 * used again (invariant 2); a write that fails on one backend lands on
 * another (invariant 4).  The concurrency test runs requests from
 * several threads at once, which must never see another page's data
 * (invariant 3), and checks invariant 5 meanwhile.  The requests
 * themselves are the matter of test-engine.c.
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
#include "test-engine-model.h"
#include "tierset.h"

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

/* While a backend is down, writes go to the others without trying it,
 * and its pages are still read; once up, it takes writes again.
 */
START_TEST (test_backend_down)
{
  static const uint64_t nslots[] = { 16, 16 };
  static const int priority[] = { 1, 0 };
  uint64_t rng = test_seed + 11;
  struct mem_counters before;
  struct test_model d;
  char *src;

  test_model_create (&d, 8, 4, 3, 2, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 0, "pages 0-3");
  ck_assert_uint_eq (test_model_stats (&d, 0).used, 4);

  mem_backend_set_health (d.be[0], BACKEND_DOWN);
  before = test_model_counters (&d, 0);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 4 * PAGE_SIZE, "pages 4-7");
  test_model_write (&d, src, PAGE_SIZE, 0, "page 0 again");
  test_model_check (&d, "backend 0 down");
  ck_assert_uint_eq (test_model_counters (&d, 0).writes, before.writes);
  ck_assert_uint_eq (test_model_stats (&d, 0).used, 3);
  ck_assert_uint_eq (test_model_stats (&d, 1).used, 5);
  ck_assert_uint_eq (test_model_stats (&d, 0).errors, 0);

  mem_backend_set_health (d.be[0], BACKEND_UP);
  test_model_write (&d, src, PAGE_SIZE, 5 * PAGE_SIZE, "page 5 again");
  ck_assert_uint_eq (test_model_stats (&d, 0).used, 4);
  test_model_check (&d, "backend 0 up");
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  uint64_t slot;
  unsigned i;
  char *src, *peek;

  test_model_create (&d, 16, 4, 3, 2, nslots, priority);
  src = test_common_alloc (16 * PAGE_SIZE);
  peek = test_common_alloc (PAGE_SIZE);

  /* The first run goes to slots 0-3 of backend 0; slot 2 fails. */
  mem_backend_fail_slots (d.be[0], 2, 1, MEM_FAIL_WRITE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 0, "failed run");
  test_model_check (&d, "failed run");
  st = test_model_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 4);
  ck_assert_uint_eq (st.used, 0);
  ck_assert_uint_eq (st.errors, 1);
  ck_assert_int_eq (st.state, TIER_ACTIVE);
  ck_assert_uint_eq (test_model_stats (&d, 1).used, 4);

  /* Backend 0 dies: the pages are on backend 1. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_ALL);
  test_model_check (&d, "backend 0 dead");
  mem_backend_heal (d.be[0]);

  /* Many rewrites go round all of backend 0's slots, never the bad ones. */
  for (i = 0; i < 60; i++) {
    char where[64];

    snprintf (where, sizeof where, "rewrite %u", i);
    test_fill_random (&rng, src, 12 * PAGE_SIZE);
    test_model_write (&d, src, 12 * PAGE_SIZE, 4 * PAGE_SIZE, where);
    test_model_check (&d, where);
  }
  ck_assert_uint_eq (test_model_stats (&d, 0).bad, 4);
  ck_assert_uint_gt (test_model_counters (&d, 0).write_slots, 4 * 32);
  for (slot = 0; slot < 4; slot++) {
    static const char zero[PAGE_SIZE];

    mem_backend_peek (d.be[0], slot, peek);
    ck_assert_msg (memcmp (peek, zero, PAGE_SIZE) == 0,
                   "bad slot %" PRIu64 " was written again", slot);
  }
  free (src);
  free (peek);
  test_model_destroy (&d);
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
  struct test_model d;
  uint64_t writes;
  unsigned i;
  char *src;

  test_model_create (&d, 4, 4, 3, 2, nslots, priority);
  src = test_common_alloc (PAGE_SIZE);
  test_fill_random (&rng, src, PAGE_SIZE);
  test_model_write (&d, src, PAGE_SIZE, 0, "page 0");

  /* Backend 0 cannot write: page 1 lands on backend 1. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_WRITE);
  test_fill_random (&rng, src, PAGE_SIZE);
  test_model_write (&d, src, PAGE_SIZE, PAGE_SIZE, "page 1");
  test_model_check (&d, "page 1");
  ck_assert_uint_eq (test_model_stats (&d, 1).used, 1);

  /* Neither can: page 0 keeps its old data. */
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  test_fill_random (&rng, src, PAGE_SIZE);
  errno = 0;
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), -1);
  ck_assert_msg (errno == EIO, "errno %d (%s)", errno, strerror (errno));
  test_model_check (&d, "no backend");
  /* Backend 0 failed a write for page 1; the reads of the device check
   * in between succeeded but do not end its run of write errors, so two
   * more failed it.  Each failed write marked its slot bad.
   */
  for (i = 0; i < 2; i++) {
    struct tier_stats st = test_model_stats (&d, i);

    ck_assert_int_eq (st.state, TIER_FAILED);
    ck_assert_uint_eq (st.errors, 3);
    ck_assert_uint_eq (st.bad, st.errors);
  }

  /* Failed backends are not written at all any more. */
  writes = test_model_counters (&d, 0).writes +
    test_model_counters (&d, 1).writes;
  ck_assert_int_eq (engine_write (d.e, src, PAGE_SIZE, 0, false), -1);
  ck_assert_uint_eq (test_model_counters (&d, 0).writes +
                     test_model_counters (&d, 1).writes, writes);
  test_model_check (&d, "failed backends");
  free (src);
  test_model_destroy (&d);
}
END_TEST

/* Check that reading count bytes at offset fails with EIO. */
static void
test_read_fails (struct test_model *d, uint32_t count, uint64_t offset,
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
  struct test_model d;
  uint64_t reads;
  char *src;

  test_model_create (&d, 8, 4, 10, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 0, "4 pages");

  /* Page 2 is in slot 2, read as part of one run of 4. */
  mem_backend_fail_slots (d.be[0], 2, 1, MEM_FAIL_READ);
  test_read_fails (&d, 4 * PAGE_SIZE, 0, "run");
  st = test_model_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 1);
  ck_assert_uint_eq (st.used, 3);
  ck_assert_uint_eq (st.used + st.free + st.bad, st.capacity);
  test_model_read (&d, d.buf, 2 * PAGE_SIZE, 0, "pages 0-1");
  test_model_read (&d, d.buf, PAGE_SIZE, 3 * PAGE_SIZE, "page 3");

  /* Lost pages are not read from the backend again, even healed: the
   * backend sees at most the reads of pages 0-1 before page 2 in the last
   * two requests.
   */
  mem_backend_heal (d.be[0]);
  reads = test_model_counters (&d, 0).reads;
  test_read_fails (&d, PAGE_SIZE, 2 * PAGE_SIZE, "page 2");
  test_read_fails (&d, 1, 2 * PAGE_SIZE + 100, "a byte of page 2");
  test_read_fails (&d, 4 * PAGE_SIZE, 0, "pages 0-3");
  test_read_fails (&d, 3 * PAGE_SIZE, 100, "unaligned");
  ck_assert_uint_le (test_model_counters (&d, 0).reads - reads, 2);

  /* A lost page is data for extents, and a partial write fails. */
  test_model_check_extents (&d, "lost page");
  errno = 0;
  ck_assert_int_eq (engine_write (d.e, src, 10, 2 * PAGE_SIZE + 5, false),
                    -1);
  ck_assert_int_eq (errno, EIO);
  test_read_fails (&d, PAGE_SIZE, 2 * PAGE_SIZE, "after a partial write");

  /* A full write makes the page readable again, in a new slot. */
  test_fill_random (&rng, src, PAGE_SIZE);
  test_model_write (&d, src, PAGE_SIZE, 2 * PAGE_SIZE, "rewrite page 2");
  test_model_check (&d, "rewrite page 2");
  ck_assert_uint_eq (test_model_stats (&d, 0).bad, 1);

  /* Lose page 3 and page 1 too, then trim one and zero the other. */
  mem_backend_fail_slots (d.be[0], 1, 1, MEM_FAIL_READ);
  mem_backend_fail_slots (d.be[0], 3, 1, MEM_FAIL_READ);
  test_read_fails (&d, PAGE_SIZE, PAGE_SIZE, "page 1");
  test_read_fails (&d, PAGE_SIZE, 3 * PAGE_SIZE, "page 3");
  mem_backend_heal (d.be[0]);
  test_model_clear (&d, TEST_TRIM, PAGE_SIZE, PAGE_SIZE, "trim page 1");
  test_model_clear (&d, TEST_ZERO, PAGE_SIZE, 3 * PAGE_SIZE, "zero page 3");
  test_model_check (&d, "after trim and zero");
  st = test_model_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 3);
  ck_assert_uint_eq (st.used, 2);
  free (src);
  test_model_destroy (&d);
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
  struct test_model d;
  char *src;

  test_model_create (&d, 8, 4, 10, 1, nslots, priority);
  src = test_common_alloc (4 * PAGE_SIZE);
  test_fill_random (&rng, src, 4 * PAGE_SIZE);
  test_model_write (&d, src, 4 * PAGE_SIZE, 0, "4 pages");
  mem_backend_fail_every (d.be[0], 100);
  test_model_read (&d, d.buf, 4 * PAGE_SIZE, 0, "retried run");
  mem_backend_heal (d.be[0]);
  st = test_model_stats (&d, 0);
  ck_assert_uint_eq (st.errors, 1);
  ck_assert_uint_eq (st.bad, 0);
  ck_assert_uint_eq (test_model_counters (&d, 0).failures, 1);
  test_model_check (&d, "after a transient error");
  free (src);
  test_model_destroy (&d);
}
END_TEST

/* State shared by the threads of the concurrency test. */
struct test_conc {
  struct test_model *d;
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
  struct test_model *d = w->c->d;
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
  struct test_model *d = w->c->d;

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
  struct test_model d;
  uint64_t page, stamped = 0;
  unsigned i;

  test_model_create (&d, TEST_CONC_PAGES, 4, 3, 2, nslots, priority);
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
  test_model_check (&d, "after the threads");
  ck_assert_uint_eq (test_model_used (&d, "end"), stamped);
  ck_assert_uint_eq (test_common_errors, 0);
  test_model_destroy (&d);
}
END_TEST

/* The suite of engine fault and concurrency tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("engine-faults");
  TCase *tc;

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
  return test_common_main ("test-engine-faults", test_suite,
                           "ENGINE_TEST_SEED", &test_seed);
}
