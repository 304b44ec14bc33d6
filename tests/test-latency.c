/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of the latency histograms (lib/latency).
 *
 * - Every time from 1 ns to 40 s lands in a bucket whose middle, read
 *   back as the only request's percentile, is within 25% of it (under
 *   1024 ns: at most 1024 ns off), and buckets grow with the time.
 * - Percentiles of a known mix: 90 requests of 100 us and 10 of 10 ms
 *   give a p50 near 100 us and a p99 near 10 ms; none gives 0.
 * - A window is the difference of two snapshots; threads adding at once
 *   lose no count.
 */

#include <config.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "latency.h"
#include "test-common.h"

/* Whether got is within 25% of want (1024 ns below 1024 ns). */
static bool
test_close (uint64_t got, uint64_t want)
{
  if (want < 1024)
    return got <= 1024;
  return got >= want - want / 4 && got <= want + want / 4;
}

START_TEST (test_buckets)
{
  uint64_t ns, last = 0;

  for (ns = 1; ns < 40ull * 1000000000; ns += ns / 7 + 1) {
    struct latency l;
    uint64_t p;

    memset (&l, 0, sizeof l);
    latency_add (&l, ns);
    ck_assert_uint_eq (latency_total (&l), 1);
    ck_assert_uint_eq (l.sum_ns, ns);
    p = latency_percentile (&l, 0.5);
    /* Beyond the last bucket (2^35 ns) the middle of it is given. */
    if (ns < (1ull << 35))
      ck_assert_msg (test_close (p, ns), "%lu ns reads as %lu",
                     (unsigned long) ns, (unsigned long) p);
    ck_assert_uint_ge (p, last);
    last = p;
  }
}
END_TEST

START_TEST (test_percentiles)
{
  struct latency l, empty;
  unsigned i;

  memset (&l, 0, sizeof l);
  memset (&empty, 0, sizeof empty);
  ck_assert_uint_eq (latency_percentile (&empty, 0.5), 0);
  for (i = 0; i < 90; i++)
    latency_add (&l, 100000);
  for (i = 0; i < 10; i++)
    latency_add (&l, 10000000);
  ck_assert (test_close (latency_percentile (&l, 0.5), 100000));
  ck_assert (test_close (latency_percentile (&l, 0.9), 100000));
  ck_assert (test_close (latency_percentile (&l, 0.99), 10000000));
  ck_assert (test_close (latency_percentile (&l, 1), 10000000));
}
END_TEST

static struct latency test_shared;

static void *
test_adder (void *arg)
{
  unsigned i;

  for (i = 0; i < 100000; i++)
    latency_add (&test_shared, 1000 + i % 5000);
  return arg;
}

START_TEST (test_window_threads)
{
  struct latency before, after, w;
  pthread_t th[4];
  unsigned i;

  latency_add (&test_shared, 5);
  latency_snapshot (&test_shared, &before);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq (pthread_create (&th[i], NULL, test_adder, NULL), 0);
  for (i = 0; i < 4; i++)
    pthread_join (th[i], NULL);
  latency_snapshot (&test_shared, &after);
  latency_window (&after, &before, &w);
  ck_assert_uint_eq (latency_total (&w), 400000);
  ck_assert_uint_eq (latency_total (&after), 400001);
  ck_assert (test_close (latency_percentile (&w, 0.5), 3500));
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("latency");
  TCase *tc = tcase_create ("latency");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_buckets);
  tcase_add_test (tc, test_percentiles);
  tcase_add_test (tc, test_window_threads);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-latency", test_suite, NULL, NULL);
}
