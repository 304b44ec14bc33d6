/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of the engine's checksums over in-memory backends
 * (issue 14, work in progress): a page whose copy a backend changed is
 * never returned.
 *
 * - copies=1: a byte flipped in the page's slot makes the page LOST
 *   (EIO), counted as corrupt on its backend; the other pages read.
 * - copies=2: the same flip costs the client nothing: the other copy is
 *   read, the bad one given up (degraded) and counted corrupt.
 * - An old content put back at the slot of a rewritten page (a replay)
 *   is caught the same way.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"

/* Flip one byte of the copy c of page in its backend's storage. */
static void
test_flip (struct test_dev *d, uint64_t page, unsigned c, size_t at)
{
  slot_t s = pagemap_get (d->e->map, page, c);
  unsigned b = test_backend_of (d, s);
  unsigned char *buf = test_common_alloc (PAGE_SIZE);

  mem_backend_peek (d->be[b], s - test_stats (d, b).first, buf);
  buf[at] ^= 0x20;
  mem_backend_poke (d->be[b], s - test_stats (d, b).first, buf);
  free (buf);
}

START_TEST (test_flip_one_copy)
{
  static const char *const dom[] = { "a" };
  struct test_dev d;
  char *buf = test_common_alloc (PAGE_SIZE);

  test_dev_create (&d, 1, TEST_SLOTS (64), dom, NULL, 16, 1, true);
  test_fill (&d, 8, 1);
  test_flip (&d, 3, 0, 777);
  errno = 0;
  ck_assert_int_eq (engine_read (d.e, buf, PAGE_SIZE, 3 * PAGE_SIZE), -1);
  ck_assert_int_eq (errno, EIO);
  ck_assert_uint_eq (test_stats (&d, 0).corrupt, 1);
  ck_assert_uint_eq (test_stats (&d, 0).lost, 1);
  /* The other pages, read in one request over the lost one too. */
  ck_assert_uint_eq (test_check_range (&d, 0, 3, 1), 0);
  ck_assert_uint_eq (test_check_range (&d, 4, 4, 1), 0);
  free (buf);
  test_dev_destroy (&d);
}
END_TEST

START_TEST (test_flip_with_copies)
{
  static const char *const dom[] = { "a", "b" };
  struct test_dev d;

  test_dev_create (&d, 2, TEST_SLOTS (64), dom, NULL, 16, 2, true);
  test_fill (&d, 8, 1);
  test_flip (&d, 5, 0, 10);
  test_flip (&d, 6, 0, 4000);
  ck_assert_uint_eq (test_check (&d, 8, 1), 0);
  ck_assert_uint_eq (test_stats (&d, 0).corrupt + test_stats (&d, 1).corrupt,
                     2);
  ck_assert_uint_eq (engine_degraded (d.e), 2);
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  test_dev_destroy (&d);
}
END_TEST

START_TEST (test_replay)
{
  static const char *const dom[] = { "a" };
  struct test_dev d;
  unsigned char *old = test_common_alloc (PAGE_SIZE);
  slot_t s;
  unsigned b;

  test_dev_create (&d, 1, TEST_SLOTS (64), dom, NULL, 16, 1, true);
  test_fill (&d, 4, 1);
  s = pagemap_get (d.e->map, 2, 0);
  b = test_backend_of (&d, s);
  mem_backend_peek (d.be[b], s - test_stats (&d, b).first, old);
  test_fill_range (&d, 2, 1, 2);
  s = pagemap_get (d.e->map, 2, 0);
  mem_backend_poke (d.be[b], s - test_stats (&d, b).first, old);
  ck_assert_uint_eq (test_check_range (&d, 2, 1, 2), 1);
  ck_assert_uint_eq (test_stats (&d, 0).corrupt, 1);
  ck_assert_uint_eq (test_check_range (&d, 0, 2, 1), 0);
  free (old);
  test_dev_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("integrity");
  TCase *tc = tcase_create ("integrity");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_flip_one_copy);
  tcase_add_test (tc, test_flip_with_copies);
  tcase_add_test (tc, test_replay);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-integrity", test_suite, NULL, NULL);
}
