/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of what faults must never cost, over in-memory
 * backends (lib/engine, lib/tierset, lib/unflushed, lib/drain).
 *
 * - Flushes: a flush succeeds only if every write acknowledged before it
 *   is durable on a backend that still holds its page.  A flush that
 *   arrives while another one runs does not return before its own data
 *   is durable, and learns of a failure; a backend that died with
 *   unflushed pages stops failing flushes once those pages live
 *   elsewhere.
 * - Reads: a transient error does not lose a page (bounded retries); a
 *   page that is lost is counted once on its backend, however many
 *   readers race on it, and the count outlives the backend's removal.
 * - Removal: it waits for every request that looked up one of the
 *   backend's slots (a trim in flight, a read failing there).
 *
 * Backends are told to hold requests (mem_backend_hold) so that a test
 * can stop a request at a chosen point and release it later.
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
#include <time.h>

#include <check.h>

#include "drain.h"
#include "engine.h"
#include "log.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "tierset.h"
#include "unflushed.h"

#define TEST_STRIPE 4
#define TEST_BACKENDS 3

/* A device over in-memory backends. */
struct test_dev {
  struct tierset *ts;
  struct engine *e;
  struct backend *be[TEST_BACKENDS];
  unsigned n;
};

/* A device of n backends of nslots slots each, backend i at priority
 * prio[i], exporting npages pages; a backend fails after max_errors
 * errors in a row.
 */
static void
test_dev_create_limited (struct test_dev *d, unsigned n, uint64_t nslots,
                         const int *prio, uint64_t npages,
                         unsigned max_errors)
{
  unsigned i;

  memset (d, 0, sizeof *d);
  d->ts = tierset_create (max_errors);
  ck_assert_ptr_nonnull (d->ts);
  for (i = 0; i < n; i++) {
    char name[16];

    snprintf (name, sizeof name, "mem%u", i);
    d->be[i] = mem_backend_create (name, nslots);
    ck_assert_int_eq (tierset_add (d->ts, d->be[i], prio[i]), i);
  }
  d->n = n;
  d->e = engine_create (d->ts, npages, TEST_STRIPE, 1);
  ck_assert_ptr_nonnull (d->e);
}

/* The same, with backends that never fail for errors in a row. */
static void
test_dev_create (struct test_dev *d, unsigned n, uint64_t nslots,
                 const int *prio, uint64_t npages)
{
  test_dev_create_limited (d, n, nslots, prio, npages, 1000);
}

/* Free the device, its backends with it. */
static void
test_dev_destroy (struct test_dev *d)
{
  engine_destroy (d->e);
  tierset_destroy (d->ts);
}

/* The counters of backend id, which must exist. */
static struct tier_stats
test_stats (struct test_dev *d, unsigned id)
{
  struct tier_stats st;

  ck_assert (tierset_stats (d->ts, id, &st));
  return st;
}

/* The requests backend id received. */
static struct mem_counters
test_counters (struct test_dev *d, unsigned id)
{
  struct mem_counters c;

  mem_backend_counters (d->be[id], &c);
  return c;
}

/* Write page (one whole page) filled with byte c, without FUA. */
static void
test_write_page (struct test_dev *d, uint64_t page, int c)
{
  char *buf = test_common_alloc (PAGE_SIZE);

  memset (buf, c, PAGE_SIZE);
  ck_assert_int_eq (engine_write (d->e, buf, PAGE_SIZE, page * PAGE_SIZE,
                                  false), 0);
  free (buf);
}

/* Read page and return 0 if it holds byte c all over, -1 with errno if
 * the read failed; fails the test on other bytes.
 */
static int
test_read_page (struct test_dev *d, uint64_t page, int c)
{
  char *buf = test_common_alloc (PAGE_SIZE);
  int r = engine_read (d->e, buf, PAGE_SIZE, page * PAGE_SIZE);
  int err = errno;
  size_t i;

  if (r == 0)
    for (i = 0; i < PAGE_SIZE; i++)
      TEST_REQUIRE (buf[i] == (char) c, "page %" PRIu64 " byte %zu is %d, "
                    "not %d", page, i, buf[i], c);
  free (buf);
  errno = err;
  return r;
}

/* Sleep ms milliseconds. */
static void
test_sleep_ms (unsigned ms)
{
  nanosleep (&(struct timespec) { .tv_sec = ms / 1000,
                                  .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

/* Wait (up to 10 s) until backend id has received at least n requests
 * of the counter at offset field of struct mem_counters.
 */
#define TEST_WAIT_COUNT(d, id, field, n)                                \
  do {                                                                  \
    unsigned test_i_;                                                   \
    for (test_i_ = 0; test_i_ < 10000 &&                                \
           test_counters ((d), (id)).field < (n); test_i_++)            \
      test_sleep_ms (1);                                                \
    ck_assert_uint_ge (test_counters ((d), (id)).field, (n));           \
  } while (0)

/* A flush in a thread of its own. */
struct test_flusher {
  struct test_dev *d;
  pthread_t thread;
  bool done;                           /* atomic */
  int r;
};

/* The flusher's thread: one engine_flush, then done. */
static void *
test_flusher_run (void *arg)
{
  struct test_flusher *f = arg;

  f->r = engine_flush (f->d->e);
  __atomic_store_n (&f->done, true, __ATOMIC_RELEASE);
  return NULL;
}

/* Start a flusher on d. */
static void
test_flusher_start (struct test_flusher *f, struct test_dev *d)
{
  *f = (struct test_flusher) { .d = d };
  ck_assert_int_eq (pthread_create (&f->thread, NULL, test_flusher_run, f),
                    0);
}

/* Whether its flush returned. */
static bool
test_flusher_done (struct test_flusher *f)
{
  return __atomic_load_n (&f->done, __ATOMIC_ACQUIRE);
}

/* The bitmaps of lib/unflushed on their own: what a flush covers. */
START_TEST (test_unflushed_generations)
{
  struct unflushed *u = unflushed_create (200);

  ck_assert_ptr_nonnull (u);
  unflushed_add (u, 60, 10);           /* crosses a word */
  unflushed_add (u, 65, 2);            /* already there */
  ck_assert_uint_eq (unflushed_count (u), 10);
  ck_assert_uint_eq (unflushed_begin (u), 10);
  unflushed_add (u, 150, 50);          /* during the flush: not covered */
  unflushed_forget (u, 60, 1);         /* freed during the flush */
  ck_assert_uint_eq (unflushed_count (u), 59);
  unflushed_end (u, false);            /* failed: all still there */
  ck_assert_uint_eq (unflushed_count (u), 59);
  ck_assert_uint_eq (unflushed_begin (u), 59);
  unflushed_end (u, true);
  ck_assert_uint_eq (unflushed_count (u), 0);
  ck_assert_uint_eq (unflushed_begin (u), 0);
  unflushed_end (u, true);
  unflushed_add (u, 0, 200);
  unflushed_forget (u, 1, 198);
  ck_assert_uint_eq (unflushed_count (u), 2);
  unflushed_destroy (u);
}
END_TEST

/* A flush that arrives while another one runs waits for it and does not
 * succeed when the data is not durable: the first one fails, and so
 * does the second, its own try failing too.  Before, the second one saw
 * nothing left to flush and succeeded at once.
 */
START_TEST (test_flush_overlapping)
{
  static const int prio[] = { 0 };
  struct test_dev d;
  struct test_flusher first, second;

  test_dev_create (&d, 1, 256, prio, 64);
  test_write_page (&d, 0, 'a');
  mem_backend_hold (d.be[0], MEM_FAIL_FLUSH, true);
  mem_backend_fail_all (d.be[0], MEM_FAIL_FLUSH);
  test_flusher_start (&first, &d);
  TEST_WAIT_COUNT (&d, 0, flushes, 1);

  test_flusher_start (&second, &d);
  test_sleep_ms (100);
  ck_assert_msg (!test_flusher_done (&second),
                 "a flush returned (%d) while the flush covering its data "
                 "was still running", second.r);
  mem_backend_hold (d.be[0], MEM_FAIL_FLUSH, false);
  pthread_join (first.thread, NULL);
  pthread_join (second.thread, NULL);
  ck_assert_int_eq (first.r, -1);
  ck_assert_int_eq (second.r, -1);

  /* Once the backend flushes again, so does the device, once. */
  mem_backend_heal (d.be[0]);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_counters (&d, 0).flushes, 3);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_uint_eq (test_counters (&d, 0).flushes, 3);
  test_dev_destroy (&d);
}
END_TEST

/* A backend that died with unflushed pages fails flushes until those
 * pages are rewritten elsewhere, and not after; one that died with
 * everything flushed fails none.
 */
START_TEST (test_flush_dead_backend)
{
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  uint64_t page;

  test_dev_create (&d, 2, 256, prio, 64);
  for (page = 0; page < 8; page++)
    test_write_page (&d, page, 'b');
  ck_assert_uint_eq (test_stats (&d, 0).used, 8);
  mem_backend_set_health (d.be[0], BACKEND_DEAD);
  ck_assert_int_eq (engine_flush (d.e), -1);
  ck_assert_int_eq (engine_flush (d.e), -1);

  for (page = 0; page < 7; page++)
    test_write_page (&d, page, 'c');
  ck_assert_int_eq (engine_flush (d.e), -1);
  /* Trimming the last one counts as much as rewriting it. */
  ck_assert_int_eq (engine_trim (d.e, PAGE_SIZE, 7 * PAGE_SIZE, false), 0);
  ck_assert_uint_eq (test_stats (&d, 0).used, 0);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_int_eq (engine_flush (d.e), 0);
  ck_assert_int_eq (test_read_page (&d, 3, 'c'), 0);

  /* Backend 1 flushed everything: its death fails no flush. */
  mem_backend_set_health (d.be[1], BACKEND_DEAD);
  ck_assert_int_eq (engine_flush (d.e), 0);
  test_dev_destroy (&d);
}
END_TEST

/* A read that fails three times in a row still returns the page: only a
 * slot that fails ENGINE_READ_TRIES (at least 3) times after the first
 * failure loses its page, which is then counted once.
 */
START_TEST (test_read_retries)
{
  static const int prio[] = { 0 };
  struct test_dev d;

  test_dev_create (&d, 1, 256, prio, 64);
  test_write_page (&d, 5, 'r');
  /* The read of the run, then two retries. */
  mem_backend_fail_next (d.be[0], MEM_FAIL_READ, 3);
  ck_assert_int_eq (test_read_page (&d, 5, 'r'), 0);
  ck_assert_uint_eq (test_stats (&d, 0).lost, 0);
  ck_assert_uint_eq (test_stats (&d, 0).bad, 0);

  mem_backend_fail_next (d.be[0], MEM_FAIL_READ, ENGINE_READ_TRIES + 1);
  ck_assert_int_eq (test_read_page (&d, 5, 'r'), -1);
  ck_assert_int_eq (errno, EIO);
  ck_assert_uint_eq (test_stats (&d, 0).lost, 1);
  ck_assert_uint_eq (test_stats (&d, 0).bad, 1);
  /* Lost for good: no further read reaches the backend. */
  ck_assert_int_eq (test_read_page (&d, 5, 'r'), -1);
  ck_assert_uint_eq (test_stats (&d, 0).lost, 1);
  ck_assert_uint_eq (tierset_lost (d.ts), 1);
  test_dev_destroy (&d);
}
END_TEST

/* Retries count once towards max-errors: three unreadable pages of one
 * run, lost, cost 4 errors in a row (the run, then each page), and do
 * not fail a backend allowed 8; a backend that gave up is not retried.
 */
START_TEST (test_retries_count_once)
{
  static const int prio[] = { 0 };
  struct test_dev d;
  char *buf = test_common_alloc (3 * PAGE_SIZE);
  struct tier_stats st;
  uint64_t reads;

  test_dev_create_limited (&d, 1, 256, prio, 64, 8);
  memset (buf, 'm', 3 * PAGE_SIZE);
  ck_assert_int_eq (engine_write (d.e, buf, 3 * PAGE_SIZE, 0, false), 0);
  mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
  ck_assert_int_eq (engine_read (d.e, buf, 3 * PAGE_SIZE, 0), -1);
  st = test_stats (&d, 0);
  ck_assert_uint_eq (st.lost, 3);
  ck_assert_uint_eq (st.errors, 4);
  ck_assert_int_eq (st.state, TIER_ACTIVE);

  test_write_page (&d, 10, 'n');
  mem_backend_set_health (d.be[0], BACKEND_DEAD);
  reads = test_counters (&d, 0).reads;
  ck_assert_int_eq (test_read_page (&d, 10, 'n'), -1);
  ck_assert_uint_eq (test_counters (&d, 0).reads, reads + 2);
  free (buf);
  test_dev_destroy (&d);
}
END_TEST

/* A reader of one page in a thread of its own (racing on a page). */
struct test_reader {
  struct test_dev *d;
  uint64_t page;
  pthread_t thread;
  int r;
};

/* The reader's thread: read its page, expecting byte 'x'. */
static void *
test_reader_run (void *arg)
{
  struct test_reader *rd = arg;

  rd->r = test_read_page (rd->d, rd->page, 'x');
  return NULL;
}

/* Several readers of a page whose slot fails all lose it together, and
 * only one of them marks the slot bad and counts the loss: the others
 * find the page LOST already (a compare-and-swap on the map).  Without
 * it the slot would be marked bad as many times as there are readers,
 * and the counters would not add up.
 */
START_TEST (test_racing_readers_lose_once)
{
  static const int prio[] = { 0 };
  struct test_reader rd[4];
  struct test_dev d;
  struct tier_stats st;
  unsigned round, i;
  uint64_t before;

  test_dev_create (&d, 1, 256, prio, 64);
  for (round = 0; round < 8; round++) {
    test_write_page (&d, round, 'x');
    before = test_counters (&d, 0).reads;
    /* Hold the readers in the backend until all have looked the page
     * up and failed, so that all reach the salvage together.
     */
    mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
    mem_backend_hold (d.be[0], MEM_FAIL_READ, true);
    for (i = 0; i < 4; i++) {
      rd[i] = (struct test_reader) { .d = &d, .page = round };
      ck_assert_int_eq (pthread_create (&rd[i].thread, NULL,
                                        test_reader_run, &rd[i]), 0);
    }
    TEST_WAIT_COUNT (&d, 0, reads, before + 4);
    mem_backend_hold (d.be[0], MEM_FAIL_READ, false);
    for (i = 0; i < 4; i++) {
      pthread_join (rd[i].thread, NULL);
      ck_assert_int_eq (rd[i].r, -1);
    }
    mem_backend_heal (d.be[0]);
    st = test_stats (&d, 0);
    ck_assert_uint_eq (st.bad, round + 1);
    ck_assert_uint_eq (st.lost, round + 1);
    ck_assert_uint_eq (st.used + st.free + st.bad, st.capacity);
  }
  test_dev_destroy (&d);
}
END_TEST

/* Wait (up to 20 s) for a drain to end, and return its status. */
static struct drain_status
test_drain_wait (struct drain *dr)
{
  struct drain_status st;
  unsigned i;

  for (i = 0; i < 20000; i++) {
    drain_status (dr, &st);
    if (st.state != DRAIN_RUNNING)
      return st;
    test_sleep_ms (1);
  }
  ck_abort_msg ("the drain did not end");
  return st;
}

/* A trim in a thread of its own (in flight while a drain runs). */
struct test_trimmer {
  struct test_dev *d;
  uint64_t page;
  pthread_t thread;
  int r;
};

/* The trimmer's thread: trim its page. */
static void *
test_trimmer_run (void *arg)
{
  struct test_trimmer *t = arg;

  t->r = engine_trim (t->d->e, PAGE_SIZE, t->page * PAGE_SIZE, false);
  return NULL;
}

/* A removal waits for a trim that unmapped one of the backend's pages
 * and is still freeing its slot: before, the drain found no page left,
 * tried to close the backend with that slot still in use, and failed.
 */
START_TEST (test_remove_waits_for_trim)
{
  static const int prio[] = { 1, 0 };
  struct test_trimmer trimmer;
  struct drain_status st;
  struct test_dev d;
  struct drain *dr;

  test_dev_create (&d, 2, 512, prio, 128);
  test_write_page (&d, 0, 'p');
  test_write_page (&d, 100, 'q');
  ck_assert_uint_eq (test_stats (&d, 0).used, 2);

  /* The drain stops on its first move (page 0), while a trim of page
   * 100 unmaps it and stops in the backend.
   */
  mem_backend_hold (d.be[0], MEM_FAIL_READ | MEM_FAIL_TRIM, true);
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  TEST_WAIT_COUNT (&d, 0, reads, 1);
  trimmer = (struct test_trimmer) { .d = &d, .page = 100 };
  ck_assert_int_eq (pthread_create (&trimmer.thread, NULL, test_trimmer_run,
                                    &trimmer), 0);
  TEST_WAIT_COUNT (&d, 0, trims, 1);
  mem_backend_hold (d.be[0], MEM_FAIL_READ, false);
  test_sleep_ms (100);
  mem_backend_hold (d.be[0], MEM_FAIL_TRIM, false);
  pthread_join (trimmer.thread, NULL);
  ck_assert_int_eq (trimmer.r, 0);

  st = test_drain_wait (dr);
  ck_assert_msg (st.state == DRAIN_DONE, "drain %s: %s",
                 drain_state_name (st.state), st.error);
  ck_assert_uint_eq (st.moved, 1);
  ck_assert_int_eq (test_read_page (&d, 0, 'p'), 0);
  ck_assert_int_eq (test_read_page (&d, 100, 0), 0);
  drain_destroy (dr);
  test_dev_destroy (&d);
}
END_TEST

/* The error sink of the next test: on the message that declares a page
 * lost, it stops the reader there (between the map update and the
 * marking of its slot) until released.
 */
static pthread_mutex_t test_sink_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t test_sink_changed = PTHREAD_COND_INITIALIZER;
static bool test_sink_hold, test_sink_held;

static void
test_holding_sink (const char *fmt, va_list args)
{
  char message[512];

  vsnprintf (message, sizeof message, fmt, args);
  fprintf (stderr, "test-faults: library error: %s\n", message);
  pthread_mutex_lock (&test_sink_lock);
  if (strstr (message, "is lost") && test_sink_hold) {
    test_sink_held = true;
    pthread_cond_broadcast (&test_sink_changed);
    while (test_sink_hold)
      pthread_cond_wait (&test_sink_changed, &test_sink_lock);
  }
  pthread_mutex_unlock (&test_sink_lock);
}

/* A removal waits for a read that is losing a page of the backend: the
 * drain sees the page LOST before the reader has marked its slot bad.
 * Before, it went on to close the backend, which failed (a slot still in
 * use) or, a moment later, closed it under the reader.  The lost page
 * stays counted after the backend is gone.
 */
START_TEST (test_remove_waits_for_failing_read)
{
  static const int prio[] = { 1, 0 };
  struct test_reader reader;
  struct drain_status st;
  struct test_dev d;
  struct drain *dr;

  test_dev_create (&d, 2, 512, prio, 128);
  test_write_page (&d, 0, 'p');
  test_write_page (&d, 10, 'x');
  /* The drain stops on its first move (page 0), in the write to
   * backend 1, after its first wait for the requests in progress.
   */
  mem_backend_hold (d.be[1], MEM_FAIL_WRITE, true);
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  TEST_WAIT_COUNT (&d, 1, writes, 1);

  /* A reader loses page 10 and stops before marking its slot. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
  log_set_sinks (test_holding_sink, NULL);
  test_sink_hold = true;
  test_sink_held = false;
  reader = (struct test_reader) { .d = &d, .page = 10 };
  ck_assert_int_eq (pthread_create (&reader.thread, NULL, test_reader_run,
                                    &reader), 0);
  pthread_mutex_lock (&test_sink_lock);
  while (!test_sink_held)
    pthread_cond_wait (&test_sink_changed, &test_sink_lock);
  pthread_mutex_unlock (&test_sink_lock);
  mem_backend_hold (d.be[1], MEM_FAIL_WRITE, false);
  test_sleep_ms (200);
  pthread_mutex_lock (&test_sink_lock);
  test_sink_hold = false;
  pthread_cond_broadcast (&test_sink_changed);
  pthread_mutex_unlock (&test_sink_lock);
  pthread_join (reader.thread, NULL);
  ck_assert_int_eq (reader.r, -1);

  st = test_drain_wait (dr);
  ck_assert_msg (st.state == DRAIN_DONE, "drain %s: %s",
                 drain_state_name (st.state), st.error);
  ck_assert_uint_eq (st.moved, 1);
  drain_destroy (dr);
  ck_assert_int_eq (test_read_page (&d, 0, 'p'), 0);
  ck_assert (!tierset_stats (d.ts, 0, &(struct tier_stats) { 0 }));
  ck_assert_uint_eq (tierset_lost (d.ts), 1);
  test_common_setup ();
  test_dev_destroy (&d);
}
END_TEST

/* A removal keeps the reserve free on the other backends: it is refused
 * when the pages to move would eat into it.
 */
START_TEST (test_remove_keeps_reserve)
{
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  struct drain *dr;
  uint64_t page;

  test_dev_create (&d, 2, 512, prio, 256);
  for (page = 0; page < 100; page++)
    test_write_page (&d, page, 'k');
  /* 512 free slots on backend 1 for 100 pages: room for a reserve of
   * 412, not 413.
   */
  ck_assert_ptr_null (drain_start (d.e, d.ts, 0, 413, 0, true));
  ck_assert_uint_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  dr = drain_start (d.e, d.ts, 0, 412, 0, true);
  ck_assert_ptr_nonnull (dr);
  ck_assert_int_eq (test_drain_wait (dr).state, DRAIN_DONE);
  drain_destroy (dr);
  test_dev_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("faults");
  TCase *tc = tcase_create ("faults");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_unflushed_generations);
  tcase_add_test (tc, test_flush_overlapping);
  tcase_add_test (tc, test_flush_dead_backend);
  tcase_add_test (tc, test_read_retries);
  tcase_add_test (tc, test_retries_count_once);
  tcase_add_test (tc, test_racing_readers_lose_once);
  tcase_add_test (tc, test_remove_waits_for_trim);
  tcase_add_test (tc, test_remove_waits_for_failing_read);
  tcase_add_test (tc, test_remove_keeps_reserve);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-faults", test_suite, NULL, NULL);
}
