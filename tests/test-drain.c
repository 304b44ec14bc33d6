/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for removing backends from a live device
 * (lib/drain, engine_move, and the tier set's runtime changes:
 * tierset_set_priority, tierset_drain_begin, tierset_remove), over
 * in-memory backends.
 *
 * Every page written holds a stamp (its number and a version), so a
 * page read back tells whose data it is.  A drain must leave every page
 * readable with its last data (invariant 4), except pages whose slot
 * failed to read, which become LOST (invariant 1); the drained backend
 * must hold no slot in use and disappear, its id never reused; and the
 * counters of the others must add up (invariant 5).  One test drains
 * while threads rewrite, read, trim and flush pages, which must never
 * see a page half moved (invariant 3).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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

#define TEST_MAX_BACKENDS 4
#define TEST_STRIPE 4                  /* pages: spare is 32 x 4 slots */

/* The concurrent test: threads, and the pages each one owns. */
#define TEST_THREADS 6
#define TEST_THREAD_PAGES 48

/* Errors logged by the library since the start of the test, and the
 * last one; warnings (the drain thread may not be allowed to become an
 * I/O flusher here) are shown only.
 */
static unsigned test_errors;
static char test_last_error[512];
static pthread_mutex_t test_error_lock = PTHREAD_MUTEX_INITIALIZER;

/* Error sink: count the message, keep it, and show it. */
static void
test_error_sink (const char *fmt, va_list args)
{
  char message[sizeof test_last_error];

  vsnprintf (message, sizeof message, fmt, args);
  fprintf (stderr, "test-drain: library error: %s\n", message);
  if (strncmp (message, "warning: ", 9) == 0)
    return;
  pthread_mutex_lock (&test_error_lock);
  test_errors++;
  memcpy (test_last_error, message, sizeof message);
  pthread_mutex_unlock (&test_error_lock);
}

/* Route library errors to the counting sink and reset the count. */
static void
test_setup (void)
{
  log_set_sinks (test_error_sink, NULL);
  test_errors = 0;
  test_last_error[0] = '\0';
}

/* A device over up to TEST_MAX_BACKENDS in-memory backends. */
struct test_dev {
  struct tierset *ts;
  struct engine *e;
  struct backend *be[TEST_MAX_BACKENDS];
  unsigned n;
  uint64_t npages;
};

/* A device of n backends of nslots[i] slots at priority prio[i],
 * exporting npages pages (0: all but the engine's spare).
 */
static void
test_dev_create (struct test_dev *d, unsigned n, const uint64_t *nslots,
                 const int *prio, uint64_t npages)
{
  uint64_t capacity = 0;
  unsigned i;

  memset (d, 0, sizeof *d);
  d->ts = tierset_create (3);
  ck_assert_ptr_nonnull (d->ts);
  for (i = 0; i < n; i++) {
    char name[16];

    snprintf (name, sizeof name, "mem%u", i);
    d->be[i] = mem_backend_create (name, nslots[i]);
    ck_assert_int_eq (tierset_add (d->ts, d->be[i], prio[i]), i);
    capacity += nslots[i];
  }
  d->n = n;
  d->npages = npages ? npages : capacity - engine_min_spare (TEST_STRIPE);
  d->e = engine_create (d->ts, d->npages, TEST_STRIPE, 1);
  ck_assert_ptr_nonnull (d->e);
}

/* Free the device, its backends with it. */
static void
test_dev_destroy (struct test_dev *d)
{
  engine_destroy (d->e);
  tierset_destroy (d->ts);
}

/* Fill a page with the stamp of version of page. */
static void
test_stamp (uint64_t *buf, uint64_t page, uint64_t version)
{
  size_t i;

  for (i = 0; i < PAGE_SIZE / sizeof *buf; i++)
    buf[i] = page * UINT64_C (0x9e3779b97f4a7c15) ^ version << 32 ^ i;
}

/* Write version of page. */
static void
test_write (struct test_dev *d, uint64_t page, uint64_t version)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);

  test_stamp (buf, page, version);
  TEST_REQUIRE (engine_write (d->e, buf, PAGE_SIZE, page * PAGE_SIZE,
                              false) == 0,
                "write of page %" PRIu64 " failed: %m", page);
  free (buf);
}

/* Read page and check that it holds version, zeroes if version is 0,
 * or fails with EIO if version is UINT64_MAX (LOST).
 */
static void
test_check (struct test_dev *d, uint64_t page, uint64_t version)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t *want = test_common_alloc (PAGE_SIZE);
  int r = engine_read (d->e, buf, PAGE_SIZE, page * PAGE_SIZE);

  if (version == UINT64_MAX)
    TEST_REQUIRE (r == -1 && errno == EIO,
                  "page %" PRIu64 " should be lost", page);
  else {
    TEST_REQUIRE (r == 0, "read of page %" PRIu64 " failed: %m", page);
    if (version == 0)
      memset (want, 0, PAGE_SIZE);
    else
      test_stamp (want, page, version);
    TEST_REQUIRE (memcmp (buf, want, PAGE_SIZE) == 0,
                  "page %" PRIu64 " does not hold version %" PRIu64
                  " (it holds page %" PRIu64 "'s data?)", page, version,
                  buf[0] ^ version << 32);
  }
  free (buf);
  free (want);
}

/* The counters of backend id, which must exist. */
static struct tier_stats
test_stats (struct test_dev *d, unsigned id)
{
  struct tier_stats st;

  ck_assert_msg (tierset_stats (d->ts, id, &st), "no backend %u", id);
  return st;
}

/* Check invariant 5 on every backend left, and that the slots in use
 * add up to used (the mapped pages).
 */
static void
test_check_counters (struct test_dev *d, uint64_t used)
{
  uint64_t sum = 0;
  unsigned i;

  for (i = 0; i < tierset_count (d->ts); i++) {
    struct tier_stats st;

    if (!tierset_stats (d->ts, i, &st))
      continue;
    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity,
                  "backend %u: used %" PRIu64 " + free %" PRIu64 " + bad %"
                  PRIu64 " != capacity %" PRIu64, i, st.used, st.free,
                  st.bad, st.capacity);
    sum += st.used;
  }
  ck_assert_uint_eq (sum, used);
}

/* Wait for a drain to end (30 s at most) and return its status. */
static struct drain_status
test_wait (struct drain *d)
{
  struct drain_status st;
  int i;

  for (i = 0; i < 30000; i++) {
    drain_status (d, &st);
    if (st.state != DRAIN_RUNNING)
      return st;
    nanosleep (&(struct timespec) { .tv_nsec = 1000000 }, NULL);
  }
  ck_abort_msg ("the drain did not end within 30 s");
  return st;
}

/* Drain the middle one of three equal backends holding every page: the
 * pages move to the two others, read back intact, and the backend goes,
 * its id not reused.
 */
START_TEST (test_drain_full)
{
  static const uint64_t nslots[] = { 512, 512, 512 };
  static const int prio[] = { 0, 0, 0 };
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  uint64_t page, held, npages;

  /* Some room left on the others once the spare is kept. */
  test_dev_create (&d, 3, nslots, prio, 0);
  npages = 800;
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  held = test_stats (&d, 1).used;
  ck_assert_uint_gt (held, 0);

  dr = drain_start (d.e, d.ts, 1, engine_spare (d.e));
  ck_assert_ptr_nonnull (dr);
  st = test_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.id, 1);
  ck_assert_uint_eq (st.total, held);
  ck_assert_uint_eq (st.moved, held);
  ck_assert_uint_eq (st.lost, 0);
  ck_assert_uint_eq (st.remaining, 0);
  drain_destroy (dr);

  ck_assert (!tierset_stats (d.ts, 1, &(struct tier_stats) { 0 }));
  ck_assert_uint_eq (tierset_count (d.ts), 3);
  ck_assert_uint_eq (tierset_capacity (d.ts), 1024);
  for (page = 0; page < npages; page++)
    test_check (&d, page, 1);
  test_check_counters (&d, npages);

  /* New writes go to the two left; a new backend gets the next id. */
  for (page = 0; page < 64; page++)
    test_write (&d, page, 2);
  ck_assert_int_eq (tierset_add (d.ts, mem_backend_create ("new", 64), 5),
                    3);
  test_write (&d, 0, 3);
  ck_assert_uint_eq (test_stats (&d, 3).used, 1);
  test_check (&d, 0, 3);
  for (page = 1; page < npages; page++)
    test_check (&d, page, page < 64 ? 2 : 1);
  test_check_counters (&d, npages);
  ck_assert_uint_eq (test_errors, 0);
  test_dev_destroy (&d);
}
END_TEST

/* A drain is refused, and changes nothing, when the others lack room,
 * when no other backend takes pages, for a backend draining already,
 * and for ids that are not backends.
 */
START_TEST (test_drain_refused)
{
  static const uint64_t nslots[] = { 256, 256 };
  static const int prio[] = { 0, 0 };
  struct test_dev d;
  uint64_t page;
  unsigned errors;

  test_dev_create (&d, 2, nslots, prio, 0);
  for (page = 0; page < d.npages; page++)
    test_write (&d, page, 1);

  /* Backend 0 holds about half of 384 pages; backend 1 has 64 free. */
  errors = test_errors;
  ck_assert_ptr_null (drain_start (d.e, d.ts, 0, engine_spare (d.e)));
  ck_assert_uint_gt (test_errors, errors);
  ck_assert_ptr_nonnull (strstr (test_last_error, "cannot be removed: the "
                                 "other backends have 64 free slots, 128 "
                                 "of them kept spare"));
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  /* It still takes new pages. */
  for (page = 0; page < 16; page++)
    test_write (&d, page, 2);
  ck_assert_uint_gt (test_stats (&d, 0).writes, d.npages / 2);

  ck_assert_ptr_null (drain_start (d.e, d.ts, 2, engine_spare (d.e)));
  ck_assert_str_eq (test_last_error, "no backend 2");
  ck_assert_ptr_null (drain_start (d.e, d.ts, TIERSET_MAX_IDS + 5,
                                   engine_spare (d.e)));

  /* Empty the device: now 0 can go, but then 1 is the last one. */
  ck_assert_int_eq (engine_trim (d.e, d.npages * PAGE_SIZE, 0, false), 0);
  ck_assert_int_eq (tierset_drain_begin (d.ts, 0, engine_spare (d.e)), 0);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_DRAINING);
  ck_assert_int_eq (tierset_drain_begin (d.ts, 0, 0), -1);
  ck_assert_ptr_nonnull (strstr (test_last_error, "is being removed "
                                 "already"));
  ck_assert_int_eq (tierset_drain_begin (d.ts, 1, 0), -1);
  ck_assert_ptr_nonnull (strstr (test_last_error, "no other backend takes "
                                 "new pages"));
  /* Not drained, or not draining: tierset_remove refuses. */
  ck_assert_int_eq (tierset_remove (d.ts, 1), -1);
  ck_assert_ptr_nonnull (strstr (test_last_error, "not being drained"));
  tierset_drain_cancel (d.ts, 0);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  /* Single pages alternate between the two: one lands on 0. */
  test_write (&d, 0, 3);
  test_write (&d, 1, 3);
  ck_assert_uint_eq (test_stats (&d, 0).used, 1);
  ck_assert_int_eq (tierset_drain_begin (d.ts, 0, 0), 0);
  ck_assert_int_eq (tierset_remove (d.ts, 0), -1);
  ck_assert_ptr_nonnull (strstr (test_last_error, "1 of its slots are in "
                                 "use"));
  tierset_drain_cancel (d.ts, 0);
  test_dev_destroy (&d);
}
END_TEST

/* Pages whose slot fails to read while the backend is drained become
 * LOST, their slots bad; the others move, and the bad slots do not keep
 * the backend from going.
 */
START_TEST (test_drain_lost)
{
  static const uint64_t nslots[] = { 512, 512 };
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  uint64_t page, npages = 200;

  test_dev_create (&d, 2, nslots, prio, npages);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  ck_assert_uint_eq (test_stats (&d, 0).used, npages);
  /* One page written page by page in order: slot == page here. */
  mem_backend_fail_slots (d.be[0], 10, 1, MEM_FAIL_READ);
  mem_backend_fail_slots (d.be[0], 100, 3, MEM_FAIL_READ);

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e));
  ck_assert_ptr_nonnull (dr);
  st = test_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.lost, 4);
  ck_assert_uint_eq (st.moved, npages - 4);
  drain_destroy (dr);
  ck_assert (!tierset_stats (d.ts, 0, &(struct tier_stats) { 0 }));
  for (page = 0; page < npages; page++)
    test_check (&d, page, page == 10 || (page >= 100 && page < 103)
                ? UINT64_MAX : 1);
  test_check_counters (&d, npages - 4);
  /* A lost page reads again once rewritten. */
  test_write (&d, 10, 2);
  test_check (&d, 10, 2);
  test_dev_destroy (&d);
}
END_TEST

/* When the others stop taking the pages (their writes fail until they
 * are failed), the drain fails: the backend keeps its pages and goes
 * back into service.
 */
START_TEST (test_drain_fails)
{
  static const uint64_t nslots[] = { 256, 256, 256 };
  static const int prio[] = { 2, 1, 0 };
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  uint64_t page, npages = 100;

  test_dev_create (&d, 3, nslots, prio, npages);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  mem_backend_fail_all (d.be[2], MEM_FAIL_WRITE);

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e));
  ck_assert_ptr_nonnull (dr);
  st = test_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_FAILED);
  ck_assert_ptr_nonnull (strstr (st.error, "has a free slot"));
  ck_assert_uint_eq (st.moved, 0);
  drain_destroy (dr);

  ck_assert_int_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  ck_assert_int_eq (test_stats (&d, 1).state, TIER_FAILED);
  ck_assert_uint_eq (test_stats (&d, 0).used, npages);
  for (page = 0; page < npages; page++)
    test_check (&d, page, 1);
  test_write (&d, 0, 2);
  test_check (&d, 0, 2);
  test_dev_destroy (&d);
}
END_TEST

/* A failed backend, which takes no pages but is read, can be drained;
 * draining does not hide that it failed if the drain is given up.
 */
START_TEST (test_drain_failed_backend)
{
  static const uint64_t nslots[] = { 256, 256 };
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  uint64_t page, npages = 64;

  test_dev_create (&d, 2, nslots, prio, npages);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  mem_backend_fail_all (d.be[0], MEM_FAIL_WRITE);
  for (page = 0; page < 3; page++)
    test_write (&d, page, 2);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_FAILED);

  ck_assert_int_eq (tierset_drain_begin (d.ts, 0, 0), 0);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_DRAINING);
  tierset_drain_cancel (d.ts, 0);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_FAILED);

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e));
  ck_assert_ptr_nonnull (dr);
  st = test_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.moved, npages - 3);
  drain_destroy (dr);
  for (page = 0; page < npages; page++)
    test_check (&d, page, page < 3 ? 2 : 1);
  test_check_counters (&d, npages);
  test_dev_destroy (&d);
}
END_TEST

/* A new priority takes effect at the next allocation, both ways. */
START_TEST (test_set_priority)
{
  static const uint64_t nslots[] = { 256, 256 };
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  uint64_t page;

  test_dev_create (&d, 2, nslots, prio, 256);
  for (page = 0; page < 10; page++)
    test_write (&d, page, 1);
  ck_assert_uint_eq (test_stats (&d, 0).used, 10);
  ck_assert_int_eq (tierset_set_priority (d.ts, 1, 5), 0);
  ck_assert_int_eq (test_stats (&d, 1).priority, 5);
  for (page = 10; page < 30; page++)
    test_write (&d, page, 1);
  ck_assert_uint_eq (test_stats (&d, 0).used, 10);
  ck_assert_uint_eq (test_stats (&d, 1).used, 20);
  /* Equal priorities share the writes. */
  ck_assert_int_eq (tierset_set_priority (d.ts, 0, 5), 0);
  for (page = 30; page < 30 + 8 * TEST_STRIPE; page += TEST_STRIPE) {
    uint64_t *buf = test_common_alloc (TEST_STRIPE * PAGE_SIZE);

    memset (buf, 0, TEST_STRIPE * PAGE_SIZE);
    ck_assert_int_eq (engine_write (d.e, buf, TEST_STRIPE * PAGE_SIZE,
                                    page * PAGE_SIZE, false), 0);
    free (buf);
  }
  ck_assert_uint_eq (test_stats (&d, 0).used, 10 + 4 * TEST_STRIPE);
  ck_assert_uint_eq (test_stats (&d, 1).used, 20 + 4 * TEST_STRIPE);

  ck_assert_int_eq (tierset_set_priority (d.ts, 0, TIERSET_PRIORITY_MAX + 1),
                    -1);
  ck_assert_int_eq (tierset_set_priority (d.ts, 0, TIERSET_PRIORITY_MIN - 1),
                    -1);
  ck_assert_int_eq (tierset_set_priority (d.ts, 2, 0), -1);
  ck_assert_str_eq (test_last_error, "no backend 2");
  ck_assert_int_eq (test_stats (&d, 0).priority, 5);
  for (page = 0; page < 30; page++)
    test_check (&d, page, 1);
  test_dev_destroy (&d);
}
END_TEST

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

  test_dev_create (&d, 4, nslots, prio, TEST_THREADS * TEST_THREAD_PAGES);
  for (t = 0; t < 4; t++)
    mem_backend_set_yield (d.be[t], true);
  for (page = 0; page < d.npages; page++)
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
    dr = drain_start (d.e, d.ts, victim[i], engine_spare (d.e));
    ck_assert_ptr_nonnull (dr);
    st = test_wait (dr);
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
      test_check (&d, w[t].first + i, w[t].version[i]);
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
  d.npages = npages;
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
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e));
  ck_assert_ptr_nonnull (dr);
  st = test_wait (dr);
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

/* The suite of drain tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("drain");
  TCase *tc = tcase_create ("drain");

  tcase_add_checked_fixture (tc, test_setup, NULL);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_drain_full);
  tcase_add_test (tc, test_drain_refused);
  tcase_add_test (tc, test_drain_lost);
  tcase_add_test (tc, test_drain_fails);
  tcase_add_test (tc, test_drain_failed_backend);
  tcase_add_test (tc, test_set_priority);
  tcase_add_test (tc, test_drain_concurrent);
  tcase_add_test (tc, test_drain_latency);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-drain", test_suite, NULL, NULL);
}
