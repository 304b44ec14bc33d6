/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: support code shared by the libcheck unit tests. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>

#include "log.h"
#include "page.h"
#include "test-common.h"

unsigned test_common_errors;
bool test_common_quiet;

/* The name the sink and the runner print, set by test_common_main. */
static const char *test_common_prog = "test";

/* Error sink: count the message and show it unless told to be quiet. */
static void
test_common_error_sink (const char *fmt, va_list args)
{
  __atomic_fetch_add (&test_common_errors, 1, __ATOMIC_RELAXED);
  if (test_common_quiet)
    return;
  fprintf (stderr, "%s: library error: ", test_common_prog);
  vfprintf (stderr, fmt, args);
  fputc ('\n', stderr);
}

void
test_common_setup (void)
{
  log_set_sinks (test_common_error_sink, NULL);
  test_common_errors = 0;
}

uint64_t
test_common_rand (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

uint64_t
test_common_below (uint64_t *state, uint64_t n)
{
  return test_common_rand (state) % n;
}

void *
test_common_alloc (size_t len)
{
  size_t rounded = (len + PAGE_SIZE - 1) & ~(size_t) (PAGE_SIZE - 1);
  void *p = aligned_alloc (PAGE_SIZE, rounded);

  ck_assert_ptr_nonnull (p);
  return p;
}

int
test_common_main (const char *prog, Suite *(*make_suite) (void),
                  const char *seed_var, uint64_t *seed)
{
  const char *env = seed_var != NULL ? getenv (seed_var) : NULL;
  SRunner *sr;
  int nfailed;

  test_common_prog = prog;
  if (env != NULL) {
    char *end;

    errno = 0;
    *seed = strtoull (env, &end, 0);
    if (errno != 0 || end == env || *end != '\0') {
      fprintf (stderr, "%s: cannot parse %s=%s\n", prog, seed_var, env);
      return EXIT_FAILURE;
    }
  }

  sr = srunner_create (make_suite ());
  srunner_run_all (sr, CK_NORMAL);
  nfailed = srunner_ntests_failed (sr);
  srunner_free (sr);
  if (nfailed > 0 && seed_var != NULL)
    fprintf (stderr, "%s: %d test(s) failed; random seed %" PRIu64
             " (set %s to replay)\n", prog, nfailed, *seed, seed_var);
  return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
