/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a device over in-memory backends. */

#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-dev.h"

unsigned test_max_errors = 1000;

void
test_dev_create (struct test_dev *d, unsigned n, const uint64_t *nslots,
                 const char *const *dom, const int *prio, uint64_t npages,
                 unsigned copies, bool serve)
{
  unsigned i;

  ck_assert_uint_le (n, TEST_MAX);
  memset (d, 0, sizeof *d);
  d->ts = tierset_create (test_max_errors);
  ck_assert_ptr_nonnull (d->ts);
  for (i = 0; i < n; i++) {
    char name[16];

    snprintf (name, sizeof name, "mem%u", i);
    d->be[i] = mem_backend_create (name, nslots[i]);
    ck_assert_int_eq (tierset_add_domain (d->ts, d->be[i],
                                          prio ? prio[i] : 0, dom[i]), i);
  }
  d->n = n;
  d->e = engine_create (d->ts, npages, TEST_STRIPE, copies);
  ck_assert_ptr_nonnull (d->e);
  if (serve)
    ck_assert_int_eq (engine_serve (d->e), 0);
}

void
test_dev_destroy (struct test_dev *d)
{
  engine_destroy (d->e);
  tierset_destroy (d->ts);
}

struct tier_stats
test_stats (struct test_dev *d, unsigned id)
{
  struct tier_stats st;

  ck_assert (tierset_stats (d->ts, id, &st));
  return st;
}

void
test_fill_range (struct test_dev *d, uint64_t first, uint64_t n,
                 unsigned gen)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t page;
  size_t i;

  for (page = first; page < first + n; page++) {
    for (i = 0; i < PAGE_SIZE / 8; i++)
      buf[i] = page << 32 | (uint64_t) gen << 16 | i;
    ck_assert_int_eq (engine_write (d->e, buf, PAGE_SIZE, page * PAGE_SIZE,
                                    false), 0);
  }
  free (buf);
}

void
test_fill (struct test_dev *d, uint64_t n, unsigned gen)
{
  test_fill_range (d, 0, n, gen);
}

unsigned
test_check_range (struct test_dev *d, uint64_t first, uint64_t n,
                  unsigned gen)
{
  uint64_t *buf = test_common_alloc (PAGE_SIZE);
  uint64_t page;
  unsigned failed = 0;
  size_t i;

  for (page = first; page < first + n; page++) {
    if (engine_read (d->e, buf, PAGE_SIZE, page * PAGE_SIZE) == -1) {
      failed++;
      continue;
    }
    for (i = 0; i < PAGE_SIZE / 8; i++)
      TEST_REQUIRE (buf[i] == (page << 32 | (uint64_t) gen << 16 | i),
                    "page %" PRIu64 " word %zu is %#" PRIx64, page, i,
                    buf[i]);
  }
  free (buf);
  return failed;
}

unsigned
test_check (struct test_dev *d, uint64_t n, unsigned gen)
{
  return test_check_range (d, 0, n, gen);
}

unsigned
test_backend_of (struct test_dev *d, slot_t s)
{
  unsigned i;

  for (i = d->n; i-- > 0; )
    if (s >= test_stats (d, i).first)
      return i;
  ck_abort_msg ("slot %" PRIu32 " is on no backend", s);
  return 0;
}

void
test_flip_copy (struct test_dev *d, uint64_t page, unsigned c, size_t at,
                unsigned char mask)
{
  slot_t s = pagemap_get (d->e->map, page, c);
  unsigned b = test_backend_of (d, s);
  unsigned char *buf = test_common_alloc (PAGE_SIZE);

  mem_backend_peek (d->be[b], s - test_stats (d, b).first, buf);
  buf[at] ^= mask;
  mem_backend_poke (d->be[b], s - test_stats (d, b).first, buf);
  free (buf);
}

void
test_sleep_ms (unsigned ms)
{
  nanosleep (&(struct timespec) { .tv_sec = ms / 1000,
                                  .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

struct drain_status
test_drain_wait (struct drain *dr)
{
  struct drain_status st;
  unsigned i;

  for (i = 0; i < 2000; i++) {
    drain_status (dr, &st);
    if (st.state != DRAIN_RUNNING)
      return st;
    test_sleep_ms (10);
  }
  ck_abort_msg ("the drain did not end");
  return st;
}

void
test_check_placement (struct test_dev *d, uint64_t n, unsigned want,
                      unsigned avoid)
{
  uint64_t page, slots = 0;
  unsigned c, i;

  for (page = 0; page < n; page++) {
    domain_mask seen = 0;
    unsigned live = 0;

    for (c = 0; c < d->e->copies; c++) {
      slot_t s = pagemap_get (d->e->map, page, c);
      domain_mask dom;

      if (s == SLOT_NONE || s == SLOT_LOST)
        continue;
      live++;
      dom = tierset_domain_of (d->ts, s);
      TEST_REQUIRE ((seen & dom) == 0, "page %" PRIu64 " has two copies "
                    "in one domain", page);
      seen |= dom;
      TEST_REQUIRE (test_backend_of (d, s) != avoid, "page %" PRIu64
                    " still has a copy on backend %u", page, avoid);
    }
    TEST_REQUIRE (live == want, "page %" PRIu64 " has %u live copies, not "
                  "%u", page, live, want);
  }
  for (i = 0; i < d->n; i++)
    if (i != avoid)
      slots += test_stats (d, i).used;
  ck_assert_uint_eq (slots, n * want);
  ck_assert_uint_eq (engine_mapped (d->e), n);
  ck_assert_uint_eq (engine_degraded (d->e), want < d->e->copies ? n : 0);
}

/* Slots in use over every backend, checking used + free + bad =
 * capacity on each.
 */
uint64_t
test_used (struct test_dev *d)
{
  uint64_t sum = 0;
  unsigned i;

  for (i = 0; i < d->n; i++) {
    struct tier_stats st = test_stats (d, i);

    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity,
                  "backend %u: used %" PRIu64 " + free %" PRIu64 " + bad %"
                  PRIu64 " != capacity %" PRIu64, i, st.used, st.free,
                  st.bad, st.capacity);
    sum += st.used;
  }
  return sum;
}

/* Live copies in the map. */
uint64_t
test_live_copies (struct test_dev *d)
{
  uint64_t p, n = 0;

  for (p = 0; p < engine_pages (d->e); p++)
    n += pagemap_live (d->e->map, p);
  return n;
}

/* Pages of the map with two live copies in one failure domain. */
uint64_t
test_domain_violations (struct test_dev *d)
{
  uint64_t p, bad = 0;
  unsigned c;

  for (p = 0; p < engine_pages (d->e); p++) {
    domain_mask seen = 0;
    bool dup = false;

    for (c = 0; c < d->e->copies; c++) {
      slot_t s = pagemap_get (d->e->map, p, c);
      domain_mask m;

      if (s == SLOT_NONE || s == SLOT_LOST)
        continue;
      m = tierset_domain_of (d->ts, s);
      dup |= (seen & m) != 0;
      seen |= m;
    }
    bad += dup;
  }
  return bad;
}

void
test_add_backends (struct test_dev *d, unsigned k, uint64_t nslots,
                   int prio, const char *const *dom)
{
  unsigned i;

  for (i = 0; i < k; i++) {
    char name[16];

    snprintf (name, sizeof name, "mem%u", d->n);
    d->be[d->n] = mem_backend_create (name, nslots);
    ck_assert_int_eq (tierset_add_domain (d->ts, d->be[d->n], prio, dom[i]),
                      d->n);
    d->n++;
  }
}
