/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a tier set over in-memory backends, and checked
 * allocations from it, for the unit tests of the tier set
 * (test-tierset.c, test-tierset-errors.c).
 *
 * Every allocation and every stats reading checks invariant 5 (used +
 * free + bad = capacity) on every backend, and that a run handed out
 * lies inside one backend.
 */

#ifndef SWAPTIER_TESTS_TEST_SET_H
#define SWAPTIER_TESTS_TEST_SET_H

#include <stdint.h>

#include "tierset.h"

/* The most backends one test builds with test_set_create. */
#define TEST_MAX_BACKENDS 8

/* A tier set and the backends added to it, in id order.  The set owns
 * the backends; be[] only keeps them at hand to steer and count them.
 */
struct test_set {
  struct tierset *ts;
  unsigned n;
  struct backend *be[TEST_MAX_BACKENDS];
};

/* Build a set of n backends with the given sizes and priorities; backend
 * i gets id i.
 */
extern void test_set_create (struct test_set *set, unsigned max_errors,
                             unsigned n, const uint64_t *nslots,
                             const int *priority);

/* The stats of backend id, which must exist. */
extern struct tier_stats test_raw_stats (struct tierset *ts, unsigned id);

/* Check invariant 5 on every backend of ts. */
extern void test_check_counts (struct tierset *ts, const char *where);

/* Stats of backend id, after checking invariant 5 on every backend. */
extern struct tier_stats test_stats (struct tierset *ts, unsigned id);

/* The id of the backend owning global address s; fails the test if no
 * backend does (the gap, 0, or past the end).
 */
extern unsigned test_owner (struct tierset *ts, slot_t s);

/* Allocate one run of up to max slots and check that the answer is a run
 * of one backend and that invariant 5 holds; returns the owner's id, or
 * -1 when nothing was allocated.
 */
extern int test_alloc (struct tierset *ts, uint32_t max, slot_t avoid,
                       slot_t *first, uint32_t *len);

/* Allocate a single slot and return its owner, failing the test when
 * nothing can be allocated.
 */
extern unsigned test_alloc_one (struct tierset *ts, slot_t *s);

#endif /* SWAPTIER_TESTS_TEST_SET_H */
