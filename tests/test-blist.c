/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the radix bitmap slot allocator (lib/blist).
 *
 * Each test checks blist against the contract written in blist.h.  Several
 * of them, and the randomized differential test in particular, replay the
 * same operations on a model, one bool per slot and a next-fit cursor
 * searched slot by slot, and compare every result.
 *
 * The randomized test uses a fixed seed; set BLIST_TEST_SEED to another
 * number to explore, or to the seed printed by a failure to replay it.
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
#include "test-common.h"

/* Seed of the randomized test (BLIST_TEST_SEED overrides it). */
static uint64_t test_seed = UINT64_C (0x5741b11575eed);

/* Sizes that sit on either side of the leaf (64) and meta (4096) edges. */
static const uint64_t test_edge_nslots[] = {
  1, 63, 64, 65, 4095, 4096, 4097, (UINT64_C (1) << 20) + 3,
};
#define TEST_NEDGE (sizeof test_edge_nslots / sizeof test_edge_nslots[0])

/* Sizes of the randomized test: under one meta node, a few, and a tree
 * reaching the 262144-slot level with a partial last node.
 */
static const uint64_t test_random_sizes[] = { 1000, 70000, 300001 };
#define TEST_NRANDOM (sizeof test_random_sizes / sizeof test_random_sizes[0])

/* Operations of the randomized test on each size. */
#define TEST_RANDOM_OPS 200000

/* The randomized test runs in phases of TEST_PHASE_OPS operations, each
 * steering the use of the map towards a target: nearly empty, half full,
 * crowded, and saturated, where frees are rare and the holes they leave
 * are soon too small for most requests.  Of the operations that allocate
 * or free, grow per mille allocate while the use is below the target, and
 * 300 per mille once it is reached.
 */
#define TEST_PHASE_OPS 5000
struct test_phase {
  uint64_t target;                    /* percent of slots used */
  uint64_t grow;                      /* per mille, below the target */
};
static const struct test_phase test_phases[] = {
  { 5, 700 }, { 50, 700 }, { 90, 700 }, { 100, 950 },
};
#define TEST_NPHASES (sizeof test_phases / sizeof test_phases[0])

/* The model: one bool per slot, true when the slot is free. */
struct model {
  uint64_t nslots;
  uint64_t nfree;
  uint64_t cursor;
  bool *free;
};

/* Set up m with nslots slots, all free, and the cursor at slot 0. */
static void
model_init (struct model *m, uint64_t nslots)
{
  uint64_t i;

  m->nslots = nslots;
  m->nfree = nslots;
  m->cursor = 0;
  m->free = malloc (nslots * sizeof *m->free);
  ck_assert_ptr_nonnull (m->free);
  for (i = 0; i < nslots; i++)
    m->free[i] = true;
}

/* Release the memory of m. */
static void
model_destroy (struct model *m)
{
  free (m->free);
  m->free = NULL;
}

/* Return the lowest s in [from, to) such that [s, s+min) is free and lies
 * inside the map, or BLIST_NONE.  Requires 1 <= min <= nslots.
 */
static uint64_t
model_find (const struct model *m, uint64_t from, uint64_t to, uint64_t min)
{
  uint64_t s = from;

  while (s < to && s <= m->nslots - min) {
    uint64_t i = min;

    /* Find the last used slot of [s, s+min).  Every start from s up to
     * that slot would contain it, so the next candidate is just past it.
     */
    while (i > 0 && m->free[s + i - 1])
      i--;
    if (i == 0)
      return s;
    s += i;
  }
  return BLIST_NONE;
}

/* Allocate as blist_alloc documents it: the same return value, *len and
 * errno, and the same cursor movement.
 */
static uint64_t
model_alloc (struct model *m, uint64_t min, uint64_t max, uint64_t *len)
{
  uint64_t s, n, i;

  if (min == 0 || min > max) {
    errno = EINVAL;
    return BLIST_NONE;
  }
  s = BLIST_NONE;
  if (min <= m->nslots) {
    s = model_find (m, m->cursor, m->nslots, min);
    if (s == BLIST_NONE)
      s = model_find (m, 0, m->cursor, min);
  }
  if (s == BLIST_NONE) {
    errno = ENOSPC;
    return BLIST_NONE;
  }

  n = min;
  while (n < max && s + n < m->nslots && m->free[s + n])
    n++;
  for (i = s; i < s + n; i++)
    m->free[i] = false;
  m->nfree -= n;
  m->cursor = s + n == m->nslots ? 0 : s + n;
  *len = n;
  return s;
}

/* True when [start, start+n) is a non-empty range inside the map. */
static bool
model_range_ok (const struct model *m, uint64_t start, uint64_t n)
{
  return start < m->nslots && n > 0 && n <= m->nslots - start;
}

/* Free as blist_free documents it: same return value and errno. */
static int
model_free (struct model *m, uint64_t start, uint64_t n)
{
  uint64_t i;

  if (!model_range_ok (m, start, n)) {
    errno = ERANGE;
    return -1;
  }
  for (i = start; i < start + n; i++) {
    if (m->free[i]) {
      errno = EINVAL;
      return -1;
    }
  }
  for (i = start; i < start + n; i++)
    m->free[i] = true;
  m->nfree += n;
  return 0;
}

/* Fill as blist_fill documents it: same return value and errno. */
static int64_t
model_fill (struct model *m, uint64_t start, uint64_t n)
{
  uint64_t i, count = 0;

  if (!model_range_ok (m, start, n)) {
    errno = ERANGE;
    return -1;
  }
  for (i = start; i < start + n; i++) {
    if (m->free[i]) {
      m->free[i] = false;
      count++;
    }
  }
  m->nfree -= count;
  return count;
}

/* Add one maximal free run of len >= 1 slots to the summary *frag. */
static void
test_frag_add_run (struct blist_frag *frag, uint64_t len)
{
  frag->nfree += len;
  frag->nruns++;
  if (len > frag->largest)
    frag->largest = len;
  frag->hist[63 - __builtin_clzll (len)]++;
}

/* Fill *frag with the summary of the free runs of the model. */
static void
model_frag (const struct model *m, struct blist_frag *frag)
{
  uint64_t i = 0;

  memset (frag, 0, sizeof *frag);
  while (i < m->nslots) {
    uint64_t start = i;

    if (!m->free[i]) {
      i++;
      continue;
    }
    while (i < m->nslots && m->free[i])
      i++;
    test_frag_add_run (frag, i - start);
  }
}

/* Check that the free count, blist_frag and blist_largest_run of bl all
 * agree with the summary *expect.
 */
static void
test_check_frag (struct blist *bl, const struct blist_frag *expect,
                 const char *where)
{
  struct blist_frag got;
  uint64_t largest;
  size_t k;

  memset (&got, 0xa5, sizeof got);
  blist_frag (bl, &got);
  TEST_REQUIRE (got.nfree == expect->nfree,
                "%s: frag nfree %" PRIu64 ", expected %" PRIu64,
                where, got.nfree, expect->nfree);
  TEST_REQUIRE (got.nruns == expect->nruns,
                "%s: frag nruns %" PRIu64 ", expected %" PRIu64,
                where, got.nruns, expect->nruns);
  TEST_REQUIRE (got.largest == expect->largest,
                "%s: frag largest %" PRIu64 ", expected %" PRIu64,
                where, got.largest, expect->largest);
  for (k = 0; k < sizeof got.hist / sizeof got.hist[0]; k++)
    TEST_REQUIRE (got.hist[k] == expect->hist[k],
                  "%s: frag hist[%zu] %" PRIu64 ", expected %" PRIu64,
                  where, k, got.hist[k], expect->hist[k]);
  TEST_REQUIRE (blist_free_count (bl) == expect->nfree,
                "%s: free count %" PRIu64 ", expected %" PRIu64,
                where, blist_free_count (bl), expect->nfree);
  largest = blist_largest_run (bl);
  TEST_REQUIRE (largest == expect->largest,
                "%s: largest run %" PRIu64 ", expected %" PRIu64,
                where, largest, expect->largest);
}

/* Check bl's free count, fragmentation and largest run against the model. */
static void
test_check_model (struct blist *bl, const struct model *m, const char *where)
{
  struct blist_frag expect;

  model_frag (m, &expect);
  test_check_frag (bl, &expect, where);
}

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

/* Run blist_alloc and model_alloc with the same arguments, check that they
 * agree (start, length, errno class, free count), and return the start.
 */
static uint64_t
test_same_alloc (struct blist *bl, struct model *m, uint64_t min,
                 uint64_t max, uint64_t *len, const char *where)
{
  uint64_t got, expect, got_len = 0, expect_len = 0;
  int got_errno, expect_errno;

  errno = 0;
  got = blist_alloc (bl, min, max, &got_len);
  got_errno = errno;
  expect = model_alloc (m, min, max, &expect_len);
  expect_errno = errno;

  TEST_REQUIRE (got == expect,
                "%s: alloc (%" PRIu64 ", %" PRIu64 ") = %" PRIu64
                ", expected %" PRIu64, where, min, max, got, expect);
  if (got == BLIST_NONE)
    TEST_REQUIRE (got_errno == expect_errno,
                  "%s: alloc (%" PRIu64 ", %" PRIu64 ") errno %d (%s), "
                  "expected %d (%s)", where, min, max,
                  got_errno, strerror (got_errno),
                  expect_errno, strerror (expect_errno));
  else
    TEST_REQUIRE (got_len == expect_len,
                  "%s: alloc (%" PRIu64 ", %" PRIu64 ") at %" PRIu64
                  " length %" PRIu64 ", expected %" PRIu64,
                  where, min, max, got, got_len, expect_len);
  TEST_REQUIRE (blist_free_count (bl) == m->nfree,
                "%s: after alloc (%" PRIu64 ", %" PRIu64 ") free count %"
                PRIu64 ", expected %" PRIu64,
                where, min, max, blist_free_count (bl), m->nfree);
  *len = expect_len;
  return expect;
}

/* Run blist_free and model_free on the same range, check that they agree
 * (result, errno, free count), and return the result.
 */
static int
test_same_free (struct blist *bl, struct model *m, uint64_t start,
                uint64_t n, const char *where)
{
  int got, expect, got_errno, expect_errno;

  errno = 0;
  got = blist_free (bl, start, n);
  got_errno = errno;
  expect = model_free (m, start, n);
  expect_errno = errno;

  TEST_REQUIRE (got == expect && (got == 0 || got_errno == expect_errno),
                "%s: free (%" PRIu64 ", %" PRIu64 ") = %d errno %d (%s), "
                "expected %d errno %d (%s)", where, start, n,
                got, got_errno, strerror (got_errno),
                expect, expect_errno, strerror (expect_errno));
  TEST_REQUIRE (blist_free_count (bl) == m->nfree,
                "%s: after free (%" PRIu64 ", %" PRIu64 ") free count %"
                PRIu64 ", expected %" PRIu64,
                where, start, n, blist_free_count (bl), m->nfree);
  return expect;
}

/* Run blist_fill and model_fill on the same range, check that they agree
 * (count, errno, free count), and return the count.
 */
static int64_t
test_same_fill (struct blist *bl, struct model *m, uint64_t start,
                uint64_t n, const char *where)
{
  int64_t got, expect;
  int got_errno, expect_errno;

  errno = 0;
  got = blist_fill (bl, start, n);
  got_errno = errno;
  expect = model_fill (m, start, n);
  expect_errno = errno;

  TEST_REQUIRE (got == expect && (got >= 0 || got_errno == expect_errno),
                "%s: fill (%" PRIu64 ", %" PRIu64 ") = %" PRId64
                " errno %d (%s), expected %" PRId64 " errno %d (%s)",
                where, start, n, got, got_errno, strerror (got_errno),
                expect, expect_errno, strerror (expect_errno));
  TEST_REQUIRE (blist_free_count (bl) == m->nfree,
                "%s: after fill (%" PRIu64 ", %" PRIu64 ") free count %"
                PRIu64 ", expected %" PRIu64,
                where, start, n, blist_free_count (bl), m->nfree);
  return expect;
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

/* Check the size and the memory of a fresh blist of nslots slots: at least
 * one bit per slot, and within the design's budget of about 2 bits per
 * slot plus a small fixed part.
 */
static void
test_check_created (struct blist *bl, uint64_t nslots)
{
  ck_assert_ptr_nonnull (bl);
  ck_assert_uint_eq (blist_size (bl), nslots);
  ck_assert_uint_eq (blist_free_count (bl), nslots);
  ck_assert_uint_ge (blist_memory (bl), nslots / 8);
  ck_assert_uint_le (blist_memory (bl), nslots / 4 + 65536);
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

/* A run recorded in the randomized test's pool of used runs. */
struct test_run {
  uint64_t start;
  uint64_t len;
};

#define TEST_POOL_MAX 4096

/* State of the randomized differential test on one size. */
struct test_diff {
  struct blist *bl;
  struct model m;
  uint64_t rng;
  uint64_t op;
  size_t npool;
  struct test_run pool[TEST_POOL_MAX];
  char where[128];
};

/* Remember [start, start+len) as used, replacing a random entry when the
 * pool is full (its slots stay used until a sweep frees them).
 */
static void
diff_pool_add (struct test_diff *d, uint64_t start, uint64_t len)
{
  struct test_run run = { .start = start, .len = len };

  if (d->npool < TEST_POOL_MAX)
    d->pool[d->npool++] = run;
  else
    d->pool[test_common_below (&d->rng, TEST_POOL_MAX)] = run;
}

/* Allocate with random min and max (min == max == 1, min == max, or a
 * range; now and then no upper bound) and remember the run.
 */
static void
diff_alloc (struct test_diff *d)
{
  uint64_t min, max, start, len;

  switch (test_common_below (&d->rng, 4)) {
  case 0:
    min = max = 1;
    break;
  case 1:
    min = max = 1 + test_common_below (&d->rng, 200);
    break;
  default:
    min = 1 + test_common_below (&d->rng, 200);
    max = min + test_common_below (&d->rng, 301 - min);
    if (test_common_below (&d->rng, 100) == 0)
      max = UINT64_MAX;
  }
  start = test_same_alloc (d->bl, &d->m, min, max, &len, d->where);
  if (start != BLIST_NONE)
    diff_pool_add (d, start, len);
}

/* Allocate with min == 0 or min > max: both must refuse with EINVAL. */
static void
diff_bad_alloc (struct test_diff *d)
{
  uint64_t min, max, len;

  if (test_common_below (&d->rng, 2) == 0) {
    min = 0;
    max = test_common_below (&d->rng, 300);
  }
  else {
    min = 2 + test_common_below (&d->rng, 200);
    max = test_common_below (&d->rng, min);
  }
  test_same_alloc (d->bl, &d->m, min, max, &len, d->where);
}

/* Free a remembered run, whole or a part of it, and remember what is left
 * of it.  The run may have been freed meanwhile: then both refuse.
 */
static void
diff_free_pool (struct test_diff *d)
{
  struct test_run run;
  uint64_t a, b;
  size_t k;

  if (d->npool == 0) {
    diff_alloc (d);
    return;
  }
  k = test_common_below (&d->rng, d->npool);
  run = d->pool[k];
  d->pool[k] = d->pool[--d->npool];

  a = 0;
  b = run.len;
  if (test_common_below (&d->rng, 2) == 0) {
    a = test_common_below (&d->rng, run.len);
    b = a + 1 + test_common_below (&d->rng, run.len - a);
  }
  if (test_same_free (d->bl, &d->m, run.start + a, b - a, d->where) == 0) {
    if (a > 0)
      diff_pool_add (d, run.start, a);
    if (b < run.len)
      diff_pool_add (d, run.start + b, run.len - b);
  }
}

/* Free a range around a free slot: both must refuse with EINVAL. */
static void
diff_free_bad (struct test_diff *d)
{
  const uint64_t nslots = d->m.nslots;
  uint64_t p, start, end;

  if (d->m.nfree == 0)
    return;
  p = test_common_below (&d->rng, nslots);
  while (!d->m.free[p])
    p = p + 1 == nslots ? 0 : p + 1;
  start = p - test_common_below (&d->rng, (p < 64 ? p : 64) + 1);
  end = p + 1 + test_common_below (&d->rng, (nslots - p - 1 < 64
                                             ? nslots - p - 1 : 64) + 1);
  TEST_REQUIRE (test_same_free (d->bl, &d->m, start, end - start,
                                d->where) == -1,
                "%s: a range with a free slot was freed", d->where);
}

/* Free an arbitrary range, possibly empty or past the end. */
static void
diff_free_random (struct test_diff *d)
{
  uint64_t start, n;

  start = test_common_below (&d->rng, d->m.nslots + 16);
  n = test_common_below (&d->rng, 300);
  test_same_free (d->bl, &d->m, start, n, d->where);
}

/* Fill a random range (ERANGE when it passes the end) and remember it.
 * Most ranges have up to 300 slots; one in four has up to a sixteenth of
 * the map, which lets the map fill up quickly.
 */
static void
diff_fill (struct test_diff *d)
{
  uint64_t start, n;

  start = test_common_below (&d->rng, d->m.nslots);
  if (test_common_below (&d->rng, 4) == 0)
    n = 1 + test_common_below (&d->rng, d->m.nslots / 16 + 1);
  else
    n = 1 + test_common_below (&d->rng, 300);
  if (test_same_fill (d->bl, &d->m, start, n, d->where) >= 0)
    diff_pool_add (d, start, n);
}

/* Free every maximal used run inside a random window of up to 2048 slots.
 * This returns slots that the pool forgot and frees runs that span
 * several allocations.
 */
static void
diff_sweep (struct test_diff *d)
{
  uint64_t i, start, end;

  i = test_common_below (&d->rng, d->m.nslots);
  end = i + 1 + test_common_below (&d->rng, 2048);
  if (end > d->m.nslots)
    end = d->m.nslots;
  while (i < end) {
    if (d->m.free[i]) {
      i++;
      continue;
    }
    start = i;
    while (i < end && !d->m.free[i])
      i++;
    TEST_REQUIRE (test_same_free (d->bl, &d->m, start, i - start,
                                  d->where) == 0,
                  "%s: cannot free a used run", d->where);
  }
}

/* Do one random operation, steered by the current phase: below its target
 * the mix leans to allocations and fills, above it to frees.
 */
static void
diff_step (struct test_diff *d, const struct test_phase *phase)
{
  const uint64_t used = d->m.nslots - d->m.nfree;
  const uint64_t grow =
    used * 100 < d->m.nslots * phase->target ? phase->grow : 300;
  const uint64_t r = test_common_below (&d->rng, 1000);

  if (r < 3)
    test_check_model (d->bl, &d->m, d->where);
  else if (r < 10)
    diff_bad_alloc (d);
  else if (r < 60)
    diff_free_bad (d);
  else if (r < 100)
    diff_free_random (d);
  else if (test_common_below (&d->rng, 1000) < grow) {
    if (test_common_below (&d->rng, 5) != 0)
      diff_alloc (d);
    else
      diff_fill (d);
  }
  else {
    if (test_common_below (&d->rng, 5) != 0)
      diff_free_pool (d);
    else
      diff_sweep (d);
  }
}

/* Randomized differential test: many mixed operations on blist and on the
 * model, every result compared, the summaries compared every 1000 steps.
 */
START_TEST (test_random_diff)
{
  struct test_diff *d;
  const struct test_phase *phase = &test_phases[0];

  d = calloc (1, sizeof *d);
  ck_assert_ptr_nonnull (d);
  d->bl = blist_create (test_random_sizes[_i]);
  test_check_created (d->bl, test_random_sizes[_i]);
  model_init (&d->m, test_random_sizes[_i]);
  d->rng = test_seed + test_random_sizes[_i];

  for (d->op = 0; d->op < TEST_RANDOM_OPS; d->op++) {
    if (d->op % TEST_PHASE_OPS == 0)
      phase = &test_phases[test_common_below (&d->rng, TEST_NPHASES)];
    snprintf (d->where, sizeof d->where,
              "seed %" PRIu64 " nslots %" PRIu64 " step %" PRIu64,
              test_seed, d->m.nslots, d->op);
    diff_step (d, phase);
    if (d->op % 1000 == 999)
      test_check_model (d->bl, &d->m, d->where);
  }
  test_check_model (d->bl, &d->m, d->where);

  model_destroy (&d->m);
  blist_destroy (d->bl);
  free (d);
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

  tc = tcase_create ("random differential");
  tcase_set_timeout (tc, 600);
  tcase_add_loop_test (tc, test_random_diff, 0, TEST_NRANDOM);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-blist", test_suite, "BLIST_TEST_SEED",
                           &test_seed);
}
