/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a model of the radix bitmap slot allocator
 * (lib/blist), for its unit tests (test-blist.c, test-blist-random.c).
 *
 * The model is one bool per slot and a next-fit cursor searched slot by
 * slot.  The test_same_ functions run one call on a blist and on the
 * model and compare every result; test_check_frag and test_check_model
 * compare the summaries (free count, fragmentation, largest run).
 */

#ifndef SWAPTIER_TESTS_TEST_BLIST_MODEL_H
#define SWAPTIER_TESTS_TEST_BLIST_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "blist.h"

/* The model: one bool per slot, true when the slot is free. */
struct model {
  uint64_t nslots;
  uint64_t nfree;
  uint64_t cursor;
  bool *free;
};

/* Set up m with nslots slots, all free, and the cursor at slot 0. */
extern void model_init (struct model *m, uint64_t nslots);

/* Release the memory of m. */
extern void model_destroy (struct model *m);

/* Add one maximal free run of len >= 1 slots to the summary *frag. */
extern void test_frag_add_run (struct blist_frag *frag, uint64_t len);

/* Check that the free count, blist_frag and blist_largest_run of bl all
 * agree with the summary *expect.
 */
extern void test_check_frag (struct blist *bl,
                             const struct blist_frag *expect,
                             const char *where);

/* Check bl's free count, fragmentation and largest run against the model. */
extern void test_check_model (struct blist *bl, const struct model *m,
                              const char *where);

/* Run blist_alloc and model_alloc with the same arguments, check that they
 * agree (start, length, errno class, free count), and return the start.
 */
extern uint64_t test_same_alloc (struct blist *bl, struct model *m,
                                uint64_t min, uint64_t max, uint64_t *len,
                                const char *where);

/* Run blist_free and model_free on the same range, check that they agree
 * (result, errno, free count), and return the result.
 */
extern int test_same_free (struct blist *bl, struct model *m,
                           uint64_t start, uint64_t n, const char *where);

/* Run blist_fill and model_fill on the same range, check that they agree
 * (count, errno, free count), and return the count.
 */
extern int64_t test_same_fill (struct blist *bl, struct model *m,
                               uint64_t start, uint64_t n,
                               const char *where);

/* Check the size and the memory of a fresh blist of nslots slots: at least
 * one bit per slot, and within the design's budget of about 2 bits per
 * slot plus a small fixed part.
 */
extern void test_check_created (struct blist *bl, uint64_t nslots);

#endif /* SWAPTIER_TESTS_TEST_BLIST_MODEL_H */
