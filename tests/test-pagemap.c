/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the page map (lib/pagemap).
 *
 * They check the contract written in pagemap.h: a new map reads as
 * SLOT_NONE everywhere, set/get/replace behave as one atomic entry each,
 * the LOST marker is an entry like any other, a huge map only reserves
 * address space until it is prefaulted, and impossible sizes are refused
 * with an error.
 */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <check.h>

#include "page.h"
#include "pagemap.h"
#include "test-common.h"

/* Threads and exchanges per thread of the concurrent exchange test. */
#define TEST_XCHG_THREADS 4
#define TEST_XCHG_PER_THREAD 20000
#define TEST_XCHG_PAGE 5

/* A new map has the size asked for, reserves 4 bytes per page, and every
 * entry reads as SLOT_NONE.
 */
START_TEST (test_create)
{
  const uint64_t npages = 10000;
  struct pagemap *map = pagemap_create (npages, 1);
  uint64_t page;

  ck_assert_ptr_nonnull (map);
  ck_assert_uint_eq (pagemap_npages (map), npages);
  ck_assert_uint_eq (pagemap_memory (map), npages * sizeof (slot_t));
  for (page = 0; page < npages; page++)
    TEST_REQUIRE (pagemap_get (map, page, 0) == SLOT_NONE,
                  "page %" PRIu64 " of a new map is %" PRIu32, page,
                  pagemap_get (map, page, 0));
  pagemap_destroy (map);
  ck_assert_uint_eq (test_common_errors, 0);
}
END_TEST

/* set returns the previous entry and changes only its own page; get
 * returns what was set, at both ends of the map.
 */
START_TEST (test_set_get)
{
  const uint64_t npages = 64;
  struct pagemap *map = pagemap_create (npages, 1);
  uint64_t page;

  ck_assert_ptr_nonnull (map);
  ck_assert_uint_eq (pagemap_set (map, 0, 0, 7), SLOT_NONE);
  ck_assert_uint_eq (pagemap_set (map, npages - 1, 0, SLOT_MAX), SLOT_NONE);
  ck_assert_uint_eq (pagemap_set (map, 0, 0, 8), 7);
  ck_assert_uint_eq (pagemap_get (map, 0, 0), 8);
  ck_assert_uint_eq (pagemap_get (map, npages - 1, 0), SLOT_MAX);
  for (page = 1; page < npages - 1; page++)
    TEST_REQUIRE (pagemap_get (map, page, 0) == SLOT_NONE,
                  "page %" PRIu64 " changed by a set of another page", page);

  /* Setting SLOT_NONE unmaps the page again. */
  ck_assert_uint_eq (pagemap_set (map, 0, 0, SLOT_NONE), 8);
  ck_assert_uint_eq (pagemap_get (map, 0, 0), SLOT_NONE);
  pagemap_destroy (map);
}
END_TEST

/* replace changes the entry only when it still holds the expected value,
 * and says whether it did.
 */
START_TEST (test_replace)
{
  struct pagemap *map = pagemap_create (16, 1);

  ck_assert_ptr_nonnull (map);
  pagemap_set (map, 3, 0, 100);
  ck_assert (!pagemap_replace (map, 3, 0, 99, 200));
  ck_assert_uint_eq (pagemap_get (map, 3, 0), 100);
  ck_assert (pagemap_replace (map, 3, 0, 100, 200));
  ck_assert_uint_eq (pagemap_get (map, 3, 0), 200);
  /* An unmapped page is replaced from SLOT_NONE. */
  ck_assert (!pagemap_replace (map, 4, 0, 1, 2));
  ck_assert_uint_eq (pagemap_get (map, 4, 0), SLOT_NONE);
  ck_assert (pagemap_replace (map, 4, 0, SLOT_NONE, 2));
  ck_assert_uint_eq (pagemap_get (map, 4, 0), 2);
  pagemap_destroy (map);
}
END_TEST

/* SLOT_LOST is stored and returned like any entry: a page goes from a
 * slot to LOST by replace (as a failed read does), stays LOST, and leaves
 * LOST by set (as a write or trim does).
 */
START_TEST (test_lost)
{
  struct pagemap *map = pagemap_create (8, 1);

  ck_assert_ptr_nonnull (map);
  pagemap_set (map, 2, 0, 42);
  ck_assert (pagemap_replace (map, 2, 0, 42, SLOT_LOST));
  ck_assert_uint_eq (pagemap_get (map, 2, 0), SLOT_LOST);
  /* A second reader that saw the same slot loses the race. */
  ck_assert (!pagemap_replace (map, 2, 0, 42, SLOT_LOST));
  ck_assert_uint_eq (pagemap_get (map, 2, 0), SLOT_LOST);
  ck_assert_uint_eq (pagemap_get (map, 1, 0), SLOT_NONE);
  ck_assert_uint_eq (pagemap_get (map, 3, 0), SLOT_NONE);
  ck_assert_uint_eq (pagemap_set (map, 2, 0, 43), SLOT_LOST);
  ck_assert_uint_eq (pagemap_get (map, 2, 0), 43);
  pagemap_set (map, 2, 0, SLOT_LOST);
  ck_assert_uint_eq (pagemap_set (map, 2, 0, SLOT_NONE), SLOT_LOST);
  pagemap_destroy (map);
}
END_TEST

/* Resident memory of the process, in bytes. */
static uint64_t
test_resident_bytes (void)
{
  unsigned long size, resident;
  FILE *fp = fopen ("/proc/self/statm", "r");

  ck_assert_ptr_nonnull (fp);
  ck_assert_int_eq (fscanf (fp, "%lu %lu", &size, &resident), 2);
  fclose (fp);
  return (uint64_t) resident * sysconf (_SC_PAGESIZE);
}

/* A map of 2^28 pages (1 TiB of device) reserves 1 GiB of address space,
 * but entries that were never written cost no memory: touching a few
 * entries here and there keeps the resident size nearly unchanged.
 */
START_TEST (test_sparse)
{
  const uint64_t npages = UINT64_C (1) << 28;
  const uint64_t pages[] = {
    0, 1, 1023, 1024, npages / 3, npages / 2, npages - 1024, npages - 1,
  };
  const size_t n = sizeof pages / sizeof pages[0];
  struct pagemap *map;
  uint64_t before, after;
  size_t i;

  before = test_resident_bytes ();
  map = pagemap_create (npages, 1);
  ck_assert_ptr_nonnull (map);
  ck_assert_uint_eq (pagemap_npages (map), npages);
  ck_assert_uint_eq (pagemap_memory (map), npages * sizeof (slot_t));

  for (i = 0; i < n; i++)
    ck_assert_uint_eq (pagemap_set (map, pages[i], 0, (slot_t) (i + 1)),
                       SLOT_NONE);
  for (i = 0; i < n; i++)
    ck_assert_uint_eq (pagemap_get (map, pages[i], 0), i + 1);
  ck_assert_uint_eq (pagemap_get (map, 2, 0), SLOT_NONE);
  ck_assert_uint_eq (pagemap_get (map, npages - 2, 0), SLOT_NONE);

  /* Eight touched 4 KiB pages of the map; allow a wide margin for the
   * test framework and the sanitizers, far below the 1 GiB reserved.
   */
  after = test_resident_bytes ();
  ck_assert_msg (after < before + 32 * 1024 * 1024,
                 "resident size grew from %" PRIu64 " to %" PRIu64
                 " bytes after touching %zu entries", before, after, n);
  pagemap_destroy (map);
}
END_TEST

/* pagemap_prefault makes the whole map resident and changes no entry. */
START_TEST (test_prefault)
{
  const uint64_t npages = UINT64_C (1) << 20;
  struct pagemap *map = pagemap_create (npages, 1);
  uint64_t before, after, page;

  ck_assert_ptr_nonnull (map);
  pagemap_set (map, 0, 0, 11);
  pagemap_set (map, npages / 2, 0, SLOT_LOST);
  pagemap_set (map, npages - 1, 0, SLOT_MAX);
  before = test_resident_bytes ();
  pagemap_prefault (map);
  after = test_resident_bytes ();
  /* 4 MiB of map; all but the pages touched above were not resident. */
  ck_assert_msg (after >= before + pagemap_memory (map) - 4 * 4096,
                 "resident size grew from %" PRIu64 " to %" PRIu64
                 " bytes for a map of %zu bytes", before, after,
                 pagemap_memory (map));
  for (page = 0; page < npages; page++) {
    slot_t expect = page == 0 ? 11 : page == npages / 2 ? SLOT_LOST
      : page == npages - 1 ? SLOT_MAX : SLOT_NONE;

    TEST_REQUIRE (pagemap_get (map, page, 0) == expect, "page %" PRIu64
                  " is %" PRIu32 " after prefault, expected %" PRIu32,
                  page, pagemap_get (map, page, 0), expect);
  }
  pagemap_destroy (map);
}
END_TEST

/* Sizes that cannot be mapped fail with NULL after logging an error:
 * no pages, more bytes than size_t holds, and a size that passes that
 * check but exceeds any address space.
 */
START_TEST (test_bad_npages)
{
  const uint64_t bad[] = {
    0, UINT64_MAX, (UINT64_MAX / sizeof (slot_t)) + 1, UINT64_C (1) << 61,
  };
  size_t i;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned errors = test_common_errors;

    ck_assert_msg (pagemap_create (bad[i], 1) == NULL,
                   "pagemap_create (%" PRIu64 ") succeeded", bad[i]);
    ck_assert_msg (test_common_errors > errors,
                   "pagemap_create (%" PRIu64 ") failed silently", bad[i]);
  }
}
END_TEST

/* With copies, the entries of a page are independent and side by side;
 * live and unmapped read all of them, and the map costs 4 bytes per page
 * and copy.  0 and more than PAGEMAP_COPIES_MAX copies are refused.
 */
START_TEST (test_copies)
{
  const uint64_t npages = 1000;
  struct pagemap *map = pagemap_create (npages, 3);
  unsigned c;

  ck_assert_ptr_nonnull (map);
  ck_assert_uint_eq (pagemap_copies (map), 3);
  ck_assert_uint_eq (pagemap_memory (map), npages * 3 * sizeof (slot_t));
  ck_assert (pagemap_unmapped (map, 7));
  ck_assert_uint_eq (pagemap_live (map, 7), 0);
  pagemap_set (map, 7, 1, 50);
  ck_assert (!pagemap_unmapped (map, 7));
  ck_assert_uint_eq (pagemap_live (map, 7), 1);
  pagemap_set (map, 7, 2, 90);
  ck_assert_uint_eq (pagemap_live (map, 7), 2);
  for (c = 0; c < 3; c++) {
    ck_assert_uint_eq (pagemap_get (map, 6, c), SLOT_NONE);
    ck_assert_uint_eq (pagemap_get (map, 8, c), SLOT_NONE);
  }
  ck_assert_uint_eq (pagemap_get (map, 7, 0), SLOT_NONE);
  ck_assert_uint_eq (pagemap_get (map, 7, 1), 50);
  ck_assert_uint_eq (pagemap_get (map, 7, 2), 90);
  /* LOST is not a live copy, but the page is not unmapped. */
  pagemap_set (map, 7, 1, SLOT_NONE);
  pagemap_set (map, 7, 2, SLOT_LOST);
  ck_assert_uint_eq (pagemap_live (map, 7), 0);
  ck_assert (!pagemap_unmapped (map, 7));
  pagemap_set (map, npages - 1, 2, SLOT_MAX);
  ck_assert_uint_eq (pagemap_get (map, npages - 1, 2), SLOT_MAX);
  pagemap_destroy (map);
  ck_assert_ptr_null (pagemap_create (16, 0));
  ck_assert_ptr_null (pagemap_create (16, PAGEMAP_COPIES_MAX + 1));
}
END_TEST

struct test_xchg {
  struct pagemap *map;
  unsigned thread;
  slot_t old[TEST_XCHG_PER_THREAD];  /* what each exchange returned */
};

/* Thread: set one shared entry to this thread's values in turn and keep
 * the previous entries set returned.
 */
static void *
test_xchg_thread (void *arg)
{
  struct test_xchg *x = arg;
  unsigned i;

  for (i = 0; i < TEST_XCHG_PER_THREAD; i++) {
    slot_t v = x->thread * TEST_XCHG_PER_THREAD + i + 1;

    x->old[i] = pagemap_set (x->map, TEST_XCHG_PAGE, 0, v);
  }
  return NULL;
}

/* set is one atomic exchange: when threads race on one entry, every value
 * written is returned as the old value exactly once, except the last one,
 * which stays in the entry (and the initial SLOT_NONE is returned once).
 */
START_TEST (test_concurrent_set)
{
  const unsigned nvalues = TEST_XCHG_THREADS * TEST_XCHG_PER_THREAD;
  static struct test_xchg x[TEST_XCHG_THREADS];
  pthread_t tid[TEST_XCHG_THREADS];
  struct pagemap *map = pagemap_create (16, 1);
  unsigned *seen, t, i;

  ck_assert_ptr_nonnull (map);
  seen = calloc (nvalues + 1, sizeof *seen);
  ck_assert_ptr_nonnull (seen);
  for (t = 0; t < TEST_XCHG_THREADS; t++) {
    x[t].map = map;
    x[t].thread = t;
    ck_assert_int_eq (pthread_create (&tid[t], NULL, test_xchg_thread,
                                      &x[t]), 0);
  }
  for (t = 0; t < TEST_XCHG_THREADS; t++)
    ck_assert_int_eq (pthread_join (tid[t], NULL), 0);

  for (t = 0; t < TEST_XCHG_THREADS; t++)
    for (i = 0; i < TEST_XCHG_PER_THREAD; i++) {
      TEST_REQUIRE (x[t].old[i] <= nvalues, "set returned %" PRIu32
                    ", never written", x[t].old[i]);
      seen[x[t].old[i]]++;
    }
  seen[pagemap_get (map, TEST_XCHG_PAGE, 0)]++;
  for (i = 0; i <= nvalues; i++)
    TEST_REQUIRE (seen[i] == 1, "value %u seen %u times", i, seen[i]);
  ck_assert_uint_eq (pagemap_get (map, TEST_XCHG_PAGE - 1, 0), SLOT_NONE);
  ck_assert_uint_eq (pagemap_get (map, TEST_XCHG_PAGE + 1, 0), SLOT_NONE);
  free (seen);
  pagemap_destroy (map);
}
END_TEST

/* The suite of page map tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("pagemap");
  TCase *tc;

  tc = tcase_create ("entries");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_create);
  tcase_add_test (tc, test_set_get);
  tcase_add_test (tc, test_replace);
  tcase_add_test (tc, test_lost);
  suite_add_tcase (s, tc);

  tc = tcase_create ("sizes");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_sparse);
  tcase_add_test (tc, test_prefault);
  tcase_add_test (tc, test_bad_npages);
  tcase_add_test (tc, test_copies);
  suite_add_tcase (s, tc);

  tc = tcase_create ("concurrency");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_concurrent_set);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-pagemap", test_suite, NULL, NULL);
}
