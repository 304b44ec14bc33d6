/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for removing backends from a live device
 * (lib/drain, engine_move) while it serves requests, over in-memory
 * backends.
 *
 * One test drains two backends in turn while threads rewrite, read,
 * trim and flush pages, each holding a stamp (its number and a
 * version): no read may ever see a page half moved (invariant 3), no
 * page is lost, and the counters add up (invariant 5).  Another drains
 * a slow backend while threads read: a drain holds each page only for
 * one move, so that no read waits long.  How drains end, one at a time
 * on an idle device, is the matter of test-drain.c.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "drain.h"
#include "engine.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"
#include "test-drain-common.h"
#include "tierset.h"

/* The concurrent test: threads, and the pages each one owns. */
#define TEST_THREADS 6
#define TEST_THREAD_PAGES 48

/* One writer thread of the concurrent test. */
struct test_worker {
  pthread_t thread;
  struct test_dev *d;
  uint64_t first;                      /* its pages: first .. + PAGES */
  uint64_t version[TEST_THREAD_PAGES]; /* of its last write, 0: trimmed */
  uint64_t seed;
  uint64_t ops;                        /* atomic: requests made so far */
  bool *stop;
};

/* Rewrite, trim, read back and flush the thread's pages until told to
 * stop, checking each read against what it wrote last.
 */
static void *
test_worker_run (void *arg)
{
  struct test_worker *w = arg;
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t *want = test_common_alloc (PAGE_SIZE);
  uint64_t n = 1;

  while (!__atomic_load_n (w->stop, __ATOMIC_RELAXED)) {
    uint64_t r = (w->seed = w->seed * 6364136223846793005u + 1) >> 33;
    unsigned i = r % TEST_THREAD_PAGES;
    uint64_t page = w->first + i, offset = page * PAGE_SIZE;

    n++;
    __atomic_store_n (&w->ops, n, __ATOMIC_RELAXED);
    switch ((r >> 8) % 8) {
    case 0:
      TEST_REQUIRE (engine_trim (w->d->e, PAGE_SIZE, offset, false) == 0,
                    "trim of page %" PRIu64 ": %m", page);
      w->version[i] = 0;
      break;
    case 1:
      TEST_REQUIRE (engine_flush (w->d->e) == 0, "flush: %m");
      break;
    case 2: case 3:
      w->version[i] = n;
      test_stamp (buf, page, n);
      TEST_REQUIRE (engine_write (w->d->e, buf, PAGE_SIZE, offset,
                                  false) == 0,
                    "write of page %" PRIu64 ": %m", page);
      break;
    default:
      TEST_REQUIRE (engine_read (w->d->e, buf, PAGE_SIZE, offset) == 0,
                    "read of page %" PRIu64 ": %m", page);
      if (w->version[i] == 0)
        memset (want, 0, PAGE_SIZE);
      else
        test_stamp (want, page, w->version[i]);
      TEST_REQUIRE (memcmp (buf, want, PAGE_SIZE) == 0,
                    "page %" PRIu64 " read back wrong during a drain", page);
    }
  }
  free (buf);
  free (want);
  return NULL;
}

/* Drain two backends, one after the other, while threads rewrite, trim,
 * read and flush pages all the time: first 2, which holds every page
 * (priority 1), then 1, which shares them with 0 and 3 by then.
 */
START_TEST (test_drain_concurrent)
{
  static const uint64_t nslots[] = { 400, 400, 400, 400 };
  static const int prio[] = { 0, 0, 1, 0 };
  static const unsigned victim[] = { 2, 1 };
  struct test_worker w[TEST_THREADS];
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  bool stop = false;
  uint64_t page, mapped = 0;
  unsigned t, i;

  test_drain_dev_create (&d, 4, nslots, prio,
                         TEST_THREADS * TEST_THREAD_PAGES);
  for (t = 0; t < 4; t++)
    mem_backend_set_yield (d.be[t], true);
  for (page = 0; page < engine_pages (d.e); page++)
    test_write (&d, page, 1);
  for (t = 0; t < TEST_THREADS; t++) {
    w[t] = (struct test_worker) {
      .d = &d, .first = t * TEST_THREAD_PAGES, .seed = t + 1, .stop = &stop,
    };
    for (i = 0; i < TEST_THREAD_PAGES; i++)
      w[t].version[i] = 1;
    ck_assert_int_eq (pthread_create (&w[t].thread, NULL, test_worker_run,
                                      &w[t]), 0);
  }
  /* Every thread at work before the first drain. */
  for (t = 0; t < TEST_THREADS; t++)
    while (__atomic_load_n (&w[t].ops, __ATOMIC_RELAXED) < 20)
      sched_yield ();
  for (i = 0; i < 2; i++) {
    dr = drain_start (d.e, d.ts, victim[i], engine_spare (d.e), 0, true);
    ck_assert_ptr_nonnull (dr);
    st = test_drain_wait (dr);
    ck_assert_int_eq (st.state, DRAIN_DONE);
    ck_assert_uint_eq (st.lost, 0);
    drain_destroy (dr);
    ck_assert (!tierset_stats (d.ts, victim[i],
                               &(struct tier_stats) { 0 }));
  }
  __atomic_store_n (&stop, true, __ATOMIC_RELAXED);
  for (t = 0; t < TEST_THREADS; t++) {
    pthread_join (w[t].thread, NULL);
    for (i = 0; i < TEST_THREAD_PAGES; i++) {
      test_check_page (&d, w[t].first + i, w[t].version[i]);
      mapped += w[t].version[i] != 0;
    }
  }
  test_check_counters (&d, mapped);
  ck_assert_uint_eq (test_errors, 0);
  test_dev_destroy (&d);
}
END_TEST

/* A backend that takes TEST_SLOW_MS more for each read and write of
 * the one it wraps, so that a drain lasts long enough to be timed.
 */
#define TEST_SLOW_MS 1

struct test_slow {
  struct backend be;                   /* must be first */
  struct backend *inner;
};

/* Sleep TEST_SLOW_MS milliseconds. */
static void
test_slow_sleep (void)
{
  nanosleep (&(struct timespec) { .tv_nsec = TEST_SLOW_MS * 1000000 }, NULL);
}

static int
test_slow_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct backend *inner = ((struct test_slow *) be)->inner;

  test_slow_sleep ();
  return inner->ops->read (inner, buf, slot, n);
}

static int
test_slow_write (struct backend *be, const void *buf, uint64_t slot,
                 uint64_t n, bool fua)
{
  struct backend *inner = ((struct test_slow *) be)->inner;

  test_slow_sleep ();
  return inner->ops->write (inner, buf, slot, n, fua);
}

static int
test_slow_flush (struct backend *be)
{
  struct backend *inner = ((struct test_slow *) be)->inner;

  return inner->ops->flush (inner);
}

static void
test_slow_close (struct backend *be)
{
  backend_close (((struct test_slow *) be)->inner);
  free (be);
}

static const struct backend_ops test_slow_ops = {
  .kind = "slow",
  .read = test_slow_read,
  .write = test_slow_write,
  .flush = test_slow_flush,
  .close = test_slow_close,
};

/* A slow backend of nslots slots. */
static struct backend *
test_slow_create (uint64_t nslots)
{
  struct test_slow *sb = calloc (1, sizeof *sb);

  ck_assert_ptr_nonnull (sb);
  sb->inner = mem_backend_create ("slow", nslots);
  sb->be = (struct backend) {
    .ops = &test_slow_ops, .target = sb->inner->target, .nslots = nslots,
  };
  return &sb->be;
}

/* Milliseconds of the monotonic clock. */
static double
test_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A reader of the latency test: read random pages until told to stop,
 * keeping the longest time one read took.
 */
struct test_prober {
  pthread_t thread;
  struct test_dev *d;
  uint64_t npages, seed;
  double worst;                        /* ms */
  bool *stop;
};

static void *
test_prober_run (void *arg)
{
  struct test_prober *p = arg;
  char *buf = test_common_alloc (PAGE_SIZE);

  while (!__atomic_load_n (p->stop, __ATOMIC_RELAXED)) {
    uint64_t page = (p->seed = p->seed * 6364136223846793005u + 1) >> 33;
    double t = test_now_ms ();

    page %= p->npages;
    TEST_REQUIRE (engine_read (p->d->e, buf, PAGE_SIZE, page * PAGE_SIZE)
                  == 0, "read of page %" PRIu64 ": %m", page);
    t = test_now_ms () - t;
    if (t > p->worst)
      p->worst = t;
  }
  free (buf);
  return NULL;
}

/* A drain holds each page only for one move: while a slow backend is
 * drained, which takes hundreds of moves, a read never waits for more
 * than a few of them.
 */
START_TEST (test_drain_latency)
{
  struct test_prober p[2];
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  bool stop = false;
  uint64_t page, npages = 1024;
  double start, took, worst = 0;
  unsigned t;

  memset (&d, 0, sizeof d);
  d.ts = tierset_create (3);
  ck_assert_int_eq (tierset_add (d.ts, test_slow_create (2048), 1), 0);
  ck_assert_int_eq (tierset_add (d.ts, mem_backend_create ("fast", 2048), 0),
                    1);
  d.e = engine_create (d.ts, npages, TEST_STRIPE, 1);
  ck_assert_ptr_nonnull (d.e);
  for (page = 0; page < npages; page += TEST_STRIPE) {
    char *buf = test_common_alloc (TEST_STRIPE * PAGE_SIZE);

    memset (buf, 0x5a, TEST_STRIPE * PAGE_SIZE);
    ck_assert_int_eq (engine_write (d.e, buf, TEST_STRIPE * PAGE_SIZE,
                                    page * PAGE_SIZE, false), 0);
    free (buf);
  }
  for (t = 0; t < 2; t++) {
    p[t] = (struct test_prober) {
      .d = &d, .npages = npages, .seed = t + 7, .stop = &stop,
    };
    ck_assert_int_eq (pthread_create (&p[t].thread, NULL, test_prober_run,
                                      &p[t]), 0);
  }
  start = test_now_ms ();
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  took = test_now_ms () - start;
  drain_destroy (dr);
  __atomic_store_n (&stop, true, __ATOMIC_RELAXED);
  for (t = 0; t < 2; t++) {
    pthread_join (p[t].thread, NULL);
    if (p[t].worst > worst)
      worst = p[t].worst;
  }
  fprintf (stderr, "test-drain: drained %" PRIu64 " pages in %.0f ms; "
           "longest read meanwhile %.1f ms\n", st.moved, took, worst);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  /* Each of the 256 moves reads the slow backend once. */
  ck_assert_msg (took >= 256 * TEST_SLOW_MS, "the drain took %.0f ms", took);
  ck_assert_msg (worst < 100, "a read waited %.1f ms while the drain took "
                 "%.0f ms", worst, took);
  test_dev_destroy (&d);
}
END_TEST

/* The suite of drain tests under load. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("drain-concurrent");
  TCase *tc = tcase_create ("drain");

  tcase_add_checked_fixture (tc, test_setup, NULL);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_drain_concurrent);
  tcase_add_test (tc, test_drain_latency);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-drain-concurrent", test_suite, NULL, NULL);
}
