/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of the engine's checksums over in-memory backends
 * (issue 14): a page whose copy a backend changed is
 * never returned.
 *
 * - copies=1: a byte flipped in the page's slot makes the page LOST
 *   (EIO), counted as corrupt on its backend; the other pages read.
 * - copies=2: the same flip costs the client nothing: the other copy is
 *   read, the bad one given up (degraded) and counted corrupt.
 * - An old content put back at the slot of a rewritten page (a replay)
 *   is caught the same way.
 * - Each of those in clear and encrypted (AES-256-XTS); encrypted, no
 *   backend slot holds a page's plaintext, a page's two copies differ,
 *   and pages moved by a drain read back.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "codec.h"
#include "drain.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"

/* The codec of the device being tested (loop index 1: encrypted). */
static struct codec *test_codec;

/* test_dev_create, then with encrypt the device's pages encrypted. */
static void
test_dev_codec (struct test_dev *d, unsigned n, const char *const *dom,
                unsigned copies, bool encrypt)
{
  test_dev_create (d, n, TEST_SLOTS (64), dom, NULL, 16, copies, true);
  test_codec = encrypt ? codec_create (ENGINE_REQUESTS * copies) : NULL;
  ck_assert (test_codec || !encrypt);
  ck_assert_int_eq (engine_set_codec (d->e, test_codec), 0);
}

static void
test_dev_codec_destroy (struct test_dev *d)
{
  test_dev_destroy (d);
  codec_destroy (test_codec);
}

START_TEST (test_flip_one_copy)
{
  static const char *const dom[] = { "a" };
  struct test_dev d;
  char *buf = test_common_alloc (PAGE_SIZE);

  test_dev_codec (&d, 1, dom, 1, _i);
  test_fill (&d, 8, 1);
  test_flip_copy (&d, 3, 0, 777, 0x20);
  errno = 0;
  ck_assert_int_eq (engine_read (d.e, buf, PAGE_SIZE, 3 * PAGE_SIZE), -1);
  ck_assert_int_eq (errno, EIO);
  ck_assert_uint_eq (test_stats (&d, 0).corrupt, 1);
  ck_assert_uint_eq (test_stats (&d, 0).lost, 1);
  /* The other pages, read in one request over the lost one too. */
  ck_assert_uint_eq (test_check_range (&d, 0, 3, 1), 0);
  ck_assert_uint_eq (test_check_range (&d, 4, 4, 1), 0);
  free (buf);
  test_dev_codec_destroy (&d);
}
END_TEST

START_TEST (test_flip_with_copies)
{
  static const char *const dom[] = { "a", "b" };
  struct test_dev d;

  test_dev_codec (&d, 2, dom, 2, _i);
  test_fill (&d, 8, 1);
  test_flip_copy (&d, 5, 0, 10, 0x20);
  test_flip_copy (&d, 6, 0, 4000, 0x20);
  ck_assert_uint_eq (test_check (&d, 8, 1), 0);
  ck_assert_uint_eq (test_stats (&d, 0).corrupt + test_stats (&d, 1).corrupt,
                     2);
  ck_assert_uint_eq (engine_degraded (d.e), 2);
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  test_dev_codec_destroy (&d);
}
END_TEST

START_TEST (test_replay)
{
  static const char *const dom[] = { "a" };
  struct test_dev d;
  unsigned char *old = test_common_alloc (PAGE_SIZE);
  slot_t s;
  unsigned b;

  test_dev_codec (&d, 1, dom, 1, _i);
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
  test_dev_codec_destroy (&d);
}
END_TEST

/* Encrypted, no slot of any backend holds a page's plaintext, the two
 * copies of a page differ, and a drain (the mover) moves pages that
 * read back.
 */
START_TEST (test_no_plaintext)
{
  static const char *const dom[] = { "a", "b", "a" };
  struct test_dev d;
  unsigned char *plain = test_common_alloc (PAGE_SIZE);
  unsigned char *slot = test_common_alloc (PAGE_SIZE);
  unsigned char *other = test_common_alloc (PAGE_SIZE);
  struct drain *dr;
  uint64_t page;
  unsigned b, k;
  size_t w;

  test_dev_codec (&d, 3, dom, 2, true);
  test_fill (&d, 12, 1);
  for (page = 0; page < 12; page++) {
    for (w = 0; w < PAGE_SIZE / 8; w++)
      ((uint64_t *) plain)[w] = page << 32 | (uint64_t) 1 << 16 | w;
    for (b = 0; b < d.n; b++)
      for (k = 1; k < test_stats (&d, b).capacity; k++) {
        mem_backend_peek (d.be[b], k, slot);
        TEST_REQUIRE (memcmp (slot, plain, PAGE_SIZE) != 0,
                      "backend %u slot %u holds page %" PRIu64 " in clear",
                      b, k, page);
      }
    {
      slot_t s0 = pagemap_get (d.e->map, page, 0);
      slot_t s1 = pagemap_get (d.e->map, page, 1);
      unsigned b0 = test_backend_of (&d, s0), b1 = test_backend_of (&d, s1);

      mem_backend_peek (d.be[b0], s0 - test_stats (&d, b0).first, slot);
      mem_backend_peek (d.be[b1], s1 - test_stats (&d, b1).first, other);
      ck_assert (memcmp (slot, other, PAGE_SIZE) != 0);
    }
  }
  dr = drain_start (d.e, d.ts, 0, 0, 0, true);
  ck_assert_ptr_nonnull (dr);
  ck_assert_int_eq (test_drain_wait (dr).state, DRAIN_DONE);
  drain_destroy (dr);
  ck_assert_uint_eq (test_check (&d, 12, 1), 0);
  free (plain);
  free (slot);
  free (other);
  test_dev_codec_destroy (&d);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("integrity");
  TCase *tc = tcase_create ("integrity");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_loop_test (tc, test_flip_one_copy, 0, 2);
  tcase_add_loop_test (tc, test_flip_with_copies, 0, 2);
  tcase_add_loop_test (tc, test_replay, 0, 2);
  tcase_add_test (tc, test_no_plaintext);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-integrity", test_suite, NULL, NULL);
}
