/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: what the codec costs per 4 KiB page on this CPU: the CRC32C
 * (isa-l), AES-256-XTS encryption and decryption (libcrypto), one
 * thread, pages hot in cache, next to a plain memcpy of a page.  Prints
 * figures; asserts nothing.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "page.h"

#define BENCH_PAGES 256
#define BENCH_ROUNDS 400

static double
bench_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (void)
{
  struct codec *c = codec_create (1);
  unsigned char *a = aligned_alloc (PAGE_SIZE, BENCH_PAGES * PAGE_SIZE);
  unsigned char *b = aligned_alloc (PAGE_SIZE, BENCH_PAGES * PAGE_SIZE);
  volatile uint32_t sink = 0;
  double t, n = (double) BENCH_PAGES * BENCH_ROUNDS;
  unsigned r, i;

  if (c == NULL || a == NULL || b == NULL)
    return EXIT_FAILURE;
  for (i = 0; i < BENCH_PAGES * PAGE_SIZE; i++)
    a[i] = i * 131 + (i >> 12);
  printf ("codec-bench: ns per 4 KiB page, %u pages x %u rounds\n",
          BENCH_PAGES, BENCH_ROUNDS);
  t = bench_now ();
  for (r = 0; r < BENCH_ROUNDS; r++)
    memcpy (b, a, BENCH_PAGES * PAGE_SIZE);
  printf ("  memcpy            %7.1f\n", (bench_now () - t) * 1e9 / n);
  t = bench_now ();
  for (r = 0; r < BENCH_ROUNDS; r++)
    for (i = 0; i < BENCH_PAGES; i++)
      sink += codec_checksum (a + (size_t) i * PAGE_SIZE);
  printf ("  crc32c (isa-l)    %7.1f\n", (bench_now () - t) * 1e9 / n);
  t = bench_now ();
  for (r = 0; r < BENCH_ROUNDS; r++)
    codec_encrypt (c, 0, 1, BENCH_PAGES, a, b);
  printf ("  aes-256-xts enc   %7.1f\n", (bench_now () - t) * 1e9 / n);
  t = bench_now ();
  for (r = 0; r < BENCH_ROUNDS; r++)
    codec_decrypt (c, 0, 1, BENCH_PAGES, b, a);
  printf ("  aes-256-xts dec   %7.1f\n", (bench_now () - t) * 1e9 / n);
  codec_destroy (c);
  free (a);
  free (b);
  return sink == 0xdeadbeef;
}
