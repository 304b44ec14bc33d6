/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests of checksums and encryption under faults and
 * concurrency (issue 14), from an adversarial review; each of the last
 * two failed before its fix.
 *
 * - A random model test: writes (aligned or not, partial pages, several
 *   stripe units), write-zeroes with and without unmapping, trims and
 *   reads against a byte model, over backends some of which are clear
 *   (encrypt=off) and some encrypted, copies 1 to 3, with a drain of an
 *   encrypted backend onto clear ones and a clear backend added, and
 *   one copy of random pages corrupted: every read returns the model's
 *   bytes.
 * - The same with client threads on disjoint ranges while drains move
 *   pages under them (cipher contexts and buffers of concurrent
 *   requests, fanout helpers and the mover).
 * - Clients, the demoter (promotion on) and the repairer at once over
 *   mixed backends with injected read and write errors.
 * - A copy that fails a quick read is not given up before another copy
 *   read and matched: when that other copy is corrupt, the first is
 *   read again and the page returned, not LOST.
 * - codec_create error path: a failed allocation of the decryption
 *   context table must fail cleanly, not crash.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <check.h>

#include "codec.h"
#include "demote.h"
#include "drain.h"
#include "repair.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"
#include "tierset-internal.h"

static uint64_t seed = 14;

#define RV_PAGES 40
#define RV_SLOTS 256

/* Pages with one copy flipped since their last write (one at most), of
 * the largest device here (test_concurrent_background's 64 pages).
 */
#define RV_FLIP_PAGES 64
static bool rv_flipped[RV_FLIP_PAGES];

static void
rv_unflip (uint64_t p0, uint64_t p1)
{
  ck_assert_uint_le (p1, RV_FLIP_PAGES);
  for (; p0 < p1; p0++)
    rv_flipped[p0] = false;
}

/* Make backend i store its pages in clear (as encrypt=off would). */
static void
rv_set_clear (struct test_dev *d, unsigned i)
{
  tierset_lookup (d->ts, test_stats (d, i).first)->clear = true;
}

/* Read [off, off+len) and compare with the model. */
static void
rv_check (struct test_dev *d, const unsigned char *model, uint64_t off,
          uint32_t len, bool unaligned, const char *what)
{
  unsigned char *buf = test_common_alloc (len + PAGE_SIZE);
  unsigned char *p = buf + (unaligned ? 1 : 0);
  uint32_t i;

  TEST_REQUIRE (engine_read (d->e, p, len, off) == 0,
                "%s: read of %" PRIu32 " bytes at %" PRIu64 " failed: %m",
                what, len, off);
  for (i = 0; i < len; i++)
    TEST_REQUIRE (p[i] == model[off + i], "%s: byte %" PRIu64 " (page %"
                  PRIu64 ") is %#x, not %#x", what, off + i,
                  (off + i) / PAGE_SIZE, p[i], model[off + i]);
  free (buf);
}

/* One random operation on [lo, hi) pages; the model follows. */
static void
rv_op (struct test_dev *d, unsigned char *model, uint64_t lo, uint64_t hi,
       uint64_t *st, bool flips)
{
  uint64_t span = (hi - lo) * PAGE_SIZE;
  uint64_t op = test_common_below (st, 10);
  uint64_t off, len;
  bool aligned = test_common_below (st, 2) == 0;

  if (aligned) {
    off = lo * PAGE_SIZE + test_common_below (st, hi - lo) * PAGE_SIZE;
    len = (1 + test_common_below (st, 3 * TEST_STRIPE)) * PAGE_SIZE;
  }
  else {
    off = lo * PAGE_SIZE + test_common_below (st, span);
    len = 1 + test_common_below (st, 3 * TEST_STRIPE * PAGE_SIZE);
  }
  if (off + len > hi * PAGE_SIZE)
    len = hi * PAGE_SIZE - off;
  if (len == 0)
    return;

  if (op < 4) {                        /* write */
    unsigned char *buf = test_common_alloc (len + PAGE_SIZE);
    unsigned char *p = buf + (aligned ? 0 : 3);
    uint64_t i;

    for (i = 0; i < len; i++)
      p[i] = test_common_rand (st);
    TEST_REQUIRE (engine_write (d->e, p, len, off, false) == 0,
                  "write at %" PRIu64 "+%" PRIu64 ": %m", off, len);
    memcpy (model + off, p, len);
    rv_unflip (off / PAGE_SIZE, (off + len + PAGE_SIZE - 1) / PAGE_SIZE);
    free (buf);
  }
  else if (op == 4 || op == 5) {       /* write zeroes */
    bool unmap = op == 4;

    TEST_REQUIRE (engine_zero (d->e, len, off, false, unmap) == 0,
                  "zero at %" PRIu64 "+%" PRIu64 ": %m", off, len);
    memset (model + off, 0, len);
    rv_unflip (off / PAGE_SIZE, (off + len + PAGE_SIZE - 1) / PAGE_SIZE);
  }
  else if (op == 6) {                  /* trim: whole pages read zeroes */
    uint64_t f0 = (off + PAGE_SIZE - 1) / PAGE_SIZE;
    uint64_t f1 = (off + len) / PAGE_SIZE;

    TEST_REQUIRE (engine_trim (d->e, len, off, false) == 0, "trim: %m");
    if (f0 < f1) {
      memset (model + f0 * PAGE_SIZE, 0, (f1 - f0) * PAGE_SIZE);
      rv_unflip (f0, f1);
    }
  }
  else if (op == 7 && flips && d->e->copies > 1) {
    uint64_t page = lo + test_common_below (st, hi - lo);

    /* Only a page with every copy: the flipped one is given up. */
    if (pagemap_live (d->e->map, page) == d->e->copies &&
        !rv_flipped[page]) {
      rv_flipped[page] = true;
      test_flip_copy (d, page, test_common_below (st, d->e->copies),
                      test_common_below (st, PAGE_SIZE), 0x5a);
    }
  }
  else
    rv_check (d, model, off, len, !aligned, "random read");
}

/* _i: copies - 1.  Backends in domains a, b, c (and d with 3 copies);
 * the odd ones clear.  Random ops, drain of backend 0 (encrypted),
 * a clear backend added in its domain, more ops, every page checked.
 */
START_TEST (test_model_mixed)
{
  static const char *const dom[] = { "a", "b", "c", "d" };
  static const char *const dom_a[] = { "a" };
  unsigned copies = _i + 1;
  unsigned nb = copies == 3 ? 4 : 3;
  struct test_dev d;
  struct codec *codec;
  unsigned char *model = calloc (RV_PAGES, PAGE_SIZE);
  uint64_t st = seed + _i;
  struct drain *dr;
  unsigned i;

  test_dev_create (&d, nb, TEST_SLOTS (RV_SLOTS), dom, NULL, RV_PAGES,
                   copies, true);
  codec = codec_create (ENGINE_REQUESTS * copies);
  ck_assert_ptr_nonnull (codec);
  ck_assert_int_eq (engine_set_codec (d.e, codec), 0);
  for (i = 1; i < nb; i += 2)
    rv_set_clear (&d, i);
  test_common_quiet = true;

  for (i = 0; i < 3000; i++)
    rv_op (&d, model, 0, RV_PAGES, &st, true);
  rv_check (&d, model, 0, RV_PAGES * PAGE_SIZE, false, "before drain");

  if (copies < 3) {
    dr = drain_start (d.e, d.ts, 0, 0, 0, true);
    ck_assert_ptr_nonnull (dr);
    ck_assert_int_eq (test_drain_wait (dr).state, DRAIN_DONE);
    drain_destroy (dr);
    rv_check (&d, model, 0, RV_PAGES * PAGE_SIZE, false, "after drain");
    test_add_backends (&d, 1, RV_SLOTS, 0, dom_a);
    rv_set_clear (&d, d.n - 1);
  }
  for (i = 0; i < 3000; i++)
    rv_op (&d, model, 0, RV_PAGES, &st, true);
  rv_check (&d, model, 0, RV_PAGES * PAGE_SIZE, false, "at the end");
  rv_check (&d, model, 0, RV_PAGES * PAGE_SIZE, true, "unaligned");
  ck_assert_uint_eq (tierset_lost (d.ts), 0);

  test_common_quiet = false;
  test_dev_destroy (&d);
  codec_destroy (codec);
  free (model);
}
END_TEST

/* Client threads on disjoint ranges, while backends drain under them. */
struct rv_client {
  struct test_dev *d;
  unsigned char *model;
  uint64_t lo, hi, seed;
  unsigned ops, bursts;
};

static void *
rv_client_thread (void *arg)
{
  struct rv_client *c = arg;
  unsigned i;

  unsigned b;

  for (b = 0; b < (c->bursts ? c->bursts : 1); b++) {
    for (i = 0; i < c->ops; i++)
      rv_op (c->d, c->model, c->lo, c->hi, &c->seed, false);
    if (c->bursts)
      test_sleep_ms (1200);            /* let pages age for the demoter */
  }
  return NULL;
}

START_TEST (test_concurrent_drain)
{
  static const char *const dom[] = { "a", "b", "c", "a" };
  enum { NT = 4 };
  struct test_dev d;
  struct codec *codec;
  unsigned char *model = calloc (RV_PAGES, PAGE_SIZE);
  struct rv_client cl[NT];
  pthread_t th[NT];
  struct drain *dr;
  unsigned i;

  test_dev_create (&d, 4, TEST_SLOTS (RV_SLOTS), dom, NULL, RV_PAGES, 2,
                   true);
  codec = codec_create (ENGINE_REQUESTS * 2);
  ck_assert_ptr_nonnull (codec);
  ck_assert_int_eq (engine_set_codec (d.e, codec), 0);
  rv_set_clear (&d, 1);
  rv_set_clear (&d, 3);
  for (i = 0; i < 4; i++)
    mem_backend_set_yield (d.be[i], true);
  test_common_quiet = true;
  for (i = 0; i < NT; i++) {
    cl[i] = (struct rv_client) {
      .d = &d, .model = model, .lo = i * (RV_PAGES / NT),
      .hi = (i + 1) * (RV_PAGES / NT), .seed = seed * 31 + i, .ops = 1500,
    };
    ck_assert_int_eq (pthread_create (&th[i], NULL, rv_client_thread,
                                      &cl[i]), 0);
  }
  /* Drain backend 0 (encrypted, domain a) onto 3 (clear, domain a). */
  dr = drain_start (d.e, d.ts, 0, 0, 0, true);
  ck_assert_ptr_nonnull (dr);
  ck_assert_int_eq (test_drain_wait (dr).state, DRAIN_DONE);
  drain_destroy (dr);
  for (i = 0; i < NT; i++)
    pthread_join (th[i], NULL);
  rv_check (&d, model, 0, RV_PAGES * PAGE_SIZE, false, "at the end");
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  test_common_quiet = false;
  test_dev_destroy (&d);
  codec_destroy (codec);
  free (model);
}
END_TEST

/* Client threads, the demoter (promotion on) and the repairer, over a
 * fast level (one backend encrypted, one clear) and a slow one (one
 * clear, one encrypted), copies=2, with read and write errors on one
 * backend: every read returns the model's bytes, no page is lost.
 */
START_TEST (test_concurrent_background)
{
  static const char *const dom[] = { "a", "b", "a", "b" };
  static const int prio[] = { 10, 10, 0, 0 };
  static const uint64_t slots[TEST_MAX] = { 40, 40, 256, 256 };
  static const struct demote_config cfg = {
    .on = true, .promote = true, .low = 5, .high = 20, .rate = 0,
  };
  enum { NT = 4, NP = 64 };
  struct test_dev d;
  struct codec *codec;
  unsigned char *model = calloc (NP, PAGE_SIZE);
  struct rv_client cl[NT];
  pthread_t th[NT];
  struct demote *dm;
  struct repair *rp;
  struct demote_status ds;
  unsigned i;

  test_dev_create (&d, 4, slots, dom, prio, NP, 2, true);
  codec = codec_create (ENGINE_REQUESTS * 2);
  ck_assert_ptr_nonnull (codec);
  ck_assert_int_eq (engine_set_codec (d.e, codec), 0);
  rv_set_clear (&d, 1);
  rv_set_clear (&d, 2);
  for (i = 0; i < 4; i++)
    mem_backend_set_yield (d.be[i], true);
  test_common_quiet = true;
  dm = demote_start (d.e, d.ts, &cfg);
  ck_assert_ptr_nonnull (dm);
  rp = repair_start (d.e, d.ts, 0);
  ck_assert_ptr_nonnull (rp);
  mem_backend_fail_every (d.be[2], 11);
  for (i = 0; i < NT; i++) {
    cl[i] = (struct rv_client) {
      .d = &d, .model = model, .lo = i * (NP / NT),
      .hi = (i + 1) * (NP / NT), .seed = seed * 17 + i, .ops = 300,
      .bursts = 4,
    };
    ck_assert_int_eq (pthread_create (&th[i], NULL, rv_client_thread,
                                      &cl[i]), 0);
  }
  for (i = 0; i < NT; i++)
    pthread_join (th[i], NULL);
  mem_backend_fail_every (d.be[2], 0);
  demote_status (dm, &ds);
  demote_stop (dm);
  repair_stop (rp);
  rv_check (&d, model, 0, NP * PAGE_SIZE, false, "at the end");
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  test_common_quiet = false;
  fprintf (stderr, "demoted %" PRIu64 " promoted %" PRIu64 "\n",
           ds.demoted, ds.promoted);
  test_dev_destroy (&d);
  codec_destroy (codec);
  free (model);
}
END_TEST

/* copies=2: copy A (slow backend) has a latent flipped byte, copy B
 * (fast backend, read first) has one transient read error.  B is given
 * up after its quick read (the run read and engine_read_page's quick
 * read both fail) because A looked usable; A then fails its
 * checksum and the page is made LOST, although B's slot still holds the
 * page intact.  A read must return the page (B, read again), not EIO.
 * _i: 0 clear, 1 encrypted.
 */
START_TEST (test_quick_drop_then_corrupt)
{
  static const char *const dom[] = { "a", "b" };
  static const int prio[] = { 10, 0 };
  struct test_dev d;
  struct codec *codec;
  slot_t sa = SLOT_NONE;
  unsigned c, fast = 0;

  test_dev_create (&d, 2, TEST_SLOTS (64), dom, prio, 8, 2, true);
  codec = _i ? codec_create (ENGINE_REQUESTS * 2) : NULL;
  ck_assert (codec || !_i);
  ck_assert_int_eq (engine_set_codec (d.e, codec), 0);
  test_common_quiet = true;
  test_fill (&d, 8, 1);
  for (c = 0; c < 2; c++) {
    slot_t s = pagemap_get (d.e->map, 3, c);

    if (test_backend_of (&d, s) == 1)
      sa = s;
    else
      fast = c;
  }
  ck_assert_uint_ne (sa, SLOT_NONE);
  /* Latent corruption of the slow copy A. */
  test_flip_copy (&d, 3, 1 - fast, 100, 0x5a);
  /* Two transient read errors on the fast backend (copy B): the run
   * read, then engine_read_page's quick read of B.
   */
  mem_backend_fail_next (d.be[0], MEM_FAIL_READ, 2);
  {
    slot_t sb = pagemap_get (d.e->map, 3, fast);
    unsigned failed = test_check_range (&d, 3, 1, 1);
    uint64_t *buf = test_common_alloc (PAGE_SIZE);
    size_t w;

    /* B's slot still holds the page (in clear: compare it). */
    mem_backend_peek (d.be[0], sb - test_stats (&d, 0).first, buf);
    if (!_i)
      for (w = 0; w < PAGE_SIZE / 8; w++)
        ck_assert_uint_eq (buf[w], (uint64_t) 3 << 32 | 1 << 16 | w);
    free (buf);
    ck_assert_uint_eq (failed, 0);
  }
  ck_assert_uint_eq (tierset_lost (d.ts), 0);
  test_common_quiet = false;
  test_dev_destroy (&d);
  codec_destroy (codec);
}
END_TEST

/* Address space limits and ASan's shadow memory do not mix: the test
 * of codec_create's failed allocation runs without ASan only.
 */
#if defined (__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined (__has_feature)
#if __has_feature (address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif

#ifndef TEST_UNDER_ASAN
/* codec_create: when the table of decryption contexts cannot be
 * allocated (but that of encryption contexts could), the codec must
 * fail with NULL.  Here the address space is limited so that exactly
 * one of the two tables of 2^27 pointers (1 GiB each) fits.
 */
START_TEST (test_codec_create_dec_alloc_fails)
{
  const unsigned nctx = 1u << 27;
  struct rlimit rl;
  FILE *f;
  unsigned long vsz_pages = 0;
  struct codec *c;

  f = fopen ("/proc/self/statm", "r");
  ck_assert_ptr_nonnull (f);
  ck_assert_int_eq (fscanf (f, "%lu", &vsz_pages), 1);
  fclose (f);
  rl.rlim_cur = rl.rlim_max = (rlim_t) vsz_pages * 4096
    + ((rlim_t) 3 << 29);              /* now + 1.5 GiB */
  ck_assert_int_eq (setrlimit (RLIMIT_AS, &rl), 0);
  test_common_quiet = true;
  c = codec_create (nctx);       /* crashes in codec_destroy */
  ck_assert_ptr_null (c);
}
END_TEST
#endif

static Suite *
test_suite (void)
{
  Suite *s = suite_create ("integrity-faults");
  TCase *tc = tcase_create ("integrity-faults");

  tcase_set_timeout (tc, 120);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_loop_test (tc, test_model_mixed, 0, 3);
  tcase_add_test (tc, test_concurrent_drain);
  tcase_add_test (tc, test_concurrent_background);
  tcase_add_loop_test (tc, test_quick_drop_then_corrupt, 0, 2);
#ifndef TEST_UNDER_ASAN
  tcase_add_test (tc, test_codec_create_dec_alloc_fails);
#endif
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-integrity-faults", test_suite,
                           "TEST_INTEGRITY_FAULTS_SEED", &seed);
}
