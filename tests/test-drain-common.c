/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: support for the unit tests of draining backends. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "engine.h"
#include "log.h"
#include "page.h"
#include "test-common.h"
#include "test-drain-common.h"
#include "tierset.h"

unsigned test_errors;
char test_last_error[512];
static pthread_mutex_t test_error_lock = PTHREAD_MUTEX_INITIALIZER;

/* Error sink: count the message, keep it, and show it. */
static void
test_error_sink (const char *fmt, va_list args)
{
  char message[sizeof test_last_error];

  vsnprintf (message, sizeof message, fmt, args);
  fprintf (stderr, "test-drain: library error: %s\n", message);
  if (strncmp (message, "warning: ", 9) == 0)
    return;
  pthread_mutex_lock (&test_error_lock);
  test_errors++;
  memcpy (test_last_error, message, sizeof message);
  pthread_mutex_unlock (&test_error_lock);
}

void
test_setup (void)
{
  log_set_sinks (test_error_sink, NULL);
  test_errors = 0;
  test_last_error[0] = '\0';
}

void
test_drain_dev_create (struct test_dev *d, unsigned n,
                       const uint64_t *nslots, const int *prio,
                       uint64_t npages)
{
  static const char *const dom[TEST_MAX] = { NULL };
  uint64_t capacity = 0;
  unsigned i;

  for (i = 0; i < n; i++)
    capacity += nslots[i];
  if (npages == 0)
    npages = capacity - engine_min_spare (TEST_STRIPE);
  test_max_errors = 3;
  test_dev_create (d, n, nslots, dom, prio, npages, 1, false);
}

void
test_stamp (uint64_t *buf, uint64_t page, uint64_t version)
{
  size_t i;

  for (i = 0; i < PAGE_SIZE / sizeof *buf; i++)
    buf[i] = page * UINT64_C (0x9e3779b97f4a7c15) ^ version << 32 ^ i;
}

void
test_write (struct test_dev *d, uint64_t page, uint64_t version)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);

  test_stamp (buf, page, version);
  TEST_REQUIRE (engine_write (d->e, buf, PAGE_SIZE, page * PAGE_SIZE,
                              false) == 0,
                "write of page %" PRIu64 " failed: %m", page);
  free (buf);
}

void
test_check_page (struct test_dev *d, uint64_t page, uint64_t version)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t *want = test_common_alloc (PAGE_SIZE);
  int r = engine_read (d->e, buf, PAGE_SIZE, page * PAGE_SIZE);

  if (version == UINT64_MAX)
    TEST_REQUIRE (r == -1 && errno == EIO,
                  "page %" PRIu64 " should be lost", page);
  else {
    TEST_REQUIRE (r == 0, "read of page %" PRIu64 " failed: %m", page);
    if (version == 0)
      memset (want, 0, PAGE_SIZE);
    else
      test_stamp (want, page, version);
    TEST_REQUIRE (memcmp (buf, want, PAGE_SIZE) == 0,
                  "page %" PRIu64 " does not hold version %" PRIu64
                  " (it holds page %" PRIu64 "'s data?)", page, version,
                  buf[0] ^ version << 32);
  }
  free (buf);
  free (want);
}

void
test_check_counters (struct test_dev *d, uint64_t used)
{
  uint64_t sum = 0;
  unsigned i;

  for (i = 0; i < tierset_count (d->ts); i++) {
    struct tier_stats st;

    if (!tierset_stats (d->ts, i, &st))
      continue;
    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity,
                  "backend %u: used %" PRIu64 " + free %" PRIu64 " + bad %"
                  PRIu64 " != capacity %" PRIu64, i, st.used, st.free,
                  st.bad, st.capacity);
    sum += st.used;
  }
  ck_assert_uint_eq (sum, used);
}
