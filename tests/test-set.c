/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a tier set over in-memory backends. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "mem-backend.h"
#include "page.h"
#include "test-common.h"
#include "test-set.h"
#include "tierset.h"

void
test_set_create (struct test_set *set, unsigned max_errors, unsigned n,
                 const uint64_t *nslots, const int *priority)
{
  unsigned i;

  ck_assert_uint_le (n, TEST_MAX_BACKENDS);
  set->ts = tierset_create (max_errors);
  ck_assert_ptr_nonnull (set->ts);
  set->n = n;
  for (i = 0; i < n; i++) {
    char name[32];

    snprintf (name, sizeof name, "mem%u", i);
    set->be[i] = mem_backend_create (name, nslots[i]);
    ck_assert_int_eq (tierset_add (set->ts, set->be[i], priority[i]), i);
  }
  ck_assert_uint_eq (tierset_count (set->ts), n);
}

struct tier_stats
test_raw_stats (struct tierset *ts, unsigned id)
{
  struct tier_stats st;

  TEST_REQUIRE (tierset_stats (ts, id, &st), "backend %u has no stats", id);
  return st;
}

void
test_check_counts (struct tierset *ts, const char *where)
{
  unsigned i, n = tierset_count (ts);

  for (i = 0; i < n; i++) {
    struct tier_stats st = test_raw_stats (ts, i);

    TEST_REQUIRE (st.used + st.free + st.bad == st.capacity,
                  "%s: backend %u: used %" PRIu64 " + free %" PRIu64
                  " + bad %" PRIu64 " != capacity %" PRIu64,
                  where, i, st.used, st.free, st.bad, st.capacity);
  }
}

struct tier_stats
test_stats (struct tierset *ts, unsigned id)
{
  test_check_counts (ts, "stats");
  return test_raw_stats (ts, id);
}

unsigned
test_owner (struct tierset *ts, slot_t s)
{
  unsigned i, n = tierset_count (ts);

  for (i = 0; i < n; i++) {
    struct tier_stats st = test_raw_stats (ts, i);

    if (s >= st.first && s - st.first < st.capacity)
      return i;
  }
  ck_abort_msg ("slot %" PRIu32 " belongs to no backend", s);
}

int
test_alloc (struct tierset *ts, uint32_t max, slot_t avoid, slot_t *first,
            uint32_t *len)
{
  unsigned owner;
  struct tier_stats st;

  *len = 0;
  *first = tierset_alloc_run (ts, max, len, avoid, 0, TIERSET_ANY_WINDOW);
  test_check_counts (ts, "alloc");
  if (*first == SLOT_NONE)
    return -1;
  TEST_REQUIRE (*len >= 1 && *len <= max, "alloc of up to %" PRIu32
                " slots returned %" PRIu32, max, *len);
  owner = test_owner (ts, *first);
  st = test_raw_stats (ts, owner);
  TEST_REQUIRE (*first - st.first + *len <= st.capacity,
                "run %" PRIu32 "+%" PRIu32 " crosses the end of backend %u",
                *first, *len, owner);
  return owner;
}

unsigned
test_alloc_one (struct tierset *ts, slot_t *s)
{
  uint32_t len;
  int owner = test_alloc (ts, 1, SLOT_NONE, s, &len);

  ck_assert_int_ge (owner, 0);
  return owner;
}
