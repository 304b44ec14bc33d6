/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of the codec (lib/codec.c).
 *
 * - The checksum is the standard CRC32C: it matches a bitwise reference
 *   on random pages, and a flipped bit changes it.
 * - AES-256-XTS: what is encrypted for a slot decrypts for that slot to
 *   the plaintext, in place or not; the ciphertext differs from the
 *   plaintext and from the same page's ciphertext at another slot; a
 *   ciphertext decrypted at another slot, or with a byte flipped, fails
 *   the checksum of the plaintext.  Two codecs have different keys.
 */

#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "codec.h"
#include "page.h"
#include "test-common.h"

/* CRC32C bit by bit: the reference. */
static uint32_t
test_crc32c (const unsigned char *p, size_t n)
{
  uint32_t c = 0xffffffff;
  size_t i;
  int k;

  for (i = 0; i < n; i++) {
    c ^= p[i];
    for (k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
  }
  return c ^ 0xffffffff;
}

/* n pages of random bytes. */
static unsigned char *
test_random_pages (uint32_t n, uint64_t seed)
{
  uint64_t *p = test_common_alloc ((size_t) n * PAGE_SIZE);
  size_t i;

  for (i = 0; i < (size_t) n * PAGE_SIZE / 8; i++)
    p[i] = test_common_rand (&seed);
  return (unsigned char *) p;
}

START_TEST (test_checksum)
{
  unsigned char *p = test_random_pages (8, 1);
  unsigned i;

  for (i = 0; i < 8; i++) {
    unsigned char *pg = p + (size_t) i * PAGE_SIZE;
    uint32_t sum = codec_checksum (pg);

    ck_assert_uint_eq (sum, test_crc32c (pg, PAGE_SIZE));
    pg[i * 100] ^= 1;
    ck_assert_uint_ne (codec_checksum (pg), sum);
  }
  free (p);
}
END_TEST

START_TEST (test_xts)
{
  struct codec *c = codec_create (2), *other = codec_create (1);
  unsigned char *plain = test_random_pages (4, 2);
  unsigned char *ct = test_common_alloc (4 * PAGE_SIZE);
  unsigned char *ct2 = test_common_alloc (4 * PAGE_SIZE);
  unsigned char *back = test_common_alloc (4 * PAGE_SIZE);
  uint32_t sum0 = codec_checksum (plain);

  ck_assert_ptr_nonnull (c);
  ck_assert_ptr_nonnull (other);
  ck_assert_int_eq (codec_encrypt (c, 0, 100, 4, plain, ct), 0);
  ck_assert (memcmp (ct, plain, PAGE_SIZE) != 0);
  /* Page 1 of the run is slot 101: the same as encrypting it alone. */
  ck_assert_int_eq (codec_encrypt (c, 1, 101, 1, plain + PAGE_SIZE, ct2),
                    0);
  ck_assert (memcmp (ct2, ct + PAGE_SIZE, PAGE_SIZE) == 0);
  ck_assert_int_eq (codec_decrypt (c, 1, 100, 4, ct, back), 0);
  ck_assert (memcmp (back, plain, 4 * PAGE_SIZE) == 0);
  /* In place. */
  memcpy (back, plain, 4 * PAGE_SIZE);
  ck_assert_int_eq (codec_encrypt (c, 0, 100, 4, back, back), 0);
  ck_assert (memcmp (back, ct, 4 * PAGE_SIZE) == 0);
  ck_assert_int_eq (codec_decrypt (c, 0, 100, 4, back, back), 0);
  ck_assert (memcmp (back, plain, 4 * PAGE_SIZE) == 0);
  /* Another slot: another ciphertext; moved there, it does not check. */
  ck_assert_int_eq (codec_encrypt (c, 0, 7, 1, plain, ct2), 0);
  ck_assert (memcmp (ct2, ct, PAGE_SIZE) != 0);
  ck_assert_int_eq (codec_decrypt (c, 0, 7, 1, ct, back), 0);
  ck_assert_uint_ne (codec_checksum (back), sum0);
  /* A flipped byte does not check. */
  memcpy (ct2, ct, PAGE_SIZE);
  ct2[1234] ^= 0x40;
  ck_assert_int_eq (codec_decrypt (c, 0, 100, 1, ct2, back), 0);
  ck_assert_uint_ne (codec_checksum (back), sum0);
  /* Another codec, another key. */
  ck_assert_int_eq (codec_encrypt (other, 0, 100, 1, plain, ct2), 0);
  ck_assert (memcmp (ct2, ct, PAGE_SIZE) != 0);
  codec_destroy (c);
  codec_destroy (other);
  free (plain);
  free (ct);
  free (ct2);
  free (back);
}
END_TEST

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("codec");
  TCase *tc = tcase_create ("codec");

  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_checksum);
  tcase_add_test (tc, test_xts);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-codec", test_suite, NULL, NULL);
}
