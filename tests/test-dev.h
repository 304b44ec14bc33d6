/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a device (tier set and engine) over in-memory
 * backends, for the unit tests of copies, their faults and demotion.
 *
 * Backend i is mem-backend "memI" in domain dom[i] at priority prio[i];
 * pages are written with a pattern of (page, generation) that
 * test_check verifies word by word, so a page read from the wrong slot
 * or a stale copy fails the test.  The map is reached through the
 * engine's internal header: these are unit tests of the engine.
 */

#ifndef SWAPTIER_TESTS_TEST_DEV_H
#define SWAPTIER_TESTS_TEST_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "drain.h"
#include "engine-internal.h"
#include "tierset.h"

#define TEST_STRIPE 4
#define TEST_MAX 4

/* The same number of slots for every backend. */
#define TEST_SLOTS(n) ((const uint64_t[TEST_MAX]) { n, n, n, n })

struct test_dev {
  struct tierset *ts;
  struct engine *e;
  struct backend *be[TEST_MAX];
  unsigned n;
};

/* Errors in a row that fail a backend, for the devices created next. */
extern unsigned test_max_errors;

/* A device of n backends, backend i of nslots[i] slots in domain dom[i]
 * at priority prio[i] (prio NULL: 0), exporting npages pages of copies
 * copies; with serve, copies are written at once (helper threads).
 */
extern void test_dev_create (struct test_dev *d, unsigned n,
                             const uint64_t *nslots, const char *const *dom,
                             const int *prio, uint64_t npages,
                             unsigned copies, bool serve);

extern void test_dev_destroy (struct test_dev *d);

/* Add k in-memory backends of nslots slots at priority prio, in the
 * domains dom, to a device that serves already.
 */
extern void test_add_backends (struct test_dev *d, unsigned k,
                               uint64_t nslots, int prio,
                               const char *const *dom);

/* The counters of backend id, which must exist. */
extern struct tier_stats test_stats (struct test_dev *d, unsigned id);

/* Fill pages [0, n) with the pattern of generation gen. */
extern void test_fill (struct test_dev *d, uint64_t n, unsigned gen);

/* Fill pages [first, first + n) likewise. */
extern void test_fill_range (struct test_dev *d, uint64_t first, uint64_t n,
                             unsigned gen);

/* Check that pages [0, n) read back generation gen; returns the reads
 * that failed (wrong bytes fail the test).
 */
extern unsigned test_check (struct test_dev *d, uint64_t n, unsigned gen);

/* The same for pages [first, first + n). */
extern unsigned test_check_range (struct test_dev *d, uint64_t first,
                                  uint64_t n, unsigned gen);

/* Check every page of [0, n): want live copies, no two on one domain,
 * none on backend avoid (or UINT_MAX); and that the counters agree.
 */
extern void test_check_placement (struct test_dev *d, uint64_t n,
                                  unsigned want, unsigned avoid);

/* Slots in use over every backend, checking used + free + bad =
 * capacity on each.
 */
extern uint64_t test_used (struct test_dev *d);

/* Live copies in the map. */
extern uint64_t test_live_copies (struct test_dev *d);

/* Pages of the map with two live copies in one failure domain. */
extern uint64_t test_domain_violations (struct test_dev *d);

/* The backend (index) holding slot s. */
extern unsigned test_backend_of (struct test_dev *d, slot_t s);

/* XOR byte at of the slot that holds copy c of page with mask, in its
 * backend's storage (as a disk that changed it would).
 */
extern void test_flip_copy (struct test_dev *d, uint64_t page, unsigned c,
                            size_t at, unsigned char mask);

extern void test_sleep_ms (unsigned ms);

/* Wait (up to 20 s) until drain dr ends, and return how it ended. */
extern struct drain_status test_drain_wait (struct drain *dr);

#endif /* SWAPTIER_TESTS_TEST_DEV_H */
