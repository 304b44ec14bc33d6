/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of copies=N under faults and races, found by
 * review (each failed before its fix): the surviving copy of a page is
 * read with every try; a drain never frees the only readable copy; the
 * repairer re-creates a copy in its own domain, and does not re-read
 * pages it cannot help every few seconds; the export size with copies
 * is what the allocator really places; and a stress test of writers,
 * trims, readers, failures, the repairer and a drain that checks every
 * byte, the map and the counters.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include <check.h>

#include "domain.h"
#include "drain.h"
#include "engine-internal.h"
#include "mem-backend.h"
#include "page.h"
#include "repair.h"
#include "test-common.h"
#include "test-dev.h"
#include "tierset.h"

static const uint64_t test_slots[] = { 1024, 1024, 1024, 1024 };

/* The survivor of a dead copy is read QUICK (one try) because the
 * copy on the DEAD backend still counts as "untried": two transient
 * errors on the survivor give it up (slot bad), then the dead copy fails
 * and the page is LOST.  With copies=1 the same page, same errors, reads
 * fine (1 + ENGINE_READ_TRIES tries).  copies=2 with one backend dead is
 * less robust than copies=1.
 */
START_TEST (test_survivor_read_quick_loses_page)
{
  static const char *const dom[] = { "a", "b" };
  char *buf = test_common_alloc (PAGE_SIZE);
  struct test_dev d;

  /* Baseline: copies=1, two transient read errors cost nothing. */
  test_dev_create (&d, 1, test_slots, dom, NULL, 8, 1, false);
  test_fill (&d, 1, 1);
  mem_backend_fail_next (d.be[0], MEM_FAIL_READ, 2);
  ck_assert_int_eq (engine_read (d.e, buf, PAGE_SIZE, 0), 0);
  test_dev_destroy (&d);

  /* copies=2, the other copy's backend gave up its server. */
  test_dev_create (&d, 2, test_slots, dom, NULL, 8, 2, false);
  test_fill (&d, 1, 1);
  mem_backend_set_health (d.be[1], BACKEND_DEAD);
  mem_backend_fail_next (d.be[0], MEM_FAIL_READ, 2);
  ck_assert_msg (engine_read (d.e, buf, PAGE_SIZE, 0) == 0,
                 "copies=2: a page whose live copy on backend 0 fails twice "
                 "(transiently) is lost: lost=%" PRIu64 " bad(0)=%" PRIu64,
                 test_stats (&d, 1).lost + test_stats (&d, 0).lost,
                 test_stats (&d, 0).bad);
  test_dev_destroy (&d);
  free (buf);
}
END_TEST

/* A drain keeps "the copies that stay" without asking whether they
 * can be read: a page whose other copy is on a DEAD backend has its only
 * readable copy dropped (freed) when no other domain takes it, and the
 * drain reports DONE.  The pages then fail with EIO.
 */
START_TEST (test_drain_drops_only_readable_copy)
{
  /* a: backend 0 (drained); b: 1 (dies) and 2; c: 3 (dead from the
   * start, so that removing a leaves two domains).
   */
  static const char *const dom[] = { "a", "b", "b", "c" };
  struct test_dev d;
  struct drain *dr;
  struct drain_status st;
  unsigned failed;

  test_dev_create (&d, 4, test_slots, dom, NULL, 64, 2, true);
  mem_backend_set_health (d.be[3], BACKEND_DEAD);
  test_fill (&d, 64, 1);
  ck_assert_uint_eq (test_stats (&d, 0).used, 64);
  ck_assert_uint_gt (test_stats (&d, 1).used, 0);
  mem_backend_set_health (d.be[1], BACKEND_DEAD);
  /* Every page reads now (from backend 0 where its other copy is dead). */
  ck_assert_uint_eq (test_check (&d, 64, 1), 0);
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  drain_destroy (dr);
  failed = test_check (&d, 64, 1);
  ck_assert_msg (failed == 0, "drain state %s dropped=%" PRIu64 ": %u pages "
                 "that read before the drain fail after it",
                 drain_state_name (st.state), st.dropped, failed);
  test_dev_destroy (&d);
}
END_TEST

/* The capacity the plugin exports with copies=2 assumes an optimal
 * placement that the greedy one does not make: two small fast tiers at
 * a high priority and a large slow one below.  Every page's first two
 * copies go to b and c until they are full; the rest of the promised
 * pages get one copy on a (degraded for good: no domain has room for a
 * second one, so the repairer cannot help).
 */
START_TEST (test_capacity_overpromises)
{
  static const char *const dom[] = { "a", "b", "c" };
  static const uint64_t slots[] = { 2048, 1024, 1024 };
  static const int prio[] = { 0, 10, 10 };
  struct test_dev d;
  uint64_t cap, spare, pages;

  /* The size the plugin would export (plugin/swaptier.c). */
  test_dev_create (&d, 3, slots, dom, prio, 1, 2, false);
  cap = tierset_copies_capacity (d.ts, 2);
  test_dev_destroy (&d);
  /* swaptier_spare: reserve 1 % of the total, at least the requests in
   * flight times the stripe.
   */
  spare = (2048 + 1024 + 1024) / 100;
  if (spare < engine_min_spare (TEST_STRIPE))
    spare = engine_min_spare (TEST_STRIPE);
  pages = cap - spare;
  test_dev_create (&d, 3, slots, dom, prio, pages, 2, true);
  test_fill (&d, pages, 1);
  ck_assert_uint_eq (test_check (&d, pages, 1), 0);
  ck_assert_msg (engine_degraded (d.e) == 0, "the export of %" PRIu64
                 " pages (capacity %" PRIu64 ", spare %" PRIu64 ") holds %"
                 PRIu64 " pages with one copy; free slots a=%" PRIu64 " b=%"
                 PRIu64 " c=%" PRIu64, pages, cap, spare,
                 engine_degraded (d.e), test_stats (&d, 0).free,
                 test_stats (&d, 1).free, test_stats (&d, 2).free);
  test_dev_destroy (&d);
}
END_TEST


/* Wait until the repairer is idle or waiting, up to 20 s. */
static struct repair_status
test_repair_settle (struct repair *r)
{
  struct repair_status st;
  unsigned i;

  for (i = 0; i < 2000; i++) {
    repair_status (r, &st);
    if ((st.state == REPAIR_IDLE && st.degraded == 0) ||
        st.state == REPAIR_WAITING)
      return st;
    test_sleep_ms (10);
  }
  return st;
}

/* A failed backend's copy is never re-created in its own domain,
 * even though that copy leaves (it is the one replaced): new copies are
 * kept out of the leaving copies' domains.  With the default domains
 * (every local backend in "local"), two local disks and a remote: the
 * pages of a dead local disk never get their second copy back on the
 * other disk, so losing the remote then loses them.
 */
START_TEST (test_repair_never_within_failed_domain)
{
  static const char *const dom[] = { "local", "local", "remote" };
  struct test_dev d;
  struct repair *r;
  struct repair_status st;
  unsigned failed;
  uint64_t n = 64;

  test_dev_create (&d, 3, test_slots, dom, NULL, n, 2, true);
  test_fill (&d, n, 1);
  ck_assert_uint_gt (test_stats (&d, 0).used, 0);
  mem_backend_set_health (d.be[0], BACKEND_DEAD);
  r = repair_start (d.e, d.ts, 0);
  ck_assert_ptr_nonnull (r);
  st = test_repair_settle (r);
  repair_stop (r);
  /* The remote goes too: every page should still have its local copy. */
  mem_backend_fail_all (d.be[2], MEM_FAIL_ALL);
  failed = test_check (&d, n, 1);
  ck_assert_msg (failed == 0, "repair state %s, %" PRIu64 " copies left to "
                 "re-create, backend 1 (same domain, healthy) has %" PRIu64
                 " free slots: %u pages lost with the remote",
                 repair_state_name (st.state), st.degraded,
                 test_stats (&d, 1).free, failed);
  test_dev_destroy (&d);
}
END_TEST

/* Copies that find no new home are read again by every walk (each 5
 * s, REPAIR_RETRY_S), under the exclusive range lock, without counting
 * against repair-rate= (only copies written count): a stuck repair reads
 * every stuck page over and over, forever.
 */
START_TEST (test_repair_stuck_rereads)
{
  static const char *const dom[] = { "local", "local", "remote" };
  struct test_dev d;
  struct repair *r;
  struct repair_status st;
  struct mem_counters c0, c1;
  uint64_t n = 64;

  test_dev_create (&d, 3, test_slots, dom, NULL, n, 2, true);
  test_fill (&d, n, 1);
  mem_backend_set_health (d.be[0], BACKEND_DEAD);
  r = repair_start (d.e, d.ts, 0);
  st = test_repair_settle (r);
  mem_backend_counters (d.be[2], &c0);
  test_sleep_ms (11000);
  mem_backend_counters (d.be[2], &c1);
  repair_status (r, &st);
  repair_stop (r);
  ck_assert_msg (c1.read_slots - c0.read_slots < n, "state %s, 0 copies "
                 "re-created, yet %" PRIu64 " slots read from backend 2 in "
                 "11 s", repair_state_name (st.state),
                 c1.read_slots - c0.read_slots);
  test_dev_destroy (&d);
}
END_TEST


/* Stress: workers on disjoint page ranges write, read, trim and check;
 * the repairer runs; backends fail reads and writes now and then and one
 * dies midway.  Reads must give the last bytes written or EIO; at the end
 * the counters must agree with the map and every used slot be referenced
 * once.
 */
#define STRESS_WORKERS 6
#define STRESS_PAGES 48                /* per worker */

struct stress_arg {
  struct test_dev *d;
  unsigned id;
  uint64_t seed;
  unsigned wrong, eio, iters;
};

static void
stress_pattern (uint64_t *buf, uint64_t page, uint32_t gen)
{
  size_t i;

  for (i = 0; i < PAGE_SIZE / 8; i++)
    buf[i] = page << 40 | (uint64_t) gen << 16 | i;
}

static void *
stress_worker (void *arg)
{
  struct stress_arg *a = arg;
  uint64_t *buf = test_common_alloc (4 * PAGE_SIZE);
  uint64_t *exp = test_common_alloc (PAGE_SIZE);
  uint32_t gen[STRESS_PAGES] = { 0 };  /* 0: unmapped (zeroes) */
  bool lost[STRESS_PAGES] = { false };
  uint64_t base = (uint64_t) a->id * STRESS_PAGES;
  unsigned it;

  for (it = 0; it < a->iters; it++) {
    unsigned op = test_common_below (&a->seed, 10);
    uint64_t p = test_common_below (&a->seed, STRESS_PAGES - 3);
    unsigned n = 1 + test_common_below (&a->seed, 3), j;

    if (op < 4) {                      /* write n pages */
      for (j = 0; j < n; j++)
        stress_pattern (buf + j * PAGE_SIZE / 8, base + p + j,
                        gen[p + j] + 1);
      if (engine_write (a->d->e, buf, n * PAGE_SIZE, (base + p) * PAGE_SIZE,
                        test_common_below (&a->seed, 2)) == 0)
        for (j = 0; j < n; j++) {
          gen[p + j]++;
          lost[p + j] = false;
        }
      else
        /* Unknown which pages were written: forget them. */
        for (j = 0; j < n; j++)
          lost[p + j] = true;
    }
    else if (op == 4) {                /* trim */
      if (engine_trim (a->d->e, n * PAGE_SIZE, (base + p) * PAGE_SIZE,
                       false) == 0)
        for (j = 0; j < n; j++) {
          gen[p + j] = 0;
          lost[p + j] = false;
        }
    }
    else {                             /* read and check */
      if (engine_read (a->d->e, buf, n * PAGE_SIZE, (base + p) * PAGE_SIZE)
          == -1) {
        a->eio++;
        continue;
      }
      for (j = 0; j < n; j++) {
        if (lost[p + j])
          continue;
        if (gen[p + j] == 0)
          memset (exp, 0, PAGE_SIZE);
        else
          stress_pattern (exp, base + p + j, gen[p + j]);
        if (memcmp (exp, buf + j * PAGE_SIZE / 8, PAGE_SIZE) != 0) {
          fprintf (stderr, "worker %u: page %" PRIu64 " gen %u: wrong "
                   "bytes (word 0 %#" PRIx64 ")\n", a->id, base + p + j,
                   gen[p + j], buf[j * PAGE_SIZE / 8]);
          a->wrong++;
        }
      }
    }
  }
  free (buf);
  free (exp);
  return NULL;
}

/* Every used slot referenced once, counters agree with the map. */
static void
stress_audit (struct test_dev *d)
{
  uint64_t page, mapped = 0, degraded = 0, refs = 0, used = 0;
  unsigned c, i;

  for (page = 0; page < d->e->npages; page++) {
    unsigned live = pagemap_live (d->e->map, page);

    mapped += live > 0;
    degraded += live > 0 && live < d->e->copies;
    refs += live;
    domain_mask seen = 0;
    for (c = 0; c < d->e->copies; c++) {
      slot_t s = pagemap_get (d->e->map, page, c);

      if (s == SLOT_NONE || s == SLOT_LOST)
        continue;
      TEST_REQUIRE ((seen & tierset_domain_of (d->ts, s)) == 0, "page %"
                    PRIu64 ": two copies in one domain", page);
      seen |= tierset_domain_of (d->ts, s);
      for (uint64_t q = page; q < d->e->npages; q++)
        for (unsigned k = 0; k < d->e->copies; k++)
          TEST_REQUIRE ((q == page && k == c) ||
                        pagemap_get (d->e->map, q, k) != s,
                        "slot %" PRIu32 " in page %" PRIu64 " and %" PRIu64,
                        s, page, q);
    }
  }
  for (i = 0; i < d->n; i++) {
    struct tier_stats st;

    if (!tierset_stats (d->ts, i, &st))
      continue;

    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity, "backend %u: "
                  "used %" PRIu64 " free %" PRIu64 " bad %" PRIu64
                  " capacity %" PRIu64, i, st.used, st.free, st.bad,
                  st.capacity);
    used += st.used;
  }
  TEST_REQUIRE (mapped == engine_mapped (d->e), "mapped %" PRIu64 " counted %"
                PRIu64, mapped, engine_mapped (d->e));
  TEST_REQUIRE (degraded == engine_degraded (d->e), "degraded %" PRIu64
                " counted %" PRIu64, degraded, engine_degraded (d->e));
  TEST_REQUIRE (refs == used, "%" PRIu64 " slots referenced, %" PRIu64
                " used (leak)", refs, used);
}

START_TEST (test_stress)
{
  static const char *const dom[] = { "a", "b", "c", "d" };
  struct test_dev d;
  struct repair *r;
  struct stress_arg a[STRESS_WORKERS];
  pthread_t t[STRESS_WORKERS];
  unsigned i, wrong = 0, eio = 0;
  uint64_t seed = 12345 + _i;

  test_dev_create (&d, 4, test_slots, dom, NULL,
                   STRESS_WORKERS * STRESS_PAGES, 2 + _i % 2, true);
  for (i = 0; i < 4; i++)
    mem_backend_set_yield (d.be[i], true);
  r = repair_start (d.e, d.ts, 0);
  mem_backend_fail_every (d.be[0], 37);
  mem_backend_fail_every (d.be[1], 53);
  for (i = 0; i < STRESS_WORKERS; i++) {
    a[i] = (struct stress_arg) { .d = &d, .id = i,
                                 .seed = seed * 1000 + i, .iters = 3000 };
    pthread_create (&t[i], NULL, stress_worker, &a[i]);
  }
  test_sleep_ms (300);
  mem_backend_set_health (d.be[2], BACKEND_DEAD);
  if (_i >= 2) {
    struct drain *dr = drain_start (d.e, d.ts, 3, engine_spare (d.e), 0, true);

    for (unsigned k = 0; k < 200; k++) {
      tierset_set_priority (d.ts, k % 2, (int) (k % 3));
      test_sleep_ms (5);
    }
    if (dr) {
      struct drain_status dst = test_drain_wait (dr);

      fprintf (stderr, "stress %d: drain %s dropped %" PRIu64 " lost %"
               PRIu64 "\n", _i, drain_state_name (dst.state), dst.dropped,
               dst.lost);
      drain_destroy (dr);
    }
  }
  for (i = 0; i < STRESS_WORKERS; i++) {
    pthread_join (t[i], NULL);
    wrong += a[i].wrong;
    eio += a[i].eio;
  }
  repair_stop (r);
  fprintf (stderr, "stress %d: %u wrong, %u EIO\n", _i, wrong, eio);
  ck_assert_uint_eq (wrong, 0);
  stress_audit (&d);
  test_dev_destroy (&d);
}
END_TEST

/* R1b.  The same loss with both copies healthy but for one transient
 * error each, from two readers whose best copies differ (a priority or
 * health change between their choices): reader 2 chooses B with A still
 * live, so it reads B once (QUICK); reader 1 meanwhile gives up A; reader
 * 2's one failed try of B then finds it the last copy and makes the page
 * LOST, though reader 1 has just read B successfully.
 */
struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned reads[2];                   /* per backend */
  bool at[2], open[2];                 /* gate of backend 0 / 1 */
};

static struct gate test_gate = {
  .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
};

static bool
gate_pass (unsigned g)
{
  pthread_mutex_lock (&test_gate.lock);
  test_gate.at[g] = true;
  pthread_cond_broadcast (&test_gate.cond);
  while (!test_gate.open[g])
    pthread_cond_wait (&test_gate.cond, &test_gate.lock);
  pthread_mutex_unlock (&test_gate.lock);
  return true;
}

static void
gate_wait_at (unsigned g)
{
  pthread_mutex_lock (&test_gate.lock);
  while (!test_gate.at[g])
    pthread_cond_wait (&test_gate.cond, &test_gate.lock);
  pthread_mutex_unlock (&test_gate.lock);
}

static void
gate_open (unsigned g)
{
  pthread_mutex_lock (&test_gate.lock);
  test_gate.open[g] = true;
  pthread_cond_broadcast (&test_gate.cond);
  pthread_mutex_unlock (&test_gate.lock);
}

/* Backend 0 (copy A): the first read waits at gate 0; all fail. */
static bool
hook_a (void *arg, uint64_t slot, uint64_t n)
{
  unsigned k = __atomic_fetch_add (&test_gate.reads[0], 1, __ATOMIC_SEQ_CST);

  if (k == 0)
    gate_pass (0);
  return true;
}

/* Backend 1 (copy B): the first read fails, the second waits at gate 1
 * and fails, the others work.
 */
static bool
hook_b (void *arg, uint64_t slot, uint64_t n)
{
  unsigned k = __atomic_fetch_add (&test_gate.reads[1], 1, __ATOMIC_SEQ_CST);

  if (k == 1)
    return gate_pass (1);
  return k == 0;
}

struct reader {
  struct engine *e;
  int r;
};

static void *
reader_thread (void *arg)
{
  struct reader *rd = arg;
  char *buf = test_common_alloc (PAGE_SIZE);

  rd->r = engine_read (rd->e, buf, PAGE_SIZE, 0);
  free (buf);
  return NULL;
}

START_TEST (test_concurrent_drop_loses_page)
{
  static const char *const dom[] = { "a", "b" };
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  struct reader r1, r2;
  pthread_t t1, t2;

  test_dev_create (&d, 2, test_slots, dom, prio, 8, 2, false);
  test_fill (&d, 1, 1);
  mem_backend_set_read_hook (d.be[0], hook_a, NULL);
  mem_backend_set_read_hook (d.be[1], hook_b, NULL);
  r1 = (struct reader) { .e = d.e };
  r2 = (struct reader) { .e = d.e };
  /* Reader 1 chooses A (priority 1) and waits in its read. */
  pthread_create (&t1, NULL, reader_thread, &r1);
  gate_wait_at (0);
  /* Now B ranks first: reader 2 reads B (fails), then chooses B again
   * with A still live and reads it QUICK, waiting at gate 1.
   */
  tierset_set_priority (d.ts, 0, -1);
  pthread_create (&t2, NULL, reader_thread, &r2);
  gate_wait_at (1);
  /* Back: reader 1 fails A twice, gives it up, reads B: fine. */
  tierset_set_priority (d.ts, 0, 1);
  gate_open (0);
  pthread_join (t1, NULL);
  ck_assert_int_eq (r1.r, 0);
  /* Reader 2's one try of B fails. */
  gate_open (1);
  pthread_join (t2, NULL);
  ck_assert_msg (r2.r == 0 && test_stats (&d, 1).lost == 0,
                 "reader 2: %d, page lost on B: %" PRIu64 " (B read fine "
                 "for reader 1 a moment before; B failed one try)",
                 r2.r, test_stats (&d, 1).lost);
  test_dev_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("review");
  TCase *tc = tcase_create ("review");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_survivor_read_quick_loses_page);
  tcase_add_test (tc, test_concurrent_drop_loses_page);
  tcase_add_test (tc, test_drain_drops_only_readable_copy);
  tcase_add_test (tc, test_capacity_overpromises);
  tcase_add_test (tc, test_repair_never_within_failed_domain);
  tcase_add_test (tc, test_repair_stuck_rereads);
  tcase_add_loop_test (tc, test_stress, 0, 6);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  test_common_quiet = true;
  return test_common_main ("test-review", test_suite, NULL, NULL);
}
