/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: support code shared by the libcheck unit tests.
 *
 * The suite runner (with the seed of the randomized tests taken from an
 * environment variable), a counting sink for the library's errors, the
 * splitmix64 generator, page-aligned allocation, and TEST_REQUIRE.
 * Every function is prefixed test_common_.
 */

#ifndef SWAPTIER_TESTS_TEST_COMMON_H
#define SWAPTIER_TESTS_TEST_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

/* Like ck_assert_msg, but silent while cond holds (a passing ck_assert
 * writes a checkpoint, and the tests check many facts).
 */
#define TEST_REQUIRE(cond, ...)                 \
  do {                                          \
    if (!(cond))                                \
      ck_abort_msg (__VA_ARGS__);               \
  } while (0)

/* Errors logged by the library since the last test_common_setup; the
 * sink adds to it atomically, so threads may log.
 */
extern unsigned test_common_errors;

/* Whether the sink keeps the messages to itself (they are still
 * counted).  Not reset by test_common_setup.
 */
extern bool test_common_quiet;

/* Checked fixture: route the library's errors to the counting sink,
 * which prints each one as "PROG: library error: MESSAGE" on stderr
 * (PROG as given to test_common_main) unless test_common_quiet, and
 * reset test_common_errors to 0.  Debug messages go to stderr.
 */
extern void test_common_setup (void);

/* splitmix64: advance the sequence *state and return its next number.
 * The same state always gives the same sequence.
 */
extern uint64_t test_common_rand (uint64_t *state);

/* A pseudo-random number in [0, n), n >= 1, from the sequence *state
 * (test_common_rand modulo n).
 */
extern uint64_t test_common_below (uint64_t *state, uint64_t n);

/* Allocate len bytes, rounded up to whole pages, aligned to PAGE_SIZE;
 * fails the test if there is no memory, so never returns NULL.  Free
 * it with free.
 */
extern void *test_common_alloc (size_t len);

/* The main of a unit test named prog: run the suite that make_suite
 * builds, in CK_NORMAL mode, and return EXIT_SUCCESS if every test
 * passed, else EXIT_FAILURE.
 *
 * If seed_var is not NULL, first the environment variable seed_var, if
 * set, replaces *seed (any base strtoull takes with base 0); if it does
 * not parse, a message is printed and EXIT_FAILURE returned without
 * running anything.  When a test fails, the seed and seed_var are then
 * printed so that the run can be replayed.
 */
extern int test_common_main (const char *prog, Suite *(*make_suite) (void),
                             const char *seed_var, uint64_t *seed);

#endif /* SWAPTIER_TESTS_TEST_COMMON_H */
