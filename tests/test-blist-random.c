/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the randomized differential test of the radix bitmap slot
 * allocator (lib/blist), under stress and fragmentation.
 *
 * Many mixed operations (allocations of every shape, frees of runs and
 * of their parts, bad frees and allocations, fills, sweeps) run on
 * blist and on the model of test-blist-model.h, one bool per slot and a
 * next-fit cursor searched slot by slot, and every result is compared;
 * the summaries (free count, fragmentation, largest run) are compared
 * every 1000 steps.  Phases steer the map from nearly empty to
 * saturated, where holes are soon too small for most requests.  The
 * contract, call by call, is tested in test-blist.c.
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
#include "test-blist-model.h"
#include "test-common.h"

/* Seed of the randomized test (BLIST_TEST_SEED overrides it). */
static uint64_t test_seed = UINT64_C (0x5741b11575eed);

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

/* Build the suite. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("blist-random");
  TCase *tc;

  tc = tcase_create ("random differential");
  tcase_set_timeout (tc, 600);
  tcase_add_loop_test (tc, test_random_diff, 0, TEST_NRANDOM);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-blist-random", test_suite,
                           "BLIST_TEST_SEED", &test_seed);
}
