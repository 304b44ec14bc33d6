/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: the engine's test device and its model. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "engine.h"
#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-engine-model.h"
#include "test-set.h"
#include "tierset.h"

void
test_fill_random (uint64_t *state, void *buf, size_t len)
{
  unsigned char *p = buf;
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = test_common_rand (state);
}

/* Word i of the stamp of version version of page page.  A stamp fills a
 * page: word 0 is the page, word 1 the version, the others derive from
 * both, so that a page read back tells whose data it is.
 */
static uint64_t
test_stamp_word (uint64_t page, uint64_t version, size_t i)
{
  if (i == 0)
    return page;
  if (i == 1)
    return version;
  return (page * UINT64_C (0x9e3779b97f4a7c15)) ^
    (version * UINT64_C (0xc2b2ae3d27d4eb4f)) ^
    (i * UINT64_C (0x165667b19e3779f9));
}

void
test_stamp (void *buf, uint64_t page, uint64_t version)
{
  uint64_t *w = buf;
  size_t i;

  for (i = 0; i < PAGE_SIZE / sizeof *w; i++)
    w[i] = test_stamp_word (page, version, i);
}

uint64_t
test_stamp_version (const void *buf, uint64_t page)
{
  const uint64_t *w = buf;
  uint64_t version = w[1];
  size_t i;

  if (w[0] == 0 && version == 0) {
    for (i = 2; i < PAGE_SIZE / sizeof *w; i++)
      if (w[i] != 0)
        return UINT64_MAX;
    return 0;
  }
  if (version == 0)
    return UINT64_MAX;
  for (i = 0; i < PAGE_SIZE / sizeof *w; i++)
    if (w[i] != test_stamp_word (page, version, i))
      return UINT64_MAX;
  return version;
}

void
test_model_create (struct test_model *d, uint64_t npages, uint32_t stripe,
                   unsigned max_errors, unsigned n, const uint64_t *nslots,
                   const int *priority)
{
  struct test_set set;

  memset (d, 0, sizeof *d);
  test_set_create (&set, max_errors, n, nslots, priority);
  d->ts = set.ts;
  d->n = set.n;
  memcpy (d->be, set.be, sizeof d->be);
  d->npages = npages;
  d->size = npages * PAGE_SIZE;
  d->e = engine_create (d->ts, npages, stripe, 1);
  ck_assert_ptr_nonnull (d->e);
  d->model = calloc (d->size, 1);
  d->mapped = calloc (npages, sizeof *d->mapped);
  ck_assert_ptr_nonnull (d->model);
  ck_assert_ptr_nonnull (d->mapped);
  d->buf = test_common_alloc (d->size + 2 * PAGE_SIZE);
}

void
test_model_destroy (struct test_model *d)
{
  engine_destroy (d->e);
  tierset_destroy (d->ts);
  free (d->model);
  free (d->mapped);
  free (d->buf);
}

struct tier_stats
test_model_stats (struct test_model *d, unsigned id)
{
  return test_raw_stats (d->ts, id);
}

uint64_t
test_model_used (struct test_model *d, const char *where)
{
  uint64_t used = 0;
  unsigned i;

  test_check_counts (d->ts, where);
  for (i = 0; i < d->n; i++)
    used += test_model_stats (d, i).used;
  return used;
}

uint64_t
test_model_mapped (const struct test_model *d)
{
  uint64_t page, n = 0;

  for (page = 0; page < d->npages; page++)
    n += d->mapped[page];
  return n;
}

int
test_extent_fn (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct test_extents *x = opaque;

  TEST_REQUIRE (x->n < TEST_MAX_EXTENTS, "too many extents");
  x->offset[x->n] = offset;
  x->length[x->n] = length;
  x->hole[x->n] = hole;
  x->n++;
  return x->stop_after > 0 && x->n == x->stop_after ? -1 : 0;
}

void
test_model_check_extents (struct test_model *d, const char *where)
{
  static struct test_extents x;
  uint64_t next = 0;
  unsigned i;

  memset (&x, 0, sizeof x);
  TEST_REQUIRE (engine_extents (d->e, d->size, 0, test_extent_fn, &x) == 0,
                "%s: extents: %s", where, strerror (errno));
  for (i = 0; i < x.n; i++) {
    uint64_t page;

    TEST_REQUIRE (x.offset[i] == next && x.length[i] > 0 &&
                  x.length[i] % PAGE_SIZE == 0,
                  "%s: extent %u is %" PRIu64 "+%" PRIu64 ", expected it "
                  "at %" PRIu64, where, i, x.offset[i], x.length[i], next);
    TEST_REQUIRE (i == 0 || x.hole[i] != x.hole[i - 1],
                  "%s: extents %u and %u are both %s", where, i - 1, i,
                  x.hole[i] ? "holes" : "data");
    for (page = x.offset[i] / PAGE_SIZE;
         page < (x.offset[i] + x.length[i]) / PAGE_SIZE; page++)
      TEST_REQUIRE (x.hole[i] == !d->mapped[page],
                    "%s: page %" PRIu64 " is reported as %s", where, page,
                    x.hole[i] ? "a hole" : "data");
    next = x.offset[i] + x.length[i];
  }
  TEST_REQUIRE (next == d->size, "%s: extents end at %" PRIu64
                " of %" PRIu64, where, next, d->size);
}

void
test_model_check (struct test_model *d, const char *where)
{
  uint64_t used = test_model_used (d, where);
  uint64_t mapped = test_model_mapped (d);

  TEST_REQUIRE (used == mapped, "%s: %" PRIu64 " slots in use for %" PRIu64
                " mapped pages", where, used, mapped);
  memset (d->buf, 0xa5, d->size);
  TEST_REQUIRE (engine_read (d->e, d->buf, d->size, 0) == 0,
                "%s: read of the device: %s", where, strerror (errno));
  TEST_REQUIRE (memcmp (d->buf, d->model, d->size) == 0,
                "%s: the device differs from the model", where);
  test_model_check_extents (d, where);
}

void
test_model_write (struct test_model *d, const void *src, uint32_t count,
                  uint64_t offset, const char *where)
{
  uint64_t page;

  TEST_REQUIRE (engine_write (d->e, src, count, offset, false) == 0,
                "%s: write of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, count, offset, strerror (errno));
  memcpy (d->model + offset, src, count);
  for (page = offset / PAGE_SIZE;
       page * PAGE_SIZE < offset + count; page++)
    d->mapped[page] = true;
}

void
test_model_clear (struct test_model *d, enum test_clear how, uint32_t count,
                  uint64_t offset, const char *where)
{
  uint64_t page, end = offset + count;
  int r;

  if (how == TEST_TRIM)
    r = engine_trim (d->e, count, offset, false);
  else
    r = engine_zero (d->e, count, offset, false, how == TEST_ZERO);
  TEST_REQUIRE (r == 0, "%s: %s of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, how == TEST_TRIM ? "trim" : "zero", count, offset,
                strerror (errno));
  if (how != TEST_TRIM)
    memset (d->model + offset, 0, count);
  if (how == TEST_ZERO_KEEP) {
    for (page = offset / PAGE_SIZE; page * PAGE_SIZE < end; page++)
      d->mapped[page] = true;
    return;
  }
  for (page = (offset + PAGE_SIZE - 1) / PAGE_SIZE;
       (page + 1) * PAGE_SIZE <= end; page++) {
    memset (d->model + page * PAGE_SIZE, 0, PAGE_SIZE);
    d->mapped[page] = false;
  }
}

void
test_model_read (struct test_model *d, void *dst, uint32_t count,
                 uint64_t offset, const char *where)
{
  TEST_REQUIRE (engine_read (d->e, dst, count, offset) == 0,
                "%s: read of %" PRIu32 " bytes at %" PRIu64 ": %s",
                where, count, offset, strerror (errno));
  TEST_REQUIRE (memcmp (dst, d->model + offset, count) == 0,
                "%s: read of %" PRIu32 " bytes at %" PRIu64 " differs from "
                "the model", where, count, offset);
}

struct mem_counters
test_model_counters (struct test_model *d, unsigned i)
{
  struct mem_counters c;

  mem_backend_counters (d->be[i], &c);
  return c;
}
