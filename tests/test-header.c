/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the header slot format (lib/header).
 *
 * They check the contract written in header.h: a header survives
 * encoding and decoding field for field, with the layout the header
 * documents; only a page with the magic and zero padding is a header;
 * strings are cut and always terminated; every claim of one process has
 * the same instance id and its own token; and the tests of liveness tell
 * a running local owner from a released claim, a gone process, another
 * start time, another boot, and follow a fork.
 */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <check.h>

#include "header.h"
#include "page.h"
#include "test-common.h"

/* Read a little-endian integer of n bytes at p. */
static uint64_t
test_get_le (const unsigned char *p, unsigned n)
{
  uint64_t v = 0;

  while (n-- > 0)
    v = v << 8 | p[n];
  return v;
}

/* Encoding then decoding gives back every field, at the offsets that
 * header.h documents.
 */
START_TEST (test_round_trip)
{
  unsigned char *page = test_common_alloc (PAGE_SIZE);
  struct header h, back;

  ck_assert_int_eq (header_init_self (&h, "nbd+unix:///?socket=/x"), 0);
  h.heartbeat = 0x0102030405060708ull;
  h.flags = HEADER_RELEASED;
  header_encode (&h, page);
  ck_assert (memcmp (page, HEADER_MAGIC, sizeof HEADER_MAGIC - 1) == 0);
  ck_assert (memcmp (page + 32, h.instance, 16) == 0);
  ck_assert (memcmp (page + 48, h.token, 16) == 0);
  ck_assert_uint_eq (test_get_le (page + 64, 8), h.heartbeat);
  ck_assert_uint_eq (test_get_le (page + 72, 8), h.start_time);
  ck_assert_uint_eq (test_get_le (page + 80, 4), (uint32_t) getpid ());
  ck_assert_uint_eq (test_get_le (page + 84, 4), HEADER_RELEASED);
  ck_assert_str_eq ((char *) page + 256, "nbd+unix:///?socket=/x");

  ck_assert (header_decode (page, &back));
  ck_assert (header_same_claim (&h, &back));
  ck_assert_uint_eq (back.heartbeat, h.heartbeat);
  ck_assert_uint_eq (back.start_time, h.start_time);
  ck_assert_uint_eq (back.pid, h.pid);
  ck_assert_uint_eq (back.flags, HEADER_RELEASED);
  ck_assert_str_eq (back.host, h.host);
  ck_assert_str_eq (back.boot_id, h.boot_id);
  ck_assert_str_eq (back.target, h.target);
  free (page);
}
END_TEST

/* A page is a header only with the magic and zero bytes up to offset 32:
 * zeroes, other data, or a damaged padding are not.
 */
START_TEST (test_not_a_header)
{
  unsigned char *page = test_common_alloc (PAGE_SIZE);
  struct header h;

  memset (page, 0, PAGE_SIZE);
  ck_assert (!header_decode (page, &h));
  memset (page, 'x', PAGE_SIZE);
  ck_assert (!header_decode (page, &h));

  ck_assert_int_eq (header_init_self (&h, "t"), 0);
  header_encode (&h, page);
  ck_assert (header_decode (page, &h));
  page[31] = 1;
  ck_assert (!header_decode (page, &h));
  page[31] = 0;
  page[0] ^= 0x20;
  ck_assert (!header_decode (page, &h));
  free (page);
}
END_TEST

/* A target longer than its field is cut, and every string decoded from
 * a page of non-zero bytes is terminated inside its field.
 */
START_TEST (test_strings_cut)
{
  unsigned char *page = test_common_alloc (PAGE_SIZE);
  char *target = malloc (3000);
  struct header h, back;

  ck_assert_ptr_nonnull (target);
  memset (target, 'a', 2999);
  target[2999] = '\0';
  ck_assert_int_eq (header_init_self (&h, target), 0);
  ck_assert_uint_eq (strlen (h.target), sizeof h.target - 1);
  header_encode (&h, page);
  ck_assert (header_decode (page, &back));
  ck_assert_uint_eq (strlen (back.target), sizeof back.target - 1);

  memset (page + 96, 'h', PAGE_SIZE - 96);
  ck_assert (header_decode (page, &back));
  ck_assert_uint_eq (strlen (back.host), sizeof back.host - 1);
  ck_assert_uint_eq (strlen (back.boot_id), sizeof back.boot_id - 1);
  ck_assert_uint_eq (strlen (back.target), sizeof back.target - 1);
  free (target);
  free (page);
}
END_TEST

/* Every claim of this process has its instance id and a token of its
 * own; another instance id is another instance.
 */
START_TEST (test_instance_and_token)
{
  struct header a, b;

  ck_assert_int_eq (header_init_self (&a, "a"), 0);
  ck_assert_int_eq (header_init_self (&b, "b"), 0);
  ck_assert (memcmp (a.instance, b.instance, sizeof a.instance) == 0);
  ck_assert (memcmp (a.token, b.token, sizeof a.token) != 0);
  ck_assert (!header_same_claim (&a, &b));
  ck_assert (header_is_this_instance (&a));
  b.heartbeat = 99;
  memcpy (b.token, a.token, sizeof a.token);
  ck_assert (header_same_claim (&a, &b));
  b.instance[0] ^= 1;
  ck_assert (!header_same_claim (&a, &b));
  ck_assert (!header_is_this_instance (&b));
}
END_TEST

/* A fresh claim names a live owner here; released, another start time,
 * a process that is gone, another host or boot: not.
 */
START_TEST (test_owner_alive)
{
  struct header h, other;
  pid_t child;

  ck_assert_int_eq (header_init_self (&h, "t"), 0);
  TEST_REQUIRE (h.start_time != 0, "no start time for this process");
  ck_assert (header_is_this_boot (&h));
  ck_assert (header_owner_alive_here (&h));

  other = h;
  other.flags = HEADER_RELEASED;
  ck_assert (!header_owner_alive_here (&other));
  other = h;
  other.start_time++;
  ck_assert (!header_owner_alive_here (&other));
  other = h;
  strcpy (other.boot_id, "another-boot");
  ck_assert (!header_is_this_boot (&other));
  ck_assert (!header_owner_alive_here (&other));
  other = h;
  strcpy (other.host, "another-host");
  ck_assert (!header_is_this_boot (&other));

  child = fork ();
  ck_assert_int_ne (child, -1);
  if (child == 0)
    _exit (0);
  ck_assert_int_eq (waitpid (child, NULL, 0), child);
  other = h;
  other.pid = child;
  ck_assert (!header_owner_alive_here (&other));
}
END_TEST

/* After a fork, refreshing a claim names the child, which is then the
 * live owner; refreshing again changes nothing.
 */
START_TEST (test_refresh_after_fork)
{
  struct header h;
  pid_t child;
  int status;

  ck_assert_int_eq (header_init_self (&h, "t"), 0);
  ck_assert (!header_refresh_self (&h));
  child = fork ();
  ck_assert_int_ne (child, -1);
  if (child == 0) {
    bool ok = header_refresh_self (&h) && h.pid == (uint32_t) getpid () &&
      header_owner_alive_here (&h) && !header_refresh_self (&h);

    _exit (ok ? 0 : 1);
  }
  ck_assert_int_eq (waitpid (child, &status, 0), child);
  ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  ck_assert_uint_eq (h.pid, (uint32_t) getpid ());
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("header");
  TCase *tc;

  tc = tcase_create ("format");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_round_trip);
  tcase_add_test (tc, test_not_a_header);
  tcase_add_test (tc, test_strings_cut);
  suite_add_tcase (s, tc);

  tc = tcase_create ("identity");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_instance_and_token);
  tcase_add_test (tc, test_owner_alive);
  tcase_add_test (tc, test_refresh_after_fork);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-header", test_suite, NULL, NULL);
}
