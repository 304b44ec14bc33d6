/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of demotion under trouble, over in-memory
 * backends: the reproductions of an adversarial review of the demoter,
 * each of which failed before its fix (D1 to D6 below), plus the end of
 * a walk that moved nothing.
 *
 * - D1: the mover asks the selection once per page: a copy that stops
 *   leaving while its new copy is written (a priority changed) neither
 *   leaks the new slots nor breaks the domain rule.
 * - D2: with nothing that can move (the level below is away; copies=2
 *   with every domain below already holding the pages), the demoter
 *   reads nothing and waits.
 * - D3: pages read a few times a second are not cold.
 * - D4: ages go on ticking during a long walk.
 * - D5: the rate shown is the rate of moves.
 * - D6: a level that cannot demote does not keep those below it from
 *   demoting.
 * - A page that fails to read while the demoter moves it is left as it
 *   is: demotion loses nothing a client did not ask for.
 * - A partial write-zeroes is a write for the age map; a long promotion
 *   pass lets the ages go on and the demoter stop.
 */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "agemap.h"
#include "background.h"
#include "demote.h"
#include "log.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"

static const char *const test_one_domain[] = { "a", "a", "a", "a" };

/* Requests backend id received, failed ones included. */
static uint64_t
test_reads (struct test_dev *d, unsigned id)
{
  struct mem_counters c;

  mem_backend_counters (d->be[id], &c);
  return c.reads;
}

static uint64_t
test_writes (struct test_dev *d, unsigned id)
{
  struct mem_counters c;

  mem_backend_counters (d->be[id], &c);
  return c.writes;
}

/* A demoter with the default watermarks at rate bytes a second. */
static struct demote *
test_demote (struct test_dev *d, uint64_t rate)
{
  const struct demote_config cfg = {
    .on = true, .promote = true,
  .low = DEMOTE_LOW_DEFAULT, .high = DEMOTE_HIGH_DEFAULT,
    .rate = rate,
  };
  struct demote *dm;

  swaptier_debug_demote = getenv ("TEST_DEBUG") != NULL;
  dm = demote_start (d->e, d->ts, &cfg);
  ck_assert_ptr_nonnull (dm);
  return dm;
}

/* Wait until backend id received more than base writes (at most 10 s). */
static void
test_wait_writes (struct test_dev *d, unsigned id, uint64_t base)
{
  unsigned i;

  for (i = 0; i < 1000 && test_writes (d, id) <= base; i++)
    test_sleep_ms (10);
  TEST_REQUIRE (test_writes (d, id) > base,
                "the demoter never wrote to backend %u", id);
}

/* D1: a copy that leaves the level when the mover classifies the page,
 * and no longer when the new copies are written (its backend changed
 * priority, failed, or began draining meanwhile), keeps its entry: the
 * new copies written for it are neither published nor freed.  Slots
 * leak (used > live copies, for ever).
 */
START_TEST (test_flip_leaks_slots)
{
  const uint64_t nslots[] = { 64, 1024 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  uint64_t base, used, live;

  test_dev_create (&d, 2, nslots, test_one_domain, prio, 400, 1, true);
  test_fill_range (&d, 0, 64, 1);
  TEST_REQUIRE (test_stats (&d, 0).free * 100 < 5 * 64, "A not full");
  base = test_writes (&d, 1);
  mem_backend_hold (d.be[1], MEM_FAIL_WRITE, true);
  dm = test_demote (&d, 0);
  test_wait_writes (&d, 1, base);
  /* The admin gives backend 0 another priority meanwhile. */
  ck_assert_int_eq (tierset_set_priority (d.ts, 0, 20), 0);
  mem_backend_hold (d.be[1], MEM_FAIL_WRITE, false);
  test_sleep_ms (300);
  demote_stop (dm);
  used = test_used (&d);
  live = test_live_copies (&d);
  ck_assert_uint_eq (test_check_range (&d, 0, 64, 1), 0);
  TEST_REQUIRE (used == live, "slots in use %" PRIu64 " but live copies %"
                PRIu64 ": %" PRIu64 " slots leaked", used, live, used - live);
  test_dev_destroy (&d);
}
END_TEST

/* D1 with copies=2: the same window breaks the domain rule.  Both
 * copies (domains a and b) leave level 10; the one new copy goes to C
 * (domain b); while it is written, B (domain b) gets priority 5.  The
 * mover then replaces A's copy (domain a) with C's and keeps B's: both
 * copies in domain b.  Domain b failing then loses pages that had a
 * copy in domain a: EIO for pages copies=2 must have kept.
 */
START_TEST (test_flip_breaks_domain_rule)
{
  const uint64_t nslots[] = { 64, 64, 1024 };
  const char *const dom[] = { "a", "b", "b" };
  const int prio[] = { 10, 10, 0 };
  struct test_dev d;
  struct demote *dm;
  uint64_t base, bad;
  unsigned failed;

  test_dev_create (&d, 3, nslots, dom, prio, 400, 2, true);
  test_fill_range (&d, 0, 63, 1);
  TEST_REQUIRE (test_domain_violations (&d) == 0, "bad before");
  base = test_writes (&d, 2);
  mem_backend_hold (d.be[2], MEM_FAIL_WRITE, true);
  dm = test_demote (&d, 0);
  test_wait_writes (&d, 2, base);
  ck_assert_int_eq (tierset_set_priority (d.ts, 1, 5), 0);
  mem_backend_hold (d.be[2], MEM_FAIL_WRITE, false);
  test_sleep_ms (300);
  demote_stop (dm);
  bad = test_domain_violations (&d);
  /* Domain b fails as a whole. */
  mem_backend_fail_all (d.be[1], MEM_FAIL_ALL);
  mem_backend_fail_all (d.be[2], MEM_FAIL_ALL);
  failed = test_check_range (&d, 0, 63, 1);
  TEST_REQUIRE (bad == 0 && failed == 0,
                "%" PRIu64 " pages with both copies in domain b; after "
                "domain b failed, %u pages read EIO", bad, failed);
  test_dev_destroy (&d);
}
END_TEST

/* D2: the demoter counts free slots of levels below that no demotion
 * can use (a backend that is not up, here a remote reconnecting), so
 * it walks the level every second, reading every cold page and moving
 * none, for as long as that lasts.
 */
START_TEST (test_spin_lower_down)
{
  const uint64_t nslots[] = { 64, 1024 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  uint64_t r0, r1;

  test_dev_create (&d, 2, nslots, test_one_domain, prio, 400, 1, true);
  test_fill_range (&d, 0, 64, 1);
  mem_backend_set_health (d.be[1], BACKEND_DOWN);
  dm = test_demote (&d, 0);
  test_sleep_ms (1500);
  r0 = test_reads (&d, 0);
  test_sleep_ms (4000);
  r1 = test_reads (&d, 0);
  demote_stop (dm);
  TEST_REQUIRE (r1 - r0 == 0, "with no client at all and nothing that can "
                "move, the demoter read backend 0 %" PRIu64 " times in 4 s",
                r1 - r0);
  test_dev_destroy (&d);
}
END_TEST

/* D2 with copies=2 over the most common layout (a local fast disk, a
 * remote slow one, two domains): every page has one copy on each
 * level, the fast one can never demote, and the demoter re-reads the
 * whole fast tier every second, for ever.
 */
START_TEST (test_spin_two_domains)
{
  const uint64_t nslots[] = { 64, 1024 };
  const char *const dom[] = { "a", "c" };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;
  uint64_t r0, r1;

  test_dev_create (&d, 2, nslots, dom, prio, 400, 2, true);
  test_fill_range (&d, 0, 63, 1);
  r0 = test_reads (&d, 0);
  dm = test_demote (&d, 0);
  test_sleep_ms (4500);
  r1 = test_reads (&d, 0);
  demote_status (dm, &st);
  demote_stop (dm);
  ck_assert_int_eq (st.state, DEMOTE_WAITING);
  TEST_REQUIRE (r1 - r0 == 0, "with no client and nothing that can move, "
                "the demoter read backend 0 %" PRIu64 " times in 4.5 s "
                "(%" PRIu64 " slots of it in use)", r1 - r0,
                test_stats (&d, 0).used);
  test_dev_destroy (&d);
}
END_TEST

/* D3: a page read 300 ms ago is "cold": age >= DEMOTE_MIN_AGE (1) only
 * says it was last touched before the latest tick, and the census runs
 * 100 ms after a tick (the phase of the retry after WAITING), so a page
 * not touched in those 100 ms counts as cold although the spec says
 * cold is "not written nor read for at least one age tick (1 s)".
 * Pages read 3 times a second are demoted.
 */
struct test_reader {
  struct test_dev *d;
  uint64_t n;
  bool stop;
};

static void *
test_reader_thread (void *arg)
{
  struct test_reader *r = arg;
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t p;

  while (!__atomic_load_n (&r->stop, __ATOMIC_RELAXED)) {
    for (p = 0; p < r->n; p++)
      engine_read (r->d->e, buf, PAGE_SIZE, p * PAGE_SIZE);
    test_sleep_ms (300);
  }
  free (buf);
  return NULL;
}

START_TEST (test_hot_pages_demoted)
{
  const uint64_t nslots[] = { 64, 1024 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct test_reader r = { .d = &d, .n = 64 };
  pthread_t th;
  struct tier_stats st;

  test_dev_create (&d, 2, nslots, test_one_domain, prio, 400, 1, true);
  test_fill_range (&d, 0, 64, 1);
  ck_assert_int_eq (pthread_create (&th, NULL, test_reader_thread, &r), 0);
  dm = test_demote (&d, 0);
  test_sleep_ms (3500);
  __atomic_store_n (&r.stop, true, __ATOMIC_RELAXED);
  pthread_join (th, NULL);
  demote_stop (dm);
  st = test_stats (&d, 0);
  TEST_REQUIRE (st.demoted == 0, "%" PRIu64 " pages read every 300 ms were "
                "demoted as cold", st.demoted);
  test_dev_destroy (&d);
}
END_TEST

/* D4: the age map ticks only between walks: a walk that lasts (a low
 * demote-rate, or a large level) freezes every page's age, and after
 * it the lost seconds count as one tick.  A page untouched for 4 s
 * while a walk runs still reads as age 0.
 */
START_TEST (test_ticks_freeze_in_walk)
{
  const uint64_t nslots[] = { 4096, 16384 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;
  const uint64_t probe = 10000;
  unsigned i, age;

  test_dev_create (&d, 2, nslots, test_one_domain, prio, 12000, 1, true);
  test_fill_range (&d, 0, 4096, 1);
  dm = test_demote (&d, 256 * 1024);    /* 64 pages a second */
  for (i = 0; i < 500; i++) {
    demote_status (dm, &st);
    if (st.state == DEMOTE_RUNNING)
      break;
    test_sleep_ms (10);
  }
  ck_assert_int_eq (st.state, DEMOTE_RUNNING);
  test_fill_range (&d, probe, 1, 1);
  test_sleep_ms (4000);
  demote_status (dm, &st);
  age = agemap_age (engine_ages (d.e), probe);
  demote_stop (dm);
  TEST_REQUIRE (age >= 3, "page untouched for 4 s has age %u (demoter %s, "
                "%" PRIu64 " demoted)", age, demote_state_name (st.state),
                st.demoted);
  test_dev_destroy (&d);
}
END_TEST

/* D5: the rate shown (list "demote ... rate=") is measured only by a
 * walk that lasts a second; walks are shorter whenever a level needs
 * fewer than rate x 1 s pages, so it reads 0 while demoting.
 */
START_TEST (test_rate_never_shown)
{
  const uint64_t nslots[] = { 8192, 32768 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;
  uint64_t max_rate = 0;
  unsigned i;

  test_dev_create (&d, 2, nslots, test_one_domain, prio, 30000, 1, true);
  test_fill_range (&d, 0, 8192, 1);
  /* 4 MiB/s: 1024 pages a second, about 410 to move at each walk. */
  dm = test_demote (&d, 4 * 1024 * 1024);
  for (i = 0; i < 400; i++) {
    demote_status (dm, &st);
    if (st.rate > max_rate)
      max_rate = st.rate;
    test_sleep_ms (10);
  }
  demote_stop (dm);
  TEST_REQUIRE (st.demoted == 0 || max_rate > 0,
                "%" PRIu64 " pages demoted in 4 s at up to 1024 a second, "
                "rate shown never above 0", st.demoted);
  test_dev_destroy (&d);
}
END_TEST

/* D6: a level that needs demotion and cannot (here: no domain below it
 * that its pages' other copies are not in) returns WAITING from
 * demote_check before the levels below it are looked at: the level
 * below, which could demote, never does.
 */
START_TEST (test_stuck_level_blocks_lower)
{
  const uint64_t nslots[] = { 64, 64, 1024 };
  const char *const dom[] = { "a", "b", "b" };
  const int prio[] = { 20, 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct tier_stats b;

  test_dev_create (&d, 3, nslots, dom, prio, 400, 2, true);
  test_fill_range (&d, 0, 63, 1);
  b = test_stats (&d, 1);
  TEST_REQUIRE (b.free * 100 < 5 * b.capacity, "B not full");
  dm = test_demote (&d, 0);
  test_sleep_ms (4000);
  demote_stop (dm);
  b = test_stats (&d, 1);
  ck_assert_uint_eq (test_check_range (&d, 0, 63, 1), 0);
  TEST_REQUIRE (b.free * 100 >= 10 * (b.capacity - b.bad),
                "level 10 (B) could demote to C but kept %" PRIu64
                " free of %" PRIu64, b.free, b.capacity);
  test_dev_destroy (&d);
}
END_TEST

/* A fast backend whose reads fail for a while: demotion reads its
 * pages and must leave them as they are (neither given up nor lost),
 * so that once the backend reads again every page reads back.  Found
 * by test-errors.sh: a demoter that read like a client made pages lost
 * that no client had asked for.
 */
START_TEST (test_failing_reads_lose_nothing)
{
  const uint64_t nslots[] = { 64, 1024 };
  const int prio[] = { 10, 0 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;

  test_max_errors = 1000000;
  test_dev_create (&d, 2, nslots, test_one_domain, prio, 400, 1, true);
  test_max_errors = 1000;
  test_fill_range (&d, 0, 63, 1);
  mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
  dm = test_demote (&d, 0);
  test_sleep_ms (3500);
  demote_status (dm, &st);
  demote_stop (dm);
  mem_backend_heal (d.be[0]);
  ck_assert_uint_eq (st.demoted, 0);
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  ck_assert_uint_eq (test_stats (&d, 0).bad, 0);
  ck_assert_uint_eq (engine_mapped (d.e), 63);
  ck_assert_uint_eq (test_check_range (&d, 0, 63, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

/* A partial write-zeroes rewrites its page: young again and not read
 * since (so its next read is no re-read).
 */
START_TEST (test_zero_partial_is_a_write)
{
  static const int prio[] = { 1 };
  struct test_dev d;
  char *buf = test_common_alloc (PAGE_SIZE);
  unsigned t;

  test_dev_create (&d, 1, TEST_SLOTS (256), test_one_domain, prio, 64, 1,
                   true);
  test_fill (&d, 4, 1);
  ck_assert_uint_eq (test_check (&d, 4, 1), 0);
  for (t = 0; t < 10; t++)
    agemap_tick (engine_ages (d.e));
  ck_assert_uint_eq (agemap_age (engine_ages (d.e), 2), 10);
  ck_assert_int_eq (engine_zero (d.e, 512, 2 * PAGE_SIZE + 1024, false,
                                 true), 0);
  TEST_REQUIRE (agemap_age (engine_ages (d.e), 2) == 0,
                "page 2 rewritten by a partial zero still looks %u ticks "
                "old", agemap_age (engine_ages (d.e), 2));
  ck_assert_int_eq (engine_read (d.e, buf, PAGE_SIZE, 2 * PAGE_SIZE), 0);
  ck_assert_int_eq (buf[1024], 0);
  ck_assert_uint_eq (test_stats (&d, 0).rereads, 0);
  free (buf);
  test_dev_destroy (&d);
}
END_TEST

/* A long promotion pass (a low rate, many re-reads) lets the ages go
 * on: 200 re-reads at 8 pages a second, and 3 s later an untouched
 * page is older.  The demoter also stops promptly in the middle.
 */
START_TEST (test_promotion_pass_ticks)
{
  static const int prio[] = { 1 };
  struct test_dev d;
  struct demote *dm;
  unsigned before, after;
  uint64_t t0;

  test_dev_create (&d, 1, TEST_SLOTS (1024), test_one_domain, prio, 512, 1,
                   true);
  test_fill (&d, 300, 1);
  ck_assert_uint_eq (test_check (&d, 300, 1), 0);
  test_add_backends (&d, 1, 1024, 10, test_one_domain);
  dm = test_demote (&d, 8 * PAGE_SIZE);
  test_sleep_ms (1100);
  ck_assert_uint_eq (test_check (&d, 200, 1), 0);
  before = agemap_age (engine_ages (d.e), 250);
  test_sleep_ms (3000);
  after = agemap_age (engine_ages (d.e), 250);
  t0 = background_now_ns ();
  demote_stop (dm);
  ck_assert_uint_lt (background_now_ns () - t0, 1000000000);
  TEST_REQUIRE (after >= before + 2, "the age map did not tick during a "
                "promotion pass: an untouched page was %u ticks old, and "
                "%u three seconds later", before, after);
  ck_assert_uint_eq (test_check (&d, 300, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("demote-faults");
  TCase *tc = tcase_create ("demote-faults");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_flip_leaks_slots);
  tcase_add_test (tc, test_flip_breaks_domain_rule);
  tcase_add_test (tc, test_spin_lower_down);
  tcase_add_test (tc, test_spin_two_domains);
  tcase_add_test (tc, test_hot_pages_demoted);
  tcase_add_test (tc, test_ticks_freeze_in_walk);
  tcase_add_test (tc, test_rate_never_shown);
  tcase_add_test (tc, test_stuck_level_blocks_lower);
  tcase_add_test (tc, test_failing_reads_lose_nothing);
  tcase_add_test (tc, test_zero_partial_is_a_write);
  tcase_add_test (tc, test_promotion_pass_ticks);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-demote-faults", test_suite, NULL, NULL);
}
