/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: support for the unit tests of draining backends
 * (test-drain.c, test-drain-concurrent.c), over the device of
 * test-dev.h.
 *
 * An error sink that keeps the last message; pages written with a
 * stamp of their number and a version, so that a page read back tells
 * whose data it is; and a check that the counters of the backends left
 * add up.
 */

#ifndef SWAPTIER_TESTS_TEST_DRAIN_COMMON_H
#define SWAPTIER_TESTS_TEST_DRAIN_COMMON_H

#include <stdint.h>

#include "test-dev.h"

/* Errors logged by the library since the start of the test, and the
 * last one; warnings (the drain thread may not be allowed to become an
 * I/O flusher here) are shown only.
 */
extern unsigned test_errors;
extern char test_last_error[512];

/* Route library errors to the counting sink and reset the count. */
extern void test_setup (void);

/* A device of n backends of nslots[i] slots at priority prio[i], failed
 * after 3 errors in a row, exporting npages pages (0: all but the
 * engine's spare).
 */
extern void test_drain_dev_create (struct test_dev *d, unsigned n,
                                   const uint64_t *nslots, const int *prio,
                                   uint64_t npages);

/* Fill a page with the stamp of version of page. */
extern void test_stamp (uint64_t *buf, uint64_t page, uint64_t version);

/* Write version of page. */
extern void test_write (struct test_dev *d, uint64_t page, uint64_t version);

/* Read page and check that it holds version, zeroes if version is 0,
 * or fails with EIO if version is UINT64_MAX (LOST).
 */
extern void test_check_page (struct test_dev *d, uint64_t page,
                             uint64_t version);

/* Check invariant 5 on every backend left, and that the slots in use
 * add up to used (the mapped pages).
 */
extern void test_check_counters (struct test_dev *d, uint64_t used);

#endif /* SWAPTIER_TESTS_TEST_DRAIN_COMMON_H */
