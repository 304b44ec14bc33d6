/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for removing backends from a live device
 * (lib/drain, engine_move, and the tier set's runtime changes:
 * tierset_set_priority, tierset_drain_begin, tierset_remove), over
 * in-memory backends: how a drain ends, one at a time on an idle device.
 *
 * Every page written holds a stamp (its number and a version), so a
 * page read back tells whose data it is.  A drain must leave every page
 * readable with its last data (invariant 4), except pages whose slot
 * failed to read, which become LOST (invariant 1); the drained backend
 * must hold no slot in use and disappear, its id never reused; and the
 * counters of the others must add up (invariant 5).  A drain the others
 * have no room for is refused, one they stop taking pages for fails.
 * Drains while threads make requests are the matter of
 * test-drain-concurrent.c.
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

#include "drain.h"
#include "engine.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"
#include "test-drain-common.h"
#include "tierset.h"

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
  test_drain_dev_create (&d, 3, nslots, prio, 0);
  npages = 800;
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  held = test_stats (&d, 1).used;
  ck_assert_uint_gt (held, 0);

  dr = drain_start (d.e, d.ts, 1, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
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
    test_check_page (&d, page, 1);
  test_check_counters (&d, npages);

  /* New writes go to the two left; a new backend gets the next id. */
  for (page = 0; page < 64; page++)
    test_write (&d, page, 2);
  ck_assert_int_eq (tierset_add (d.ts, mem_backend_create ("new", 64), 5),
                    3);
  test_write (&d, 0, 3);
  ck_assert_uint_eq (test_stats (&d, 3).used, 1);
  test_check_page (&d, 0, 3);
  for (page = 1; page < npages; page++)
    test_check_page (&d, page, page < 64 ? 2 : 1);
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

  test_drain_dev_create (&d, 2, nslots, prio, 0);
  for (page = 0; page < engine_pages (d.e); page++)
    test_write (&d, page, 1);

  /* Backend 0 holds about half of 384 pages; backend 1 has 64 free. */
  errors = test_errors;
  ck_assert_ptr_null (drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true));
  ck_assert_uint_gt (test_errors, errors);
  ck_assert_ptr_nonnull (strstr (test_last_error, "cannot be removed: the "
                                 "other backends have 64 free slots, 128 "
                                 "of them kept spare"));
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  /* It still takes new pages. */
  for (page = 0; page < 16; page++)
    test_write (&d, page, 2);
  ck_assert_uint_gt (test_stats (&d, 0).writes, engine_pages (d.e) / 2);

  ck_assert_ptr_null (drain_start (d.e, d.ts, 2, engine_spare (d.e), 0, true));
  ck_assert_str_eq (test_last_error, "no backend 2");
  ck_assert_ptr_null (drain_start (d.e, d.ts, TIERSET_MAX_IDS + 5,
                                   engine_spare (d.e), 0, true));

  /* Empty the device: now 0 can go, but then 1 is the last one. */
  ck_assert_int_eq (engine_trim (d.e, engine_pages (d.e) * PAGE_SIZE, 0,
                                 false), 0);
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

/* A removal the others could hold the pages of, but not the whole
 * device, is refused without force, naming why, and changes nothing.
 * With force and a rate of 16K a second it moves at most a few pages a
 * second; cancelled, it ends as cancelled, the backend takes pages again
 * and every page reads back.
 */
START_TEST (test_drain_steered)
{
  static const uint64_t nslots[] = { 512, 512, 512 };
  static const int prio[] = { 0, 0, 0 };
  struct test_dev d;
  struct drain_status st;
  struct drain *dr;
  uint64_t page, held, npages = 800;
  unsigned i;

  test_drain_dev_create (&d, 3, nslots, prio, 0);
  ck_assert_uint_gt (engine_pages (d.e), 1024);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  held = test_stats (&d, 1).used;
  ck_assert_ptr_null (drain_start (d.e, d.ts, 1, engine_spare (d.e), 0,
                                   false));
  ck_assert_ptr_nonnull (strstr (test_last_error, "without it the others "
                                 "hold 1024 pages"));
  ck_assert_ptr_nonnull (strstr (test_last_error, "force=true"));
  ck_assert_int_eq (test_stats (&d, 1).state, TIER_ACTIVE);

  dr = drain_start (d.e, d.ts, 1, engine_spare (d.e), 16384, true);
  ck_assert_ptr_nonnull (dr);
  test_sleep_ms (600);
  drain_status (dr, &st);
  ck_assert_int_eq (st.state, DRAIN_RUNNING);
  ck_assert_uint_eq (st.limit, 16384);
  /* 4 pages a second, after a first step of at most a stripe unit. */
  ck_assert_uint_le (st.moved, TEST_STRIPE + 8);
  ck_assert_uint_lt (st.moved, held);
  ck_assert (drain_cancel (dr));
  for (i = 0; i < 200; i++) {
    drain_status (dr, &st);
    if (st.state != DRAIN_RUNNING)
      break;
    test_sleep_ms (10);
  }
  ck_assert_int_eq (st.state, DRAIN_CANCELLED);
  ck_assert (!drain_cancel (dr));
  ck_assert_int_eq (test_stats (&d, 1).state, TIER_ACTIVE);
  drain_destroy (dr);
  for (page = 0; page < npages; page++)
    test_check_page (&d, page, 1);
  test_check_counters (&d, npages);
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

  test_drain_dev_create (&d, 2, nslots, prio, npages);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  ck_assert_uint_eq (test_stats (&d, 0).used, npages);
  /* One page written page by page in order: slot == page here. */
  mem_backend_fail_slots (d.be[0], 10, 1, MEM_FAIL_READ);
  mem_backend_fail_slots (d.be[0], 100, 3, MEM_FAIL_READ);

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.lost, 4);
  ck_assert_uint_eq (st.moved, npages - 4);
  drain_destroy (dr);
  ck_assert (!tierset_stats (d.ts, 0, &(struct tier_stats) { 0 }));
  for (page = 0; page < npages; page++)
    test_check_page (&d, page, page == 10 || (page >= 100 && page < 103)
                     ? UINT64_MAX : 1);
  test_check_counters (&d, npages - 4);
  /* A lost page reads again once rewritten. */
  test_write (&d, 10, 2);
  test_check_page (&d, 10, 2);
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

  test_drain_dev_create (&d, 3, nslots, prio, npages);
  for (page = 0; page < npages; page++)
    test_write (&d, page, 1);
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  mem_backend_fail_all (d.be[2], MEM_FAIL_WRITE);

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_FAILED);
  ck_assert_ptr_nonnull (strstr (st.error, "has a free slot"));
  ck_assert_uint_eq (st.moved, 0);
  drain_destroy (dr);

  ck_assert_int_eq (test_stats (&d, 0).state, TIER_ACTIVE);
  ck_assert_int_eq (test_stats (&d, 1).state, TIER_FAILED);
  ck_assert_uint_eq (test_stats (&d, 0).used, npages);
  for (page = 0; page < npages; page++)
    test_check_page (&d, page, 1);
  test_write (&d, 0, 2);
  test_check_page (&d, 0, 2);
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

  test_drain_dev_create (&d, 2, nslots, prio, npages);
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

  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.moved, npages - 3);
  drain_destroy (dr);
  for (page = 0; page < npages; page++)
    test_check_page (&d, page, page < 3 ? 2 : 1);
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

  test_drain_dev_create (&d, 2, nslots, prio, 256);
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
    test_check_page (&d, page, 1);
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
  tcase_add_test (tc, test_drain_steered);
  tcase_add_test (tc, test_drain_lost);
  tcase_add_test (tc, test_drain_fails);
  tcase_add_test (tc, test_drain_failed_backend);
  tcase_add_test (tc, test_set_priority);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-drain", test_suite, NULL, NULL);
}
