/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of copies=N over in-memory backends (lib/engine,
 * lib/engine-pages, lib/mover, lib/repair, lib/drain, lib/domain).
 *
 * - Placement: every page written has copies live copies, each on a
 *   backend of another domain, and the counters (mapped, degraded, used
 *   slots) agree with the map.
 * - Reads: a copy that fails to read costs the client nothing; its slot
 *   is marked bad and the page counted degraded; only the last copy
 *   failing makes the page LOST.
 * - Writes: a copy whose backend fails the write goes to another
 *   domain; with none left the write is acknowledged degraded.
 * - The repairer re-creates the copies of a failed backend and dropped
 *   copies, on other domains, and a second backend lost after that
 *   costs nothing.  A drain moves copies off a backend keeping the
 *   domain rule.
 * - Default domains of targets.
 *
 * The map is inspected through the engine's internal header: these are
 * unit tests of the engine.
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

/* Wait (up to 20 s) until nothing is left to re-create. */
static void
test_wait_repaired (struct test_dev *d, struct repair *r)
{
  struct repair_status st;
  unsigned i;

  for (i = 0; i < 2000; i++) {
    repair_status (r, &st);
    if (st.degraded == 0 && st.state == REPAIR_IDLE)
      return;
    test_sleep_ms (10);
  }
  ck_abort_msg ("the repairer left %" PRIu64 " copies to re-create",
                st.degraded);
}

static const char *const test_three[] = { "a", "b", "c" };
static const char *const test_two[] = { "a", "b" };

/* Each page's copies land on distinct domains, written at once, and the
 * counters say so.  Two backends of one domain never share a page.  The
 * first copies rotate over backends of equal priority whatever the
 * copies (reads spread over them).
 */
START_TEST (test_placement)
{
  static const char *const dom[] = { "a", "a", "b" };
  struct test_dev d;

  test_dev_create (&d, 3, TEST_SLOTS (256), dom, NULL, 64, 2, true);
  test_fill (&d, 64, 1);
  test_check_placement (&d, 64, 2, UINT_MAX);
  /* Domain b holds one copy of every page. */
  ck_assert_uint_eq (test_stats (&d, 2).used, 64);

  ck_assert_uint_eq (test_check (&d, 64, 1), 0);
  test_fill (&d, 64, 2);
  test_check_placement (&d, 64, 2, UINT_MAX);
  ck_assert_uint_eq (test_check (&d, 64, 2), 0);
  ck_assert_int_eq (engine_trim (d.e, 32 * PAGE_SIZE, 0, false), 0);
  ck_assert_uint_eq (engine_mapped (d.e), 32);
  ck_assert_uint_eq (test_stats (&d, 0).used + test_stats (&d, 1).used
                     + test_stats (&d, 2).used, 64);
  test_dev_destroy (&d);

  /* Two backends, two copies: each holds the first copy of half the
   * pages, so reads (which prefer the first copy) go to both.
   */
  test_dev_create (&d, 2, TEST_SLOTS (256), test_two, NULL, 64, 2, true);
  test_fill (&d, 64, 1);
  {
    uint64_t page, first[2] = { 0 };

    for (page = 0; page < 64; page++)
      first[test_backend_of (&d, pagemap_get (d.e->map, page, 0))]++;
    ck_assert_uint_ge (first[0], 16);
    ck_assert_uint_ge (first[1], 16);
  }
  test_dev_destroy (&d);
}
END_TEST

/* A copy that fails to read costs the client nothing: the read comes
 * from the other copy, the failed slot is bad and the page degraded;
 * only when both fail is the page LOST.
 */
START_TEST (test_read_fallback)
{
  static const int prio[] = { 1, 0 };
  struct test_dev d;
  struct tier_stats st;

  /* Backend 0 first: every page is read from it. */
  test_dev_create (&d, 2, TEST_SLOTS (256), test_two, prio, 32, 2, false);
  test_fill (&d, 32, 1);
  mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
  ck_assert_uint_eq (test_check (&d, 32, 1), 0);
  st = test_stats (&d, 0);
  ck_assert_uint_eq (st.bad, 32);
  ck_assert_uint_eq (st.lost, 0);
  ck_assert_uint_eq (engine_degraded (d.e), 32);
  test_check_placement (&d, 32, 1, 0);
  /* Now the last copy fails too: EIO, never zeroes. */
  mem_backend_fail_all (d.be[1], MEM_FAIL_READ);
  ck_assert_uint_eq (test_check (&d, 4, 1), 4);
  ck_assert_uint_eq (test_stats (&d, 1).lost, 4);
  ck_assert_uint_eq (engine_mapped (d.e), 28);
  ck_assert_uint_eq (engine_degraded (d.e), 28);
  test_dev_destroy (&d);
}
END_TEST

/* A copy whose write fails goes to another domain; with no domain left
 * the write is acknowledged with one copy and counted degraded.
 */
START_TEST (test_write_fallback)
{
  struct test_dev d;

  test_dev_create (&d, 3, TEST_SLOTS (256), test_three, NULL, 32, 2, true);
  mem_backend_fail_all (d.be[0], MEM_FAIL_WRITE);
  test_fill (&d, 32, 1);
  test_check_placement (&d, 32, 2, 0);
  ck_assert_uint_eq (test_check (&d, 32, 1), 0);
  test_dev_destroy (&d);

  test_dev_create (&d, 2, TEST_SLOTS (256), test_two, NULL, 32, 2, true);
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  test_fill (&d, 32, 1);
  test_check_placement (&d, 32, 1, 1);
  ck_assert_uint_eq (test_check (&d, 32, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

/* The repairer re-creates the copies of a backend that gave up its
 * server, on the third domain, at the rate given; after that the loss of
 * a second backend costs nothing.
 */
START_TEST (test_repair_failed_backend)
{
  struct test_dev d;
  struct repair *r;
  struct repair_status st;
  struct mem_counters before, after;
  uint64_t n = 200;

  test_dev_create (&d, 3, TEST_SLOTS (512), test_three, NULL, n, 2, true);
  test_fill (&d, n, 1);
  mem_backend_set_health (d.be[1], BACKEND_DEAD);
  ck_assert_uint_eq (repair_pending (d.e, d.ts), test_stats (&d, 1).used);
  r = repair_start (d.e, d.ts, 0);
  ck_assert_ptr_nonnull (r);
  test_wait_repaired (&d, r);
  repair_status (r, &st);
  ck_assert_uint_gt (st.recreated, 0);
  ck_assert_uint_eq (test_stats (&d, 1).used, 0);
  test_check_placement (&d, n, 2, 1);
  /* The copy that stayed kept each page durable: the new copies were
   * written without FUA, and the next flush covers them.
   */
  mem_backend_counters (d.be[2], &before);
  ck_assert_uint_eq (before.fua_writes, 0);
  ck_assert_int_eq (engine_flush (d.e), 0);
  mem_backend_counters (d.be[2], &after);
  ck_assert_uint_eq (after.flushes, before.flushes + 1);
  mem_backend_fail_all (d.be[0], MEM_FAIL_ALL);
  ck_assert_uint_eq (test_check (&d, n, 1), 0);
  repair_stop (r);
  test_dev_destroy (&d);
}
END_TEST

/* Copies dropped by read errors are re-created too, and only pages in
 * use are written.
 */
START_TEST (test_repair_dropped_copies)
{
  struct test_dev d;
  struct repair *r;
  uint64_t writes;

  test_dev_create (&d, 3, TEST_SLOTS (512), test_three, NULL, 256, 2, true);
  test_fill (&d, 40, 1);
  /* The pages that read from backend 0 give up their copy there. */
  mem_backend_fail_all (d.be[0], MEM_FAIL_READ);
  ck_assert_uint_eq (test_check (&d, 40, 1), 0);
  mem_backend_heal (d.be[0]);
  ck_assert_uint_gt (engine_degraded (d.e), 0);
  writes = test_stats (&d, 0).writes + test_stats (&d, 1).writes
    + test_stats (&d, 2).writes;
  r = repair_start (d.e, d.ts, 0);
  test_wait_repaired (&d, r);
  test_check_placement (&d, 40, 2, UINT_MAX);
  /* One write per re-created run at most: pages not in use cost none. */
  ck_assert_uint_le (test_stats (&d, 0).writes + test_stats (&d, 1).writes
                     + test_stats (&d, 2).writes - writes, 40);
  ck_assert_uint_eq (test_check (&d, 40, 1), 0);
  repair_stop (r);
  test_dev_destroy (&d);
}
END_TEST

/* A copy on a failed backend that finds no new home stays, so a new
 * copy never goes to its domain: with backends 0 (a) and 1 (b) failed
 * but readable, and only backend 2 (b) working, the pages on 0 and 1
 * keep both copies rather than getting a second one in domain b.
 */
START_TEST (test_repair_keeps_domains)
{
  static const char *const dom[] = { "a", "b", "b" };
  struct test_dev d;
  struct repair *r;
  struct repair_status st;
  uint64_t page, n = 64;
  unsigned i, c;

  test_max_errors = 1;
  test_dev_create (&d, 3, TEST_SLOTS (256), dom, NULL, n, 2, true);
  test_max_errors = 1000;
  test_fill (&d, n, 1);
  /* A failed write fails backends 0 and 1 (the pages go to 2). */
  mem_backend_fail_all (d.be[0], MEM_FAIL_WRITE);
  mem_backend_fail_all (d.be[1], MEM_FAIL_WRITE);
  test_fill (&d, 8, 1);
  ck_assert_int_eq (test_stats (&d, 0).state, TIER_FAILED);
  ck_assert_int_eq (test_stats (&d, 1).state, TIER_FAILED);
  mem_backend_heal (d.be[0]);
  mem_backend_heal (d.be[1]);
  r = repair_start (d.e, d.ts, 0);
  for (i = 0; i < 500; i++) {
    repair_status (r, &st);
    if (st.state == REPAIR_WAITING)
      break;
    test_sleep_ms (10);
  }
  ck_assert_int_eq (st.state, REPAIR_WAITING);
  repair_stop (r);
  for (page = 0; page < n; page++) {
    domain_mask seen = 0;

    for (c = 0; c < 2; c++) {
      slot_t s = pagemap_get (d.e->map, page, c);

      if (s == SLOT_NONE || s == SLOT_LOST)
        continue;
      TEST_REQUIRE ((seen & tierset_domain_of (d.ts, s)) == 0, "page %"
                    PRIu64 " has two copies in one domain", page);
      seen |= tierset_domain_of (d.ts, s);
    }
  }
  ck_assert_uint_eq (test_check (&d, n, 1), 0);
  test_dev_destroy (&d);
}
END_TEST

/* A drain moves copies off a backend to the domain the page's other
 * copy is not in; one that would leave fewer domains than copies is
 * refused.
 */
START_TEST (test_drain_copies)
{
  static const char *const dom[] = { "a", "b", "c", "c" };
  struct test_dev d;
  struct drain *dr;
  struct drain_status st;

  test_dev_create (&d, 4, TEST_SLOTS (256), dom, NULL, 64, 2, true);
  test_fill (&d, 64, 1);
  dr = drain_start (d.e, d.ts, 0, engine_spare (d.e), 0, true);
  ck_assert_ptr_nonnull (dr);
  st = test_drain_wait (dr);
  ck_assert_int_eq (st.state, DRAIN_DONE);
  ck_assert_uint_eq (st.lost, 0);
  ck_assert_uint_eq (st.dropped, 0);
  drain_destroy (dr);
  ck_assert_uint_eq (test_check (&d, 64, 1), 0);
  /* Domains b and c are left: removing b would leave one. */
  ck_assert_ptr_null (drain_start (d.e, d.ts, 1, engine_spare (d.e), 0, true));
  test_dev_destroy (&d);
}
END_TEST

/* The export size with copies: the pages that get every copy, counted
 * without a backend being drained (what a removal leaves).
 */
START_TEST (test_capacity)
{
  struct test_dev d;

  test_dev_create (&d, 3, TEST_SLOTS (1025), test_three, NULL, 8, 2, false);
  /* 1025 slots each: 3075 slots, 1537 pages of two copies. */
  ck_assert_uint_eq (tierset_copies_capacity (d.ts, 1), 3 * 1025);
  ck_assert_uint_eq (tierset_copies_capacity (d.ts, 2), 3 * 1025 / 2);
  ck_assert_uint_eq (tierset_copies_capacity (d.ts, 3), 1025);
  ck_assert_int_eq (tierset_drain_begin (d.ts, 2, 0), 0);
  ck_assert_uint_eq (tierset_copies_capacity (d.ts, 2), 1025);
  ck_assert_uint_eq (tierset_copies_capacity (d.ts, 3), 0);
  tierset_drain_cancel (d.ts, 2);
  test_dev_destroy (&d);
}
END_TEST

/* Default domains: local paths share one; a remote backend is in its
 * server's, whatever the export or user.
 */
START_TEST (test_default_domains)
{
  static const struct { const char *target, *domain; } cases[] = {
    { "/var/swap/a", "local" },
    { "relative/file", "local" },
    { "nbd://host", "host:10809" },
    { "nbd://host:1234/export", "host:1234" },
    { "nbds://alice@host:99/e?tls-psk-file=/k", "host:99" },
    { "nbd://[::1]/x", "[::1]:10809" },
    { "nbd://[::1]:7/x", "[::1]:7" },
    { "nbd+unix:///e?socket=/run/a.sock", "unix:/run/a.sock" },
    { "nbds+unix://bob@/?socket=/s&tls-psk-file=/k", "unix:/s" },
    { "nbd+vsock://3:10809/e", "vsock:3:10809" },
    { "nbd+vsock://3", "vsock:3:10809" },
  };
  size_t i;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *d = domain_default (cases[i].target);

    ck_assert_ptr_nonnull (d);
    ck_assert_msg (strcmp (d, cases[i].domain) == 0, "%s: domain %s, not %s",
                   cases[i].target, d, cases[i].domain);
    free (d);
  }
  ck_assert (domain_name_valid ("rack-1.dc/2:east@x_y"));
  ck_assert (!domain_name_valid (""));
  ck_assert (!domain_name_valid ("a b"));
  ck_assert (!domain_name_valid ("a\nb"));
  ck_assert (!domain_name_valid ("01234567890123456789012345678901234567890"
                                 "123456789012345678901234"));
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("copies");
  TCase *tc = tcase_create ("copies");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_placement);
  tcase_add_test (tc, test_read_fallback);
  tcase_add_test (tc, test_write_fallback);
  tcase_add_test (tc, test_repair_failed_backend);
  tcase_add_test (tc, test_repair_dropped_copies);
  tcase_add_test (tc, test_repair_keeps_domains);
  tcase_add_test (tc, test_drain_copies);
  tcase_add_test (tc, test_capacity);
  tcase_add_test (tc, test_default_domains);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-copies", test_suite, NULL, NULL);
}
