/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the radix bitmap slot allocator (lib/blist):
 * its contract, call by call.
 *
 * Each test checks blist against the contract written in blist.h: edge
 * sizes on either side of the leaf and meta nodes, the largest map, bad
 * arguments, runs across node boundaries, requests over the largest
 * run, next fit, and fills.  The edge sizes are also replayed on the
 * model of test-blist-model.h, every result compared.  The randomized
 * differential test, many mixed operations on the model, is
 * test-blist-random.c.
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

#include "blist.h"
#include "test-blist-model.h"
#include "test-common.h"

/* Sizes that sit on either side of the leaf (64) and meta (4096) edges. */
static const uint64_t test_edge_nslots[] = {
  1, 63, 64, 65, 4095, 4096, 4097, (UINT64_C (1) << 20) + 3,
};
#define TEST_NEDGE (sizeof test_edge_nslots / sizeof test_edge_nslots[0])

/* Check the summaries of a blist of nslots slots that are all free. */
static void
test_check_empty (struct blist *bl, uint64_t nslots, const char *where)
{
  struct blist_frag expect;

  memset (&expect, 0, sizeof expect);
  test_frag_add_run (&expect, nslots);
  test_check_frag (bl, &expect, where);
}

/* Check the summaries of a blist whose slots are all used. */
static void
test_check_full (struct blist *bl, const char *where)
{
  struct blist_frag expect;

  memset (&expect, 0, sizeof expect);
  test_check_frag (bl, &expect, where);
}

/* Check that blist_alloc (min, max) returns start and sets *len to len. */
static void
test_alloc_ok (struct blist *bl, uint64_t min, uint64_t max,
               uint64_t start, uint64_t len)
{
  uint64_t got, got_len = 0;

  got = blist_alloc (bl, min, max, &got_len);
  TEST_REQUIRE (got == start && got_len == len,
                "alloc (%" PRIu64 ", %" PRIu64 ") = %" PRIu64
                " length %" PRIu64 ", expected %" PRIu64
                " length %" PRIu64, min, max, got, got_len, start, len);
}

/* Check that blist_alloc (min, max) fails with errno err and leaves the
 * free count alone.
 */
static void
test_alloc_fails (struct blist *bl, uint64_t min, uint64_t max, int err)
{
  uint64_t nfree = blist_free_count (bl), got, len;
  int got_errno;

  errno = 0;
  got = blist_alloc (bl, min, max, &len);
  got_errno = errno;
  TEST_REQUIRE (got == BLIST_NONE && got_errno == err,
                "alloc (%" PRIu64 ", %" PRIu64 ") = %" PRIu64
                " errno %d (%s), expected failure with errno %d (%s)",
                min, max, got, got_errno, strerror (got_errno),
                err, strerror (err));
  TEST_REQUIRE (blist_free_count (bl) == nfree,
                "alloc (%" PRIu64 ", %" PRIu64 ") failed but changed the "
                "free count", min, max);
}

/* Check that blist_free (start, n) succeeds and adds n free slots. */
static void
test_free_ok (struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t nfree = blist_free_count (bl);
  int r, got_errno;

  errno = 0;
  r = blist_free (bl, start, n);
  got_errno = errno;
  TEST_REQUIRE (r == 0, "free (%" PRIu64 ", %" PRIu64 ") = %d errno %d (%s)",
                start, n, r, got_errno, strerror (got_errno));
  TEST_REQUIRE (blist_free_count (bl) == nfree + n,
                "free (%" PRIu64 ", %" PRIu64 ") left %" PRIu64
                " free, expected %" PRIu64,
                start, n, blist_free_count (bl), nfree + n);
}

/* Check that blist_free (start, n) fails with errno err and leaves the
 * free count alone.
 */
static void
test_free_fails (struct blist *bl, uint64_t start, uint64_t n, int err)
{
  uint64_t nfree = blist_free_count (bl);
  int r, got_errno;

  errno = 0;
  r = blist_free (bl, start, n);
  got_errno = errno;
  TEST_REQUIRE (r == -1 && got_errno == err,
                "free (%" PRIu64 ", %" PRIu64 ") = %d errno %d (%s), "
                "expected -1 errno %d (%s)", start, n, r,
                got_errno, strerror (got_errno), err, strerror (err));
  TEST_REQUIRE (blist_free_count (bl) == nfree,
                "free (%" PRIu64 ", %" PRIu64 ") failed but changed the "
                "free count", start, n);
}

/* Check that blist_fill (start, n) returns count and removes count free
 * slots.
 */
static void
test_fill_ok (struct blist *bl, uint64_t start, uint64_t n, int64_t count)
{
  uint64_t nfree = blist_free_count (bl);
  int64_t r;

  r = blist_fill (bl, start, n);
  TEST_REQUIRE (r == count, "fill (%" PRIu64 ", %" PRIu64 ") = %" PRId64
                ", expected %" PRId64, start, n, r, count);
  TEST_REQUIRE (blist_free_count (bl) == nfree - count,
                "fill (%" PRIu64 ", %" PRIu64 ") left %" PRIu64
                " free, expected %" PRIu64,
                start, n, blist_free_count (bl), nfree - count);
}

/* Check that blist_fill (start, n) fails with ERANGE and leaves the free
 * count alone.
 */
static void
test_fill_erange (struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t nfree = blist_free_count (bl);
  int64_t r;
  int got_errno;

  errno = 0;
  r = blist_fill (bl, start, n);
  got_errno = errno;
  TEST_REQUIRE (r == -1 && got_errno == ERANGE,
                "fill (%" PRIu64 ", %" PRIu64 ") = %" PRId64
                " errno %d (%s), expected -1 errno ERANGE",
                start, n, r, got_errno, strerror (got_errno));
  TEST_REQUIRE (blist_free_count (bl) == nfree,
                "fill (%" PRIu64 ", %" PRIu64 ") failed but changed the "
                "free count", start, n);
}

/* Edge sizes: fill one slot at a time in next-fit order, check the full,
 * mixed and empty states, and that the whole map can be taken as one run.
 */
START_TEST (test_edge_sizes)
{
  const uint64_t nslots = test_edge_nslots[_i];
  struct blist *bl;
  struct model m;
  char where[64];
  uint64_t i, pos, len, run;

  snprintf (where, sizeof where, "nslots %" PRIu64, nslots);
  bl = blist_create (nslots);
  test_check_created (bl, nslots);
  model_init (&m, nslots);
  test_check_empty (bl, nslots, where);

  /* Next-fit from an empty map hands out 0, 1, 2, ... */
  for (i = 0; i < nslots; i++) {
    TEST_REQUIRE (test_same_alloc (bl, &m, 1, 1, &len, where) == i,
                  "%s: single slots out of order at %" PRIu64, where, i);
  }
  test_alloc_fails (bl, 1, 1, ENOSPC);
  test_check_full (bl, where);

  /* Mixed: free runs of 1 to 70 slots with gaps of 1 to 3 in the lower
   * half, and one run from just past the middle to the end.
   */
  for (pos = 0, run = 0; pos < nslots / 2; run++) {
    len = run % 70 + 1;
    if (len > nslots / 2 - pos)
      len = nslots / 2 - pos;
    TEST_REQUIRE (test_same_free (bl, &m, pos, len, where) == 0,
                  "%s: cannot free a used run", where);
    pos += len + run % 3 + 1;
  }
  if (nslots / 2 + 1 < nslots)
    TEST_REQUIRE (test_same_free (bl, &m, nslots / 2 + 1,
                                  nslots - nslots / 2 - 1, where) == 0,
                  "%s: cannot free the upper half", where);
  test_check_model (bl, &m, where);

  /* Take the free space back in runs of up to 100 slots. */
  while (test_same_alloc (bl, &m, 1, 100, &len, where) != BLIST_NONE)
    ;
  test_check_full (bl, where);

  /* Free everything at once, then take it all as one run, twice. */
  test_free_ok (bl, 0, nslots);
  test_check_empty (bl, nslots, where);
  test_alloc_ok (bl, nslots, nslots, 0, nslots);
  test_check_full (bl, where);
  test_free_ok (bl, 0, nslots);
  test_alloc_ok (bl, 1, UINT64_MAX, 0, nslots);
  test_alloc_fails (bl, 1, 1, ENOSPC);
  test_free_ok (bl, 0, nslots);
  test_check_empty (bl, nslots, where);

  model_destroy (&m);
  blist_destroy (bl);
}
END_TEST

/* Bad arguments are refused with the documented errno and change nothing. */
START_TEST (test_invalid_args)
{
  struct blist *bl;

  errno = 0;
  ck_assert_ptr_null (blist_create (0));
  ck_assert_int_eq (errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null (blist_create (BLIST_MAX_SLOTS + 1));
  ck_assert_int_eq (errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null (blist_create (UINT64_MAX));
  ck_assert_int_eq (errno, EINVAL);
  blist_destroy (NULL);

  bl = blist_create (1000);
  test_check_created (bl, 1000);

  /* min == 0 or min > max: EINVAL.  min > nslots: ENOSPC. */
  test_alloc_fails (bl, 0, 0, EINVAL);
  test_alloc_fails (bl, 0, 10, EINVAL);
  test_alloc_fails (bl, 11, 10, EINVAL);
  test_alloc_fails (bl, UINT64_MAX, 1, EINVAL);
  test_alloc_fails (bl, 1001, 1001, ENOSPC);
  test_alloc_fails (bl, UINT64_MAX, UINT64_MAX, ENOSPC);

  /* None of that moved the cursor. */
  test_alloc_ok (bl, 100, 100, 0, 100);
  test_alloc_ok (bl, 100, 100, 100, 100);
  test_free_ok (bl, 50, 10);

  /* Ranges holding a free slot: EINVAL, and no slot changes state. */
  test_free_fails (bl, 40, 30, EINVAL);
  test_free_fails (bl, 55, 1, EINVAL);
  test_free_fails (bl, 199, 2, EINVAL);
  test_free_fails (bl, 500, 1, EINVAL);
  test_free_fails (bl, 0, 1000, EINVAL);
  ck_assert_uint_eq (blist_free_count (bl), 810);

  /* The cursor did not move (next-fit continues at 200), and [40, 50) and
   * [60, 70) are still used: the fill finds exactly the 10 free slots.
   */
  test_alloc_ok (bl, 1, 1, 200, 1);
  test_fill_ok (bl, 40, 30, 10);
  test_free_ok (bl, 40, 30);
  test_alloc_ok (bl, 1, 1, 201, 1);

  /* Out of range or empty: ERANGE, checked on a full map so that no other
   * error applies.
   */
  test_fill_ok (bl, 0, 1000, 828);
  test_free_fails (bl, 0, 0, ERANGE);
  test_free_fails (bl, 999, 0, ERANGE);
  test_free_fails (bl, 1000, 1, ERANGE);
  test_free_fails (bl, 999, 2, ERANGE);
  test_free_fails (bl, 0, 1001, ERANGE);
  test_free_fails (bl, UINT64_MAX, 2, ERANGE);
  test_free_fails (bl, 1, UINT64_MAX, ERANGE);
  test_fill_erange (bl, 0, 0);
  test_fill_erange (bl, 1000, 1);
  test_fill_erange (bl, 999, 2);
  test_fill_erange (bl, UINT64_MAX, 2);
  test_fill_erange (bl, 1, UINT64_MAX);
  test_check_full (bl, "full after refused calls");

  /* The same ranges on an empty map: still ERANGE, nothing filled. */
  test_free_ok (bl, 0, 1000);
  test_fill_erange (bl, 999, 2);
  test_fill_erange (bl, UINT64_MAX, 2);
  test_check_empty (bl, 1000, "empty after refused fills");

  blist_destroy (bl);
}
END_TEST

/* The largest blist: BLIST_MAX_SLOTS slots, runs at the very end, and one
 * run of all 2^32 slots.
 */
START_TEST (test_max_slots)
{
  const uint64_t nslots = BLIST_MAX_SLOTS;
  struct blist *bl;
  struct blist_frag expect;

  bl = blist_create (nslots);
  test_check_created (bl, nslots);
  test_check_empty (bl, nslots, "max empty");

  test_fill_ok (bl, 0, nslots - 100, (int64_t) (nslots - 100));
  memset (&expect, 0, sizeof expect);
  test_frag_add_run (&expect, 100);
  test_check_frag (bl, &expect, "max, last 100 free");

  test_alloc_fails (bl, 101, 101, ENOSPC);
  test_alloc_ok (bl, 100, 100, nslots - 100, 100);
  test_alloc_fails (bl, 1, 1, ENOSPC);
  ck_assert_uint_eq (blist_largest_run (bl), 0);

  test_free_fails (bl, nslots - 1, 2, ERANGE);
  test_fill_erange (bl, nslots, 1);
  test_free_ok (bl, nslots - 1, 1);
  test_alloc_ok (bl, 1, 1, nslots - 1, 1);
  test_free_ok (bl, nslots - 3, 3);
  test_alloc_ok (bl, 1, 10, nslots - 3, 3);

  /* All of it free again, then taken as one run of 2^32 slots. */
  test_free_ok (bl, 0, nslots);
  test_check_empty (bl, nslots, "max freed");
  test_alloc_ok (bl, 1, UINT64_MAX, 0, nslots);
  test_alloc_fails (bl, 1, 1, ENOSPC);
  ck_assert_uint_eq (blist_free_count (bl), 0);

  blist_destroy (bl);
}
END_TEST

/* Runs that cross leaf (64), meta (4096) and meta (262144) edges are found
 * exactly, a free raises the hints that a failed search lowered, and
 * alloc (min, max) extends while slots are free.
 */
START_TEST (test_boundaries)
{
  const uint64_t nslots = 3 * 262144 + 777;
  struct blist *bl;

  bl = blist_create (nslots);
  test_check_created (bl, nslots);
  test_fill_ok (bl, 0, nslots, (int64_t) nslots);

  /* One free run at a time: wherever the cursor is, it is found. */
  test_free_ok (bl, 60, 10);
  test_alloc_ok (bl, 10, 10, 60, 10);
  test_free_ok (bl, 4090, 16);
  test_alloc_ok (bl, 16, 16, 4090, 16);
  test_free_ok (bl, 5 * 4096 - 3, 7);
  test_alloc_ok (bl, 7, 7, 5 * 4096 - 3, 7);
  test_free_ok (bl, 262144 - 5000, 10000);
  test_alloc_ok (bl, 10000, 10000, 262144 - 5000, 10000);
  test_free_ok (bl, 200000, 400000);
  test_alloc_ok (bl, 400000, 400000, 200000, 400000);
  test_free_ok (bl, nslots - 1, 1);
  test_alloc_ok (bl, 1, 1, nslots - 1, 1);

  /* A failed search must not hide the run once it grows (cursor is 0). */
  test_free_ok (bl, 60, 10);
  test_alloc_fails (bl, 11, 11, ENOSPC);
  test_free_ok (bl, 70, 1);
  test_alloc_ok (bl, 11, 11, 60, 11);
  test_free_ok (bl, 4000, 96);
  test_alloc_fails (bl, 200, 200, ENOSPC);
  test_free_ok (bl, 4096, 104);
  test_alloc_ok (bl, 200, 200, 4000, 200);
  test_free_ok (bl, 262144 - 3000, 3000);
  test_alloc_fails (bl, 6000, 6000, ENOSPC);
  test_free_ok (bl, 262144, 3000);
  test_alloc_ok (bl, 6000, 6000, 262144 - 3000, 6000);

  /* Two candidates, cursor at 265144: the small run is skipped for the
   * large request, then taken after wrapping.
   */
  test_free_ok (bl, 100, 10);
  test_free_ok (bl, 4090, 20);
  test_alloc_ok (bl, 15, 15, 4090, 15);
  test_alloc_ok (bl, 10, 10, 100, 10);
  test_alloc_ok (bl, 5, 5, 4105, 5);
  test_check_full (bl, "boundaries, runs taken");

  /* alloc (min, max) extends up to max while free, stopping at a used
   * slot or at the end of the map.
   */
  test_free_ok (bl, 1000, 100);
  test_alloc_ok (bl, 50, 500, 1000, 100);
  test_free_ok (bl, 5000, 300);
  test_alloc_ok (bl, 10, 200, 5000, 200);
  test_alloc_ok (bl, 1, 1000, 5200, 100);
  test_free_ok (bl, 262000, 1000);
  test_alloc_ok (bl, 1, 100000, 262000, 1000);
  test_free_ok (bl, 6000, 70);
  test_alloc_ok (bl, 1, 64, 6000, 64);
  test_alloc_ok (bl, 1, 64, 6064, 6);
  test_free_ok (bl, nslots - 50, 50);
  test_alloc_ok (bl, 10, 1000, nslots - 50, 50);
  test_check_full (bl, "boundaries, extended runs taken");

  blist_destroy (bl);
}
END_TEST

/* With one used slot every period slots, no run of period slots exists
 * although most slots are free: such a request fails with ENOSPC.
 */
static void
test_min_over_largest (uint64_t nslots, uint64_t period)
{
  struct blist *bl;
  struct blist_frag expect;
  uint64_t i;

  bl = blist_create (nslots);
  test_check_created (bl, nslots);
  memset (&expect, 0, sizeof expect);
  for (i = period - 1; i < nslots; i += period) {
    test_fill_ok (bl, i, 1, 1);
    test_frag_add_run (&expect, period - 1);
  }
  if (nslots % period != 0)
    test_frag_add_run (&expect, nslots % period);
  test_check_frag (bl, &expect, "one used slot per period");

  test_alloc_fails (bl, period, period, ENOSPC);
  test_alloc_fails (bl, period, UINT64_MAX, ENOSPC);
  test_alloc_fails (bl, expect.largest + 1, expect.largest + 1, ENOSPC);
  test_check_frag (bl, &expect, "after failed allocs");
  test_alloc_ok (bl, period - 1, UINT64_MAX, 0, period - 1);
  test_alloc_ok (bl, period - 1, period - 1, period, period - 1);

  blist_destroy (bl);
}

/* A request larger than the longest free run fails, whatever the count. */
START_TEST (test_min_over_largest_run)
{
  test_min_over_largest (10000, 100);
  test_min_over_largest (300000, 1000);
  test_min_over_largest (300000, 64);
  test_min_over_largest (1 << 20, 4096);
}
END_TEST

/* Next-fit: consecutive runs from an empty map, reuse of the freed start
 * after the end, runs that begin before the cursor are passed over, and
 * no run wraps past the end.
 */
START_TEST (test_next_fit)
{
  struct blist *bl;
  uint64_t i;

  bl = blist_create (1000);
  test_check_created (bl, 1000);
  for (i = 0; i + 16 <= 1000; i += 16)
    test_alloc_ok (bl, 16, 16, i, 16);
  test_alloc_fails (bl, 16, 16, ENOSPC);

  /* Cursor at 992; only 8 slots remain at the end. */
  test_free_ok (bl, 0, 16);
  test_free_ok (bl, 32, 16);
  test_alloc_ok (bl, 16, 16, 0, 16);
  test_alloc_ok (bl, 16, 16, 32, 16);
  test_alloc_ok (bl, 8, 8, 992, 8);
  test_free_ok (bl, 16, 16);
  test_alloc_ok (bl, 16, 16, 16, 16);
  test_check_full (bl, "next fit, full");

  /* Cursor at 32: the run [20, 40) starts before it, so a run of 10 is
   * taken from 32 on only if [32, 42) is free; here it is not, and the
   * next candidate is [500, 510).
   */
  test_free_ok (bl, 20, 20);
  test_free_ok (bl, 500, 10);
  test_alloc_ok (bl, 10, 10, 500, 10);
  test_alloc_ok (bl, 10, 10, 20, 10);
  test_alloc_ok (bl, 10, 10, 30, 10);

  /* [990, 1000) and [0, 10) are adjacent only across the end. */
  test_free_ok (bl, 990, 10);
  test_free_ok (bl, 0, 10);
  test_alloc_fails (bl, 15, 15, ENOSPC);
  test_alloc_ok (bl, 1, 100, 990, 10);
  test_alloc_ok (bl, 1, 100, 0, 10);
  test_check_full (bl, "next fit, full again");

  /* Cursor at 10: a run reaching the last slot, then the search starts
   * again at 0.  With [5, 15) free and the cursor at 10, the run starts at
   * the cursor, and [5, 10) is only taken after wrapping.
   */
  test_free_ok (bl, 0, 1000);
  test_alloc_ok (bl, 990, 990, 10, 990);
  test_alloc_ok (bl, 10, 10, 0, 10);
  test_free_ok (bl, 600, 10);
  test_free_ok (bl, 5, 10);
  test_alloc_ok (bl, 1, 20, 10, 5);
  test_alloc_ok (bl, 1, 20, 600, 10);
  test_alloc_ok (bl, 1, 20, 5, 5);
  test_check_full (bl, "next fit, full at the end");

  blist_destroy (bl);
}
END_TEST

/* blist_fill counts the free slots it takes, marks the range used and
 * leaves the cursor where it was.
 */
START_TEST (test_fill_counts)
{
  struct blist *bl;

  bl = blist_create (5000);
  test_check_created (bl, 5000);
  test_alloc_ok (bl, 1000, 1000, 0, 1000);
  test_free_ok (bl, 200, 100);

  test_fill_ok (bl, 150, 200, 100);
  test_fill_ok (bl, 150, 200, 0);
  test_fill_ok (bl, 900, 200, 100);
  test_fill_ok (bl, 4990, 10, 10);
  test_fill_erange (bl, 4990, 11);
  test_fill_ok (bl, 3000, 1, 1);
  test_fill_ok (bl, 2990, 20, 19);
  ck_assert_uint_eq (blist_free_count (bl), 5000 - 1000 - 100 - 10 - 20);

  /* The fills did not move the cursor from 1000. */
  test_alloc_ok (bl, 1, 1, 1100, 1);
  test_free_ok (bl, 0, 1101);
  test_free_ok (bl, 2990, 20);
  test_free_ok (bl, 4990, 10);
  test_check_empty (bl, 5000, "fill, all freed");

  /* A fill across leaf and meta edges of a mixed map. */
  test_fill_ok (bl, 4000, 200, 200);
  test_fill_ok (bl, 0, 5000, 4800);
  test_fill_ok (bl, 0, 5000, 0);
  test_check_full (bl, "fill, full");

  blist_destroy (bl);
}
END_TEST

/* Build the suite: one test case per concern. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("blist");
  TCase *tc;

  tc = tcase_create ("edge sizes");
  tcase_set_timeout (tc, 120);
  tcase_add_loop_test (tc, test_edge_sizes, 0, TEST_NEDGE);
  suite_add_tcase (s, tc);

  tc = tcase_create ("invalid arguments");
  tcase_add_test (tc, test_invalid_args);
  suite_add_tcase (s, tc);

  tc = tcase_create ("BLIST_MAX_SLOTS");
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_max_slots);
  suite_add_tcase (s, tc);

  tc = tcase_create ("boundaries");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_boundaries);
  suite_add_tcase (s, tc);

  tc = tcase_create ("min over largest run");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_min_over_largest_run);
  suite_add_tcase (s, tc);

  tc = tcase_create ("next fit");
  tcase_add_test (tc, test_next_fit);
  suite_add_tcase (s, tc);

  tc = tcase_create ("fill");
  tcase_add_test (tc, test_fill_counts);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-blist", test_suite, NULL, NULL);
}
