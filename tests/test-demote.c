/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of demotion over in-memory backends (lib/agemap,
 * lib/demote, the mover's demotion selection, lib/tierset-levels).
 *
 * - The age map: ages count ticks, stop at AGEMAP_AGE_MAX and never wrap
 *   around to young however long a page sits; the read bit says
 *   re-read.
 * - A fast level that runs short of free slots sends its coldest pages
 *   down until its high watermark, and keeps the young ones; every byte
 *   reads back, the counters agree with the map.
 * - With copies=2 both copies on the level leave it and the domain rule
 *   holds, also against a copy that stays on a level in between.
 * - Off means off; with no room below, the demoter waits and moves
 *   nothing.
 * - A page read again from a lower level goes up (both copies with
 *   copies=2), one read once stays; none goes into a level short of
 *   room, none with promotion off.
 * - Clients writing, trimming and reading while the demoter works see
 *   their own bytes.
 */

#include <config.h>

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "agemap.h"
#include "demote.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"

static const struct demote_config test_demote_on = {
  .on = true, .promote = true,
  .low = DEMOTE_LOW_DEFAULT, .high = DEMOTE_HIGH_DEFAULT,
  .rate = 0,
};

/* Usable and free slots of backend id. */
static uint64_t
test_free (struct test_dev *d, unsigned id)
{
  return test_stats (d, id).free;
}

static uint64_t
test_usable (struct test_dev *d, unsigned id)
{
  struct tier_stats st = test_stats (d, id);

  return st.capacity - st.bad;
}

/* Wait (up to 20 s) until the free slots of the backends in ids reach
 * the share high of their usable ones.
 */
static void
test_wait_free (struct test_dev *d, const unsigned *ids, unsigned n,
                unsigned high)
{
  uint64_t free = 0, usable = 0;
  unsigned i, k;

  for (i = 0; i < 2000; i++) {
    free = usable = 0;
    for (k = 0; k < n; k++) {
      free += test_free (d, ids[k]);
      usable += test_usable (d, ids[k]);
    }
    if (free * 100 >= usable * high)
      return;
    test_sleep_ms (10);
  }
  ck_abort_msg ("free slots of the level stayed at %" PRIu64 " of %" PRIu64,
                free, usable);
}

START_TEST (test_agemap_ages)
{
  struct agemap *am = agemap_create (8);
  unsigned t;

  ck_assert_ptr_nonnull (am);
  agemap_written (am, 0, 2);
  ck_assert_uint_eq (agemap_age (am, 0), 0);
  for (t = 1; t <= AGEMAP_AGE_MAX; t++) {
    agemap_tick (am);
    ck_assert_uint_eq (agemap_age (am, 0), t);
  }
  /* Long after: as old as ages go, never young again.  Without the
   * clamping walk the 7-bit epoch wraps after 128 ticks.
   */
  for (t = 0; t < 1000; t++) {
    agemap_tick (am);
    TEST_REQUIRE (agemap_age (am, 0) == AGEMAP_AGE_MAX,
                  "after %u more ticks a page untouched is %u ticks old",
                  t + 1, agemap_age (am, 0));
  }
  /* Touched pages are young, the others keep their age. */
  ck_assert (!agemap_read (am, 1));
  ck_assert_uint_eq (agemap_age (am, 1), 0);
  ck_assert_uint_eq (agemap_age (am, 0), AGEMAP_AGE_MAX);
  agemap_tick (am);
  ck_assert_uint_eq (agemap_age (am, 1), 1);
  /* Read again: a re-read, until written. */
  ck_assert (agemap_read (am, 1));
  ck_assert (agemap_read (am, 1));
  agemap_written (am, 1, 1);
  ck_assert (!agemap_read (am, 1));
  /* The clamping walk keeps the read bit. */
  for (t = 0; t < 300; t++)
    agemap_tick (am);
  ck_assert (agemap_read (am, 1));
  agemap_destroy (am);
}
END_TEST

/* A fast backend over a slow one: old pages A, then young pages B that
 * take the fast level below its low watermark.  B comes first in the
 * map, so a walk that took any page would take B's.  The demoter frees
 * slots up to its high watermark with A's pages only, to the slow
 * backend; all reads back.
 */
START_TEST (test_demote_coldest)
{
  static const char *const dom[] = { "a", "a" };
  static const int prio[] = { 10, 1 };
  static const uint64_t slots[] = { 101, 1024 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;
  const unsigned fast[] = { 0 };
  uint64_t usable, a = 60, b, page, moved = 0;

  test_dev_create (&d, 2, slots, dom, prio, 512, 1, true);
  usable = test_usable (&d, 0);
  b = usable - a - usable * DEMOTE_LOW_DEFAULT / 100 + 1;
  dm = demote_start (d.e, d.ts, &test_demote_on);
  ck_assert_ptr_nonnull (dm);
  test_fill_range (&d, b, a, 1);
  test_sleep_ms (2200);
  ck_assert_uint_eq (test_stats (&d, 0).demoted, 0);
  test_fill_range (&d, 0, b, 1);
  test_wait_free (&d, fast, 1, DEMOTE_HIGH_DEFAULT);
  demote_status (dm, &st);
  demote_stop (dm);

  for (page = 0; page < a + b; page++) {
    unsigned on = test_backend_of (&d, pagemap_get (d.e->map, page, 0));

    if (page < b)
      TEST_REQUIRE (on == 0, "young page %" PRIu64 " was demoted", page);
    moved += on == 1;
  }
  ck_assert_uint_gt (moved, 0);
  ck_assert_uint_eq (moved, test_stats (&d, 0).demoted);
  ck_assert_uint_eq (moved, st.demoted);
  ck_assert_uint_eq (test_stats (&d, 1).demoted, 0);
  ck_assert_uint_eq (test_stats (&d, 1).used, moved);
  ck_assert_uint_eq (test_check (&d, a + b, 1), 0);
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  ck_assert_uint_eq (engine_mapped (d.e), a + b);
  test_dev_destroy (&d);
}
END_TEST

/* copies=2: two fast backends (domains a, b) over two slow ones (a, b).
 * Both copies of a cold page leave the fast level; every page keeps two
 * copies on two domains.
 */
START_TEST (test_demote_copies)
{
  static const char *const dom[] = { "a", "b", "a", "b" };
  static const int prio[] = { 10, 10, 1, 1 };
  static const uint64_t slots[] = { 81, 81, 1024, 1024 };
  struct test_dev d;
  struct demote *dm;
  const unsigned fast[] = { 0, 1 };
  uint64_t n, page, both = 0;

  test_dev_create (&d, 4, slots, dom, prio, 512, 2, true);
  n = test_usable (&d, 0);
  dm = demote_start (d.e, d.ts, &test_demote_on);
  ck_assert_ptr_nonnull (dm);
  test_fill (&d, n, 1);
  test_sleep_ms (1200);
  test_wait_free (&d, fast, 2, DEMOTE_HIGH_DEFAULT);
  demote_stop (dm);

  test_check_placement (&d, n, 2, UINT_MAX);
  for (page = 0; page < n; page++) {
    unsigned b0 = test_backend_of (&d, pagemap_get (d.e->map, page, 0));
    unsigned b1 = test_backend_of (&d, pagemap_get (d.e->map, page, 1));

    both += b0 >= 2 && b1 >= 2;
  }
  ck_assert_uint_gt (both, 0);
  ck_assert_uint_eq (test_stats (&d, 2).used + test_stats (&d, 3).used,
                     test_stats (&d, 0).demoted + test_stats (&d, 1).demoted);
  ck_assert_uint_eq (test_check (&d, n, 1), 0);
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  test_dev_destroy (&d);
}
END_TEST

/* copies=2, a copy that stays below the level: fast (a) at 10 over b at
 * 5 and a at 1.  Pages have copies on fast a and on b; the copy leaving
 * fast a may not go to b (the next level down, which its other copy is
 * in) and goes to the a below it.
 */
START_TEST (test_demote_keeps_domains)
{
  static const char *const dom[] = { "a", "b", "a" };
  static const int prio[] = { 10, 5, 1 };
  static const uint64_t slots[] = { 81, 1024, 1024 };
  struct test_dev d;
  struct demote *dm;
  const unsigned fast[] = { 0 };
  uint64_t n;

  test_dev_create (&d, 3, slots, dom, prio, 512, 2, true);
  n = test_usable (&d, 0);
  dm = demote_start (d.e, d.ts, &test_demote_on);
  ck_assert_ptr_nonnull (dm);
  test_fill (&d, n, 1);
  test_sleep_ms (1200);
  test_wait_free (&d, fast, 1, DEMOTE_HIGH_DEFAULT);
  demote_stop (dm);

  test_check_placement (&d, n, 2, UINT_MAX);
  ck_assert_uint_eq (test_stats (&d, 1).used, n);
  ck_assert_uint_eq (test_stats (&d, 2).used, test_stats (&d, 0).demoted);
  ck_assert_uint_gt (test_stats (&d, 2).used, 0);
  ck_assert_uint_eq (test_check (&d, n, 1), 0);
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  test_dev_destroy (&d);
}
END_TEST

/* Off moves nothing; with no room below, on moves nothing either and
 * says it waits.
 */
START_TEST (test_demote_off_and_no_room)
{
  static const char *const dom[] = { "a", "a" };
  static const int prio[] = { 10, 1 };
  const struct demote_config off = { .on = false, .low = 5, .high = 10 };
  struct test_dev d;
  struct demote *dm;
  struct demote_status st;
  uint64_t n;
  unsigned i;

  test_dev_create (&d, 2, TEST_SLOTS (64), dom, prio, 200, 1, true);
  n = test_usable (&d, 0) + test_usable (&d, 1);
  dm = demote_start (d.e, d.ts, &off);
  test_fill (&d, test_usable (&d, 0), 1);
  test_sleep_ms (1500);
  demote_status (dm, &st);
  ck_assert_int_eq (st.state, DEMOTE_OFF);
  ck_assert_uint_eq (test_stats (&d, 0).demoted, 0);
  ck_assert_uint_eq (test_free (&d, 0), 0);
  demote_stop (dm);

  /* Both levels full. */
  test_fill_range (&d, test_usable (&d, 0), test_usable (&d, 1), 1);
  ck_assert_uint_eq (test_free (&d, 1), 0);
  dm = demote_start (d.e, d.ts, &test_demote_on);
  for (i = 0; i < 300; i++) {
    demote_status (dm, &st);
    if (st.state == DEMOTE_WAITING)
      break;
    test_sleep_ms (10);
  }
  ck_assert_int_eq (st.state, DEMOTE_WAITING);
  ck_assert_uint_eq (st.demoted, 0);
  demote_stop (dm);
  ck_assert_uint_eq (test_check (&d, n, 1), 0);
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  test_dev_destroy (&d);
}
END_TEST

/* Read pages [first, first + n) once each (their bytes are checked). */
static void
test_read_pages (struct test_dev *d, uint64_t first, uint64_t n)
{
  ck_assert_uint_eq (test_check_range (d, first, n, 1), 0);
}

/* Wait (up to 5 s) until the copies promoted reach want. */
static void
test_wait_promoted (struct demote *dm, uint64_t want)
{
  struct demote_status st;
  unsigned i;

  for (i = 0; i < 500; i++) {
    demote_status (dm, &st);
    if (st.promoted >= want)
      return;
    test_sleep_ms (10);
  }
  ck_abort_msg ("%" PRIu64 " copies promoted, not %" PRIu64, st.promoted,
                want);
}

/* Pages written to slow backends before a fast one was added: a page
 * read once stays below, a page read again goes up (with copies=2 both
 * copies, on two domains); the bytes stay, the counters agree.
 */
START_TEST (test_promote_reread)
{
  static const char *const dom[] = { "a", "b" };
  static const int prio[] = { 1, 1 };
  unsigned copies = _i + 1, c;
  const struct demote_config cfg = {
    .on = false, .promote = true, .low = 5, .high = 10,
  };
  struct test_dev d;
  struct demote *dm;
  uint64_t page, promoted = 0;

  test_dev_create (&d, copies, TEST_SLOTS (1024), dom, prio, 64, copies,
                   true);
  test_fill (&d, 20, 1);
  test_add_backends (&d, copies, 1024, 10, dom);
  dm = demote_start (d.e, d.ts, &cfg);
  ck_assert_ptr_nonnull (dm);
  test_read_pages (&d, 0, 20);
  test_sleep_ms (300);
  ck_assert_uint_eq (test_stats (&d, copies).used, 0);
  test_read_pages (&d, 0, 10);
  test_wait_promoted (dm, 10 * copies);
  test_sleep_ms (100);
  demote_stop (dm);

  for (page = 0; page < 20; page++)
    for (c = 0; c < copies; c++) {
      unsigned on = test_backend_of (&d, pagemap_get (d.e->map, page, c));

      if (page < 10)
        TEST_REQUIRE (on >= copies, "page %" PRIu64 " read twice stayed "
                      "below", page);
      else
        TEST_REQUIRE (on < copies, "page %" PRIu64 " read once went up",
                      page);
    }
  for (c = 0; c < copies; c++)
    promoted += test_stats (&d, c).promoted;
  ck_assert_uint_eq (promoted, 10 * copies);
  ck_assert_uint_eq (test_domain_violations (&d), 0);
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  ck_assert_uint_eq (test_check (&d, 20, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

/* No promotion into a level short of room, nor with promote off. */
START_TEST (test_promote_needs_room)
{
  static const char *const dom[] = { "a", "a" };
  static const int prio[] = { 1 };
  struct demote_config cfg = {
    .on = false, .promote = true, .low = 5, .high = 10,
  };
  struct test_dev d;
  struct demote *dm;
  uint64_t fast;

  test_dev_create (&d, 1, TEST_SLOTS (1024), dom, prio, 256, 1, true);
  test_fill (&d, 20, 1);
  test_add_backends (&d, 1, 65, 10, dom);
  fast = test_usable (&d, 1);
  /* The fast level full but for one slot: below its low watermark. */
  test_fill_range (&d, 100, fast - 1, 1);
  ck_assert_uint_eq (test_free (&d, 1), 1);
  dm = demote_start (d.e, d.ts, &cfg);
  test_read_pages (&d, 0, 20);
  test_read_pages (&d, 0, 20);
  test_sleep_ms (300);
  demote_stop (dm);
  ck_assert_uint_eq (test_stats (&d, 0).promoted, 0);

  /* Room again, but promote off. */
  ck_assert_int_eq (engine_trim (d.e, (fast - 1) * PAGE_SIZE,
                                 100 * PAGE_SIZE, false), 0);
  cfg.promote = false;
  dm = demote_start (d.e, d.ts, &cfg);
  test_read_pages (&d, 0, 20);
  test_sleep_ms (300);
  demote_stop (dm);
  ck_assert_uint_eq (test_stats (&d, 0).promoted, 0);
  ck_assert_uint_eq (test_stats (&d, 1).used, 0);
  ck_assert_uint_gt (test_stats (&d, 0).rereads, 0);
  ck_assert_uint_eq (test_check (&d, 20, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

#define STRESS_WORKERS 3
#define STRESS_PAGES 64                /* per worker */

struct stress_arg {
  struct test_dev *d;
  uint64_t first;
  unsigned gen[STRESS_PAGES];          /* 0: trimmed */
  uint64_t seed;
  volatile bool *stop;
};

/* Write (new generation), trim or read-and-check random pages of its
 * own range until told to stop.
 */
static void *
stress_worker (void *p)
{
  struct stress_arg *a = p;
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  unsigned round = 0;
  size_t i;

  while (!*a->stop) {
    uint64_t r = test_common_rand (&a->seed), k = r % STRESS_PAGES;
    uint64_t page = a->first + k;
    unsigned op = (r >> 32) % 8;

    if (op < 3) {
      unsigned gen = ++round % 60000 + 1;

      for (i = 0; i < PAGE_SIZE / 8; i++)
        buf[i] = page << 32 | (uint64_t) gen << 16 | i;
      ck_assert_int_eq (engine_write (a->d->e, buf, PAGE_SIZE,
                                      page * PAGE_SIZE, false), 0);
      a->gen[k] = gen;
    }
    else if (op == 3) {
      ck_assert_int_eq (engine_trim (a->d->e, PAGE_SIZE, page * PAGE_SIZE,
                                     false), 0);
      a->gen[k] = 0;
    }
    else {
      ck_assert_int_eq (engine_read (a->d->e, buf, PAGE_SIZE,
                                     page * PAGE_SIZE), 0);
      for (i = 0; i < PAGE_SIZE / 8; i++) {
        uint64_t want = a->gen[k] ? page << 32 | (uint64_t) a->gen[k] << 16
          | i : 0;

        TEST_REQUIRE (buf[i] == want, "page %" PRIu64 " word %zu is %#"
                      PRIx64 ", not %#" PRIx64, page, i, buf[i], want);
      }
    }
  }
  free (buf);
  return NULL;
}

/* Clients rewrite, trim and read pages while the demoter sends the
 * cold ones (a big set written first) down: every read sees the last
 * write, and at the end the map, counters and data agree.
 */
START_TEST (test_demote_racing_clients)
{
  static const char *const dom[] = { "a", "b", "a", "b" };
  static const int prio[] = { 10, 10, 1, 1 };
  static const uint64_t slots[] = { 97, 97, 1024, 1024 };
  struct test_dev d;
  struct demote *dm;
  struct stress_arg arg[STRESS_WORKERS];
  pthread_t th[STRESS_WORKERS];
  volatile bool stop = false;
  struct demote_status st;
  uint64_t cold = 150, page, demote_total;
  unsigned copies = _i + 1, w, k;

  test_dev_create (&d, 4, slots, dom, prio, 512, copies, true);
  test_fill (&d, cold, 1);
  dm = demote_start (d.e, d.ts, &test_demote_on);
  ck_assert_ptr_nonnull (dm);
  for (w = 0; w < STRESS_WORKERS; w++) {
    arg[w] = (struct stress_arg) {
      .d = &d, .first = cold + w * STRESS_PAGES, .seed = 77 + w,
      .stop = &stop,
    };
    ck_assert_int_eq (pthread_create (&th[w], NULL, stress_worker, &arg[w]),
                      0);
  }
  test_sleep_ms (4000);
  stop = true;
  for (w = 0; w < STRESS_WORKERS; w++)
    pthread_join (th[w], NULL);
  demote_status (dm, &st);
  demote_total = st.demoted;
  demote_stop (dm);

  ck_assert_uint_gt (test_stats (&d, 0).demoted +
                     test_stats (&d, 1).demoted, 0);
  ck_assert_uint_eq (test_check (&d, cold, 1), 0);
  for (w = 0; w < STRESS_WORKERS; w++)
    for (k = 0; k < STRESS_PAGES; k++) {
      page = arg[w].first + k;
      if (arg[w].gen[k] == 0)
        ck_assert (pagemap_unmapped (d.e->map, page));
      else
        ck_assert_uint_eq (test_check_range (&d, page, 1, arg[w].gen[k]),
                           0);
    }
  ck_assert_uint_eq (test_used (&d), test_live_copies (&d));
  ck_assert_uint_eq (test_domain_violations (&d), 0);
  ck_assert_uint_eq (engine_degraded (d.e), 0);
  ck_assert_uint_eq (demote_total, test_stats (&d, 0).demoted
                     + test_stats (&d, 1).demoted);
  test_dev_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("demote");
  TCase *tc = tcase_create ("demote");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_agemap_ages);
  tcase_add_test (tc, test_demote_coldest);
  tcase_add_test (tc, test_demote_copies);
  tcase_add_test (tc, test_demote_keeps_domains);
  tcase_add_test (tc, test_demote_off_and_no_room);
  tcase_add_loop_test (tc, test_promote_reread, 0, 2);
  tcase_add_test (tc, test_promote_needs_room);
  tcase_add_loop_test (tc, test_demote_racing_clients, 0, 2);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-demote", test_suite, NULL, NULL);
}
