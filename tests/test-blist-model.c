/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: the model of blist, and the checks against it. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "blist.h"
#include "test-blist-model.h"
#include "test-common.h"

void
model_init (struct model *m, uint64_t nslots)
{
  uint64_t i;

  m->nslots = nslots;
  m->nfree = nslots;
  m->cursor = 0;
  m->free = malloc (nslots * sizeof *m->free);
  ck_assert_ptr_nonnull (m->free);
  for (i = 0; i < nslots; i++)
    m->free[i] = true;
}

void
model_destroy (struct model *m)
{
  free (m->free);
  m->free = NULL;
}

/* Return the lowest s in [from, to) such that [s, s+min) is free and lies
 * inside the map, or BLIST_NONE.  Requires 1 <= min <= nslots.
 */
static uint64_t
model_find (const struct model *m, uint64_t from, uint64_t to, uint64_t min)
{
  uint64_t s = from;

  while (s < to && s <= m->nslots - min) {
    uint64_t i = min;

    /* Find the last used slot of [s, s+min).  Every start from s up to
     * that slot would contain it, so the next candidate is just past it.
     */
    while (i > 0 && m->free[s + i - 1])
      i--;
    if (i == 0)
      return s;
    s += i;
  }
  return BLIST_NONE;
}

/* Allocate as blist_alloc documents it: the same return value, *len and
 * errno, and the same cursor movement.
 */
static uint64_t
model_alloc (struct model *m, uint64_t min, uint64_t max, uint64_t *len)
{
  uint64_t s, n, i;

  if (min == 0 || min > max) {
    errno = EINVAL;
    return BLIST_NONE;
  }
  s = BLIST_NONE;
  if (min <= m->nslots) {
    s = model_find (m, m->cursor, m->nslots, min);
    if (s == BLIST_NONE)
      s = model_find (m, 0, m->cursor, min);
  }
  if (s == BLIST_NONE) {
    errno = ENOSPC;
    return BLIST_NONE;
  }

  n = min;
  while (n < max && s + n < m->nslots && m->free[s + n])
    n++;
  for (i = s; i < s + n; i++)
    m->free[i] = false;
  m->nfree -= n;
  m->cursor = s + n == m->nslots ? 0 : s + n;
  *len = n;
  return s;
}

/* True when [start, start+n) is a non-empty range inside the map. */
static bool
model_range_ok (const struct model *m, uint64_t start, uint64_t n)
{
  return start < m->nslots && n > 0 && n <= m->nslots - start;
}

/* Free as blist_free documents it: same return value and errno. */
static int
model_free (struct model *m, uint64_t start, uint64_t n)
{
  uint64_t i;

  if (!model_range_ok (m, start, n)) {
    errno = ERANGE;
    return -1;
  }
  for (i = start; i < start + n; i++) {
    if (m->free[i]) {
      errno = EINVAL;
      return -1;
    }
  }
  for (i = start; i < start + n; i++)
    m->free[i] = true;
  m->nfree += n;
  return 0;
}

/* Fill as blist_fill documents it: same return value and errno. */
static int64_t
model_fill (struct model *m, uint64_t start, uint64_t n)
{
  uint64_t i, count = 0;

  if (!model_range_ok (m, start, n)) {
    errno = ERANGE;
    return -1;
  }
  for (i = start; i < start + n; i++) {
    if (m->free[i]) {
      m->free[i] = false;
      count++;
    }
  }
  m->nfree -= count;
  return count;
}

void
test_frag_add_run (struct blist_frag *frag, uint64_t len)
{
  frag->nfree += len;
  frag->nruns++;
  if (len > frag->largest)
    frag->largest = len;
  frag->hist[63 - __builtin_clzll (len)]++;
}

/* Fill *frag with the summary of the free runs of the model. */
static void
model_frag (const struct model *m, struct blist_frag *frag)
{
  uint64_t i = 0;

  memset (frag, 0, sizeof *frag);
  while (i < m->nslots) {
    uint64_t start = i;

    if (!m->free[i]) {
      i++;
      continue;
    }
    while (i < m->nslots && m->free[i])
      i++;
    test_frag_add_run (frag, i - start);
  }
}

void
test_check_frag (struct blist *bl, const struct blist_frag *expect,
                 const char *where)
{
  struct blist_frag got;
  uint64_t largest;
  size_t k;

  memset (&got, 0xa5, sizeof got);
  blist_frag (bl, &got);
  TEST_REQUIRE (got.nfree == expect->nfree,
                "%s: frag nfree %" PRIu64 ", expected %" PRIu64,
                where, got.nfree, expect->nfree);
  TEST_REQUIRE (got.nruns == expect->nruns,
                "%s: frag nruns %" PRIu64 ", expected %" PRIu64,
                where, got.nruns, expect->nruns);
  TEST_REQUIRE (got.largest == expect->largest,
                "%s: frag largest %" PRIu64 ", expected %" PRIu64,
                where, got.largest, expect->largest);
  for (k = 0; k < sizeof got.hist / sizeof got.hist[0]; k++)
    TEST_REQUIRE (got.hist[k] == expect->hist[k],
                  "%s: frag hist[%zu] %" PRIu64 ", expected %" PRIu64,
                  where, k, got.hist[k], expect->hist[k]);
  TEST_REQUIRE (blist_free_count (bl) == expect->nfree,
                "%s: free count %" PRIu64 ", expected %" PRIu64,
                where, blist_free_count (bl), expect->nfree);
  largest = blist_largest_run (bl);
  TEST_REQUIRE (largest == expect->largest,
                "%s: largest run %" PRIu64 ", expected %" PRIu64,
                where, largest, expect->largest);
}

void
test_check_model (struct blist *bl, const struct model *m, const char *where)
{
  struct blist_frag expect;

  model_frag (m, &expect);
  test_check_frag (bl, &expect, where);
}

/* Check that bl and the model have as many free slots after the call
 * what (a, b).
 */
static void
test_same_count (struct blist *bl, const struct model *m, const char *what,
                 uint64_t a, uint64_t b, const char *where)
{
  TEST_REQUIRE (blist_free_count (bl) == m->nfree,
                "%s: after %s (%" PRIu64 ", %" PRIu64 ") free count %"
                PRIu64 ", expected %" PRIu64,
                where, what, a, b, blist_free_count (bl), m->nfree);
}

uint64_t
test_same_alloc (struct blist *bl, struct model *m, uint64_t min,
                 uint64_t max, uint64_t *len, const char *where)
{
  uint64_t got, expect, got_len = 0, expect_len = 0;
  int got_errno, expect_errno;

  errno = 0;
  got = blist_alloc (bl, min, max, &got_len);
  got_errno = errno;
  expect = model_alloc (m, min, max, &expect_len);
  expect_errno = errno;

  TEST_REQUIRE (got == expect,
                "%s: alloc (%" PRIu64 ", %" PRIu64 ") = %" PRIu64
                ", expected %" PRIu64, where, min, max, got, expect);
  if (got == BLIST_NONE)
    TEST_REQUIRE (got_errno == expect_errno,
                  "%s: alloc (%" PRIu64 ", %" PRIu64 ") errno %d (%s), "
                  "expected %d (%s)", where, min, max,
                  got_errno, strerror (got_errno),
                  expect_errno, strerror (expect_errno));
  else
    TEST_REQUIRE (got_len == expect_len,
                  "%s: alloc (%" PRIu64 ", %" PRIu64 ") at %" PRIu64
                  " length %" PRIu64 ", expected %" PRIu64,
                  where, min, max, got, got_len, expect_len);
  test_same_count (bl, m, "alloc", min, max, where);
  *len = expect_len;
  return expect;
}

int
test_same_free (struct blist *bl, struct model *m, uint64_t start,
                uint64_t n, const char *where)
{
  int got, expect, got_errno, expect_errno;

  errno = 0;
  got = blist_free (bl, start, n);
  got_errno = errno;
  expect = model_free (m, start, n);
  expect_errno = errno;

  TEST_REQUIRE (got == expect && (got == 0 || got_errno == expect_errno),
                "%s: free (%" PRIu64 ", %" PRIu64 ") = %d errno %d (%s), "
                "expected %d errno %d (%s)", where, start, n,
                got, got_errno, strerror (got_errno),
                expect, expect_errno, strerror (expect_errno));
  test_same_count (bl, m, "free", start, n, where);
  return expect;
}

int64_t
test_same_fill (struct blist *bl, struct model *m, uint64_t start,
                uint64_t n, const char *where)
{
  int64_t got, expect;
  int got_errno, expect_errno;

  errno = 0;
  got = blist_fill (bl, start, n);
  got_errno = errno;
  expect = model_fill (m, start, n);
  expect_errno = errno;

  TEST_REQUIRE (got == expect && (got >= 0 || got_errno == expect_errno),
                "%s: fill (%" PRIu64 ", %" PRIu64 ") = %" PRId64
                " errno %d (%s), expected %" PRId64 " errno %d (%s)",
                where, start, n, got, got_errno, strerror (got_errno),
                expect, expect_errno, strerror (expect_errno));
  test_same_count (bl, m, "fill", start, n, where);
  return expect;
}

void
test_check_created (struct blist *bl, uint64_t nslots)
{
  ck_assert_ptr_nonnull (bl);
  ck_assert_uint_eq (blist_size (bl), nslots);
  ck_assert_uint_eq (blist_free_count (bl), nslots);
  ck_assert_uint_ge (blist_memory (bl), nslots / 8);
  ck_assert_uint_le (blist_memory (bl), nslots / 4 + 65536);
}
