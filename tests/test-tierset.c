/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the tier set (lib/tierset), over in-memory
 * backends: its addresses and how it allocates slots.
 *
 * They check the contract written in tierset.h and the allocation rules
 * of DESIGN.md: global addresses with a gap between backends, I/O
 * routed to the owning backend, highest priority first, round robin
 * inside a priority, preference for a backend with a full run, the
 * avoid argument, used + free + bad = capacity after every operation
 * (invariant 5), and bad slots never handed out again (invariant 2).
 * Backend errors and health, flushes, trims and the backends that
 * tierset_add refuses are the matter of test-tierset-errors.c.
 *
 * The randomized test replays its operations on a model (the state of
 * every slot) and uses a fixed seed; set TIERSET_TEST_SEED to another
 * number to explore, or to the seed printed by a failure to replay it.
 */

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

/* The randomized test: rounds of operations, each on a new tier set of
 * TEST_RANDOM_TIERS backends (so that bad slots, which accumulate, never
 * take over), and the largest run asked for.
 */
#define TEST_RANDOM_ROUNDS 10
#define TEST_RANDOM_OPS 10000
#define TEST_RANDOM_TIERS 3
#define TEST_RANDOM_MAX_RUN 16

/* Each round goes through phases that steer the use of the slots towards
 * a target: below it, 70 operations out of 100 allocate; at or above it,
 * 30 do.  The others free slots, but for 2 out of 100 that mark slots bad.
 */
#define TEST_PHASE_OPS 2500
static const unsigned test_phase_target[] = { 30, 70, 95, 100 }; /* % */
#define TEST_NPHASES \
  (sizeof test_phase_target / sizeof test_phase_target[0])

/* Seed of the randomized test (TIERSET_TEST_SEED overrides it). */
static uint64_t test_seed = UINT64_C (0x71e25e7);

/* Global addresses start at 1 and leave one unused address between
 * backends; the stats describe each backend as added; every slot handed
 * out lies inside its backend and is handed out once.
 */
START_TEST (test_addresses)
{
  static const uint64_t nslots[] = { 1, 5, 64, 100, 3 };
  static const int priority[] = { 0, 7, 7, -1, 32767 };
  const unsigned n = sizeof nslots / sizeof nslots[0];
  struct test_set set;
  uint64_t total = 0, allocated = 0;
  unsigned i;
  uint32_t len;
  bool *seen;
  slot_t s;

  test_set_create (&set, 3, n, nslots, priority);
  for (i = 0; i < n; i++) {
    struct tier_stats st = test_stats (set.ts, i);

    ck_assert_uint_eq (st.id, i);
    ck_assert_str_eq (st.kind, "mem");
    ck_assert_str_eq (st.target, set.be[i]->target);
    ck_assert_int_eq (st.priority, priority[i]);
    ck_assert_int_eq (st.state, TIER_ACTIVE);
    ck_assert_uint_eq (st.capacity, nslots[i]);
    ck_assert_uint_eq (st.used, 0);
    ck_assert_uint_eq (st.free, nslots[i]);
    ck_assert_uint_eq (st.bad, 0);
    ck_assert_uint_eq (st.reads + st.writes + st.errors, 0);
    if (i == 0)
      ck_assert_uint_eq (st.first, 1);
    else {
      struct tier_stats prev = test_stats (set.ts, i - 1);

      ck_assert_uint_eq (st.first, prev.first + prev.capacity + 1);
    }
    total += nslots[i];
  }
  ck_assert_uint_eq (tierset_capacity (set.ts), total);

  /* Every address up to the last slot, gaps included, fits in seen. */
  seen = calloc (total + n + 1, sizeof *seen);
  ck_assert_ptr_nonnull (seen);
  while ((s = tierset_alloc_run (set.ts, 1, &len, SLOT_NONE, 0,
                                  TIERSET_ANY_WINDOW)) != SLOT_NONE) {
    test_owner (set.ts, s);
    ck_assert_uint_le (s, total + n);
    ck_assert_msg (!seen[s], "slot %" PRIu32 " handed out twice", s);
    seen[s] = true;
    allocated++;
  }
  ck_assert_uint_eq (allocated, total);
  test_check_counts (set.ts, "full");
  free (seen);
  tierset_destroy (set.ts);
}
END_TEST

/* Reads and writes reach the owning backend at the slot relative to its
 * first address, pass FUA on, and are counted on that backend.
 */
START_TEST (test_io_routing)
{
  static const uint64_t nslots[] = { 8, 8 };
  static const int priority[] = { 0, 0 };
  struct test_set set;
  struct tier_stats st;
  struct mem_counters c;
  char *buf, *peek;
  slot_t s = SLOT_NONE;
  unsigned taken = 0;

  test_set_create (&set, 3, 2, nslots, priority);
  buf = test_common_alloc (2 * PAGE_SIZE);
  peek = test_common_alloc (PAGE_SIZE);

  /* Allocate until backend 1 hands out its second slot, its slot 1. */
  while (taken < 2) {
    slot_t t;

    if (test_alloc_one (set.ts, &t) == 1) {
      s = t;
      taken++;
    }
  }
  st = test_stats (set.ts, 1);
  ck_assert_uint_eq (s - st.first, 1);

  memset (buf, 'a', PAGE_SIZE);
  ck_assert_int_eq (tierset_write (set.ts, s, 1, buf, true), 0);
  mem_backend_peek (set.be[1], 1, peek);
  ck_assert_mem_eq (peek, buf, PAGE_SIZE);
  mem_backend_counters (set.be[1], &c);
  ck_assert_uint_eq (c.writes, 1);
  ck_assert_uint_eq (c.fua_writes, 1);
  mem_backend_counters (set.be[0], &c);
  ck_assert_uint_eq (c.writes, 0);

  memset (buf, 0, PAGE_SIZE);
  ck_assert_int_eq (tierset_read (set.ts, s, 1, buf, 1), 0);
  mem_backend_peek (set.be[1], 1, peek);
  ck_assert_mem_eq (buf, peek, PAGE_SIZE);
  st = test_stats (set.ts, 1);
  ck_assert_uint_eq (st.reads, 1);
  ck_assert_uint_eq (st.writes, 1);
  ck_assert_uint_eq (st.read_slots, 1);
  ck_assert_uint_eq (st.write_slots, 1);
  ck_assert_uint_eq (st.errors, 0);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.reads + st.writes, 0);

  free (buf);
  free (peek);
  tierset_destroy (set.ts);
}
END_TEST

/* The higher priority number is used first; a lower priority gets slots
 * only once every higher one is full, and a slot freed in a higher
 * priority is used again before any lower one.
 */
START_TEST (test_priorities)
{
  static const uint64_t nslots[] = { 8, 8, 8 };
  static const int priority[] = { 0, 5, -1 };
  static const unsigned order[] = { 1, 0, 2 };
  struct test_set set;
  slot_t s, kept[3];
  uint32_t len;
  unsigned i, k;

  test_set_create (&set, 3, 3, nslots, priority);
  for (k = 0; k < 3; k++)
    for (i = 0; i < 8; i++) {
      ck_assert_uint_eq (test_alloc_one (set.ts, &s), order[k]);
      kept[order[k]] = s;
    }
  ck_assert_int_eq (test_alloc (set.ts, 1, SLOT_NONE, &s, &len), -1);

  /* Free one slot of priority 0, then one of priority -1, then one of 5. */
  tierset_free_run (set.ts, kept[0], 1);
  tierset_free_run (set.ts, kept[2], 1);
  tierset_free_run (set.ts, kept[1], 1);
  test_check_counts (set.ts, "free");
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 1);
  ck_assert_uint_eq (s, kept[1]);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 0);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 2);
  tierset_destroy (set.ts);
}
END_TEST

/* Consecutive allocations rotate among backends of equal priority, so
 * that they share the load exactly; a lower priority gets nothing
 * meanwhile.  Runs rotate in the same way.
 */
START_TEST (test_round_robin)
{
  static const uint64_t nslots[] = { 300, 300, 300, 50 };
  static const int priority[] = { 2, 2, 2, 1 };
  static const uint64_t run_nslots[] = { 64, 64 };
  static const int run_priority[] = { 3, 3 };
  struct test_set set;
  unsigned i, owner, prev = 0;
  uint64_t share[3] = { 0 };
  uint32_t len;
  slot_t s;

  test_set_create (&set, 3, 4, nslots, priority);
  for (i = 0; i < 900; i++) {
    owner = test_alloc_one (set.ts, &s);
    ck_assert_uint_lt (owner, 3);
    if (i > 0)
      TEST_REQUIRE (owner == (prev + 1) % 3, "allocation %u went to "
                    "backend %u after backend %u", i, owner, prev);
    share[owner]++;
    prev = owner;
  }
  for (i = 0; i < 3; i++) {
    ck_assert_uint_eq (share[i], 300);
    ck_assert_uint_eq (test_stats (set.ts, i).used, 300);
  }
  ck_assert_uint_eq (test_stats (set.ts, 3).used, 0);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 3);
  tierset_destroy (set.ts);

  test_set_create (&set, 3, 2, run_nslots, run_priority);
  for (i = 0; i < 16; i++) {
    int r = test_alloc (set.ts, 4, SLOT_NONE, &s, &len);

    ck_assert_int_ge (r, 0);
    ck_assert_uint_eq (len, 4);
    if (i > 0)
      ck_assert_uint_eq (r, 1 - prev);
    prev = r;
  }
  ck_assert_uint_eq (test_stats (set.ts, 0).used, 32);
  ck_assert_uint_eq (test_stats (set.ts, 1).used, 32);
  tierset_destroy (set.ts);
}
END_TEST

/* Inside a priority, a backend with a free run of max slots is preferred
 * to a shorter run on the backend whose turn it is, whichever backend
 * the rotation points at; with no run of max anywhere, a shorter run is
 * returned rather than nothing, and a lower priority is still not used.
 */
START_TEST (test_prefer_full_run)
{
  static const uint64_t nslots[] = { 16, 16, 16 };
  static const int priority[] = { 1, 1, 0 };
  struct test_set set;
  slot_t s, runs[4];
  uint32_t len;
  unsigned i;

  test_set_create (&set, 3, 3, nslots, priority);
  /* Fill backends 0 and 1 with four runs of 8. */
  for (i = 0; i < 4; i++) {
    int owner = test_alloc (set.ts, 8, SLOT_NONE, &runs[i], &len);

    ck_assert (owner == 0 || owner == 1);
    ck_assert_uint_eq (len, 8);
  }
  /* Two single holes on one backend, a run of 8 on the other. */
  for (i = 0; i < 4; i++)
    if (test_owner (set.ts, runs[i]) == 0)
      break;
  ck_assert_uint_lt (i, 4);
  tierset_free_run (set.ts, runs[i] + 2, 1);
  tierset_free_run (set.ts, runs[i] + 5, 1);
  for (i = 0; i < 4; i++)
    if (test_owner (set.ts, runs[i]) == 1)
      break;
  ck_assert_uint_lt (i, 4);
  tierset_free_run (set.ts, runs[i], 8);
  test_check_counts (set.ts, "holes");

  /* Twice, so that the rotation points at each backend once. */
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq (test_alloc (set.ts, 8, SLOT_NONE, &s, &len), 1);
    ck_assert_uint_eq (len, 8);
    tierset_free_run (set.ts, s, len);
  }
  /* Take the run of 8, then runs of 8 are nowhere in priority 1. */
  ck_assert_int_eq (test_alloc (set.ts, 8, SLOT_NONE, &s, &len), 1);
  ck_assert_int_eq (test_alloc (set.ts, 8, SLOT_NONE, &s, &len), 0);
  ck_assert_uint_eq (len, 1);
  ck_assert_int_eq (test_alloc (set.ts, 8, SLOT_NONE, &s, &len), 0);
  ck_assert_uint_eq (len, 1);
  ck_assert_int_eq (test_alloc (set.ts, 8, SLOT_NONE, &s, &len), 2);
  ck_assert_uint_eq (len, 8);
  tierset_destroy (set.ts);
}
END_TEST

/* The backend holding avoid is passed over while any other backend, of
 * any priority, has a free slot, and used when it is the only one left.
 */
START_TEST (test_avoid)
{
  static const uint64_t nslots[] = { 8, 8, 4 };
  static const int priority[] = { 1, 1, 0 };
  struct test_set set;
  slot_t s, in0, in1;
  uint32_t len;
  unsigned i;

  test_set_create (&set, 3, 3, nslots, priority);
  do
    test_alloc_one (set.ts, &in0);
  while (test_owner (set.ts, in0) != 0);
  do
    test_alloc_one (set.ts, &in1);
  while (test_owner (set.ts, in1) != 1);

  /* Whatever the rotation, avoid steers away from backend 0. */
  for (i = 0; i < 4; i++) {
    ck_assert_int_eq (test_alloc (set.ts, 1, in0, &s, &len), 1);
    tierset_free_run (set.ts, s, len);
  }
  /* Fill backend 1: avoiding 0 now means backend 2, of lower priority. */
  while (test_stats (set.ts, 1).free > 0)
    test_alloc (set.ts, 1, in0, &s, &len);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq (test_alloc (set.ts, 1, in0, &s, &len), 2);
  /* Backend 0 is the last one with free slots: avoid gives way. */
  ck_assert_int_eq (test_alloc (set.ts, 1, in0, &s, &len), 0);
  /* Avoiding a full backend changes nothing. */
  ck_assert_int_eq (test_alloc (set.ts, 1, in1, &s, &len), 0);
  tierset_destroy (set.ts);
}
END_TEST

/* Freeing and marking bad move slots between the counters as documented,
 * and bad slots are never handed out again, even when the backend is
 * otherwise full.
 */
START_TEST (test_accounting)
{
  static const uint64_t nslots[] = { 10 };
  static const int priority[] = { 0 };
  struct test_set set;
  struct tier_stats st;
  slot_t s, run, bad0;
  uint32_t len;
  unsigned i;

  test_set_create (&set, 3, 1, nslots, priority);
  ck_assert_int_eq (test_alloc (set.ts, 4, SLOT_NONE, &run, &len), 0);
  ck_assert_uint_eq (len, 4);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.used, 4);
  ck_assert_uint_eq (st.free, 6);

  bad0 = run + 1;
  tierset_mark_bad (set.ts, bad0, 2);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.used, 2);
  ck_assert_uint_eq (st.bad, 2);
  ck_assert_uint_eq (st.free, 6);

  tierset_free_run (set.ts, run, 1);
  tierset_free_run (set.ts, run + 3, 1);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.used, 0);
  ck_assert_uint_eq (st.bad, 2);
  ck_assert_uint_eq (st.free, 8);

  /* The 8 good slots can be allocated, never the 2 bad ones. */
  for (i = 0; i < 8; i++) {
    test_alloc_one (set.ts, &s);
    ck_assert_msg (s != bad0 && s != bad0 + 1,
                   "bad slot %" PRIu32 " handed out again", s);
  }
  ck_assert_int_eq (test_alloc (set.ts, 1, SLOT_NONE, &s, &len), -1);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.used, 8);
  ck_assert_uint_eq (st.free, 0);
  ck_assert_uint_eq (st.bad, 2);
  tierset_destroy (set.ts);
}
END_TEST

/* States of a slot in the model. */
enum model_state { MODEL_FREE, MODEL_USED, MODEL_BAD };

/* A run of used slots the randomized test may free or mark bad. */
struct model_run {
  slot_t first;
  uint32_t n;
};

/* The model of one round of the randomized test. */
struct model {
  struct test_set set;
  slot_t first[TEST_RANDOM_TIERS];
  uint64_t nslots[TEST_RANDOM_TIERS];
  int priority[TEST_RANDOM_TIERS];
  unsigned char *state[TEST_RANDOM_TIERS]; /* enum model_state per slot */
  uint64_t used[TEST_RANDOM_TIERS], bad[TEST_RANDOM_TIERS];
  struct model_run *runs;              /* every used slot, in runs */
  unsigned nruns;
  uint64_t rng;
  char where[64];
};

/* The backend of the model owning global address s, or -1. */
static int
model_owner (const struct model *m, slot_t s)
{
  unsigned i;

  for (i = 0; i < TEST_RANDOM_TIERS; i++)
    if (s >= m->first[i] && s - m->first[i] < m->nslots[i])
      return i;
  return -1;
}

/* Free slots of backend i in the model. */
static uint64_t
model_free (const struct model *m, unsigned i)
{
  return m->nslots[i] - m->used[i] - m->bad[i];
}

/* Length of the longest run of free slots of backend i in the model. */
static uint64_t
model_largest_run (const struct model *m, unsigned i)
{
  uint64_t j, len = 0, largest = 0;

  for (j = 0; j < m->nslots[i]; j++) {
    len = m->state[i][j] == MODEL_FREE ? len + 1 : 0;
    if (len > largest)
      largest = len;
  }
  return largest;
}

/* Set the n slots from global address s to state, checking that each
 * was in state from before.
 */
static void
model_change (struct model *m, slot_t s, uint32_t n, enum model_state from,
              enum model_state to)
{
  int i = model_owner (m, s);
  uint32_t k;

  TEST_REQUIRE (i >= 0, "%s: slot %" PRIu32 " has no backend", m->where, s);
  for (k = 0; k < n; k++) {
    unsigned char *st = &m->state[i][s + k - m->first[i]];

    TEST_REQUIRE (*st == from, "%s: slot %" PRIu32 " is in state %d, "
                  "expected %d", m->where, s + k, *st, from);
    *st = to;
  }
  if (from == MODEL_USED)
    m->used[i] -= n;
  if (to == MODEL_USED)
    m->used[i] += n;
  if (to == MODEL_BAD)
    m->bad[i] += n;
}

/* Check the stats of every backend against the model. */
static void
model_check_stats (struct model *m)
{
  unsigned i;

  test_check_counts (m->set.ts, m->where);
  for (i = 0; i < TEST_RANDOM_TIERS; i++) {
    struct tier_stats st = test_raw_stats (m->set.ts, i);

    TEST_REQUIRE (st.used == m->used[i] && st.bad == m->bad[i] &&
                  st.free == model_free (m, i),
                  "%s: backend %u: used %" PRIu64 " free %" PRIu64
                  " bad %" PRIu64 ", expected %" PRIu64 " %" PRIu64
                  " %" PRIu64, m->where, i, st.used, st.free, st.bad,
                  m->used[i], model_free (m, i), m->bad[i]);
  }
}

/* Allocate a run of up to max slots, maybe avoiding a random used slot,
 * and check the answer against the rules: the highest priority that has
 * a free slot on a backend other than the avoided one (or the avoided one
 * if no other has any); a full run of max when a backend of that
 * priority has one; and only free slots.
 */
static void
model_alloc (struct model *m)
{
  uint32_t max = 1 + test_common_below (&m->rng, TEST_RANDOM_MAX_RUN), len = 0;
  slot_t avoid = SLOT_NONE, s;
  int avoided = -1, best = TIERSET_PRIORITY_MIN - 1, owner;
  bool candidate[TEST_RANDOM_TIERS], full_run = false, any = false;
  unsigned i;

  if (m->nruns > 0 && test_common_below (&m->rng, 4) == 0) {
    const struct model_run *r =
      &m->runs[test_common_below (&m->rng, m->nruns)];

    avoid = r->first + test_common_below (&m->rng, r->n);
    avoided = model_owner (m, avoid);
  }
  for (i = 0; i < TEST_RANDOM_TIERS; i++) {
    candidate[i] = model_free (m, i) > 0 && (int) i != avoided;
    any |= candidate[i];
  }
  if (!any && avoided >= 0 && model_free (m, avoided) > 0)
    candidate[avoided] = any = true;
  for (i = 0; i < TEST_RANDOM_TIERS; i++)
    if (candidate[i] && m->priority[i] > best)
      best = m->priority[i];
  for (i = 0; i < TEST_RANDOM_TIERS; i++)
    if (candidate[i] && m->priority[i] == best &&
        model_largest_run (m, i) >= max)
      full_run = true;

  s = tierset_alloc_run (m->set.ts, max, &len, avoid, 0,
                         TIERSET_ANY_WINDOW);
  if (s == SLOT_NONE) {
    TEST_REQUIRE (!any, "%s: alloc of %" PRIu32 " failed with free slots",
                  m->where, max);
    return;
  }
  TEST_REQUIRE (any, "%s: alloc returned %" PRIu32 " with no free slot",
                m->where, s);
  owner = model_owner (m, s);
  TEST_REQUIRE (owner >= 0 && candidate[owner] &&
                m->priority[owner] == best,
                "%s: alloc of %" PRIu32 " (avoiding backend %d) went to "
                "backend %d, priority %d expected", m->where, max, avoided,
                owner, best);
  TEST_REQUIRE (len >= 1 && len <= max && (len == max || !full_run),
                "%s: alloc of %" PRIu32 " returned %" PRIu32 " slots%s",
                m->where, max, len, full_run ? " (a full run was free)" : "");
  TEST_REQUIRE (s - m->first[owner] + len <= m->nslots[owner],
                "%s: run %" PRIu32 "+%" PRIu32 " crosses a backend end",
                m->where, s, len);
  model_change (m, s, len, MODEL_FREE, MODEL_USED);
  m->runs[m->nruns++] = (struct model_run) { .first = s, .n = len };
}

/* Take a random piece of at most most slots out of a random used run,
 * or the whole run half of the time if it is not longer: remove it from
 * the runs (the rest of the run stays) and return it.
 */
static struct model_run
model_take_piece (struct model *m, uint32_t most)
{
  unsigned k = test_common_below (&m->rng, m->nruns);
  struct model_run r = m->runs[k];
  uint32_t off = test_common_below (&m->rng, r.n);
  uint32_t n =
    1 + test_common_below (&m->rng, r.n - off < most ? r.n - off : most);

  if (r.n <= most && test_common_below (&m->rng, 2) == 0) {
    off = 0;
    n = r.n;
  }

  m->runs[k] = m->runs[--m->nruns];
  if (off > 0)
    m->runs[m->nruns++] = (struct model_run) { .first = r.first, .n = off };
  if (off + n < r.n)
    m->runs[m->nruns++] = (struct model_run) {
      .first = r.first + off + n, .n = r.n - off - n,
    };
  return (struct model_run) { .first = r.first + off, .n = n };
}

/* One round of the randomized test: a new set of three backends with
 * random sizes and priorities (equal ones included), then TEST_RANDOM_OPS
 * allocations, frees and markings of bad slots, checked against the model
 * after every operation.
 */
static void
model_round (unsigned round)
{
  struct model m = { .rng = test_seed + round };
  unsigned i, op;
  uint64_t total = 0;

  for (i = 0; i < TEST_RANDOM_TIERS; i++) {
    m.nslots[i] = 200 + test_common_below (&m.rng, 800);
    m.priority[i] = test_common_below (&m.rng, 2);
    m.state[i] = calloc (m.nslots[i], 1);
    ck_assert_ptr_nonnull (m.state[i]);
    total += m.nslots[i];
  }
  test_set_create (&m.set, 3, TEST_RANDOM_TIERS, m.nslots, m.priority);
  for (i = 0; i < TEST_RANDOM_TIERS; i++)
    m.first[i] = test_stats (m.set.ts, i).first;
  test_common_quiet = true;
  /* Every used slot is in at most one run, each a slot or more. */
  m.runs = calloc (total, sizeof *m.runs);
  ck_assert_ptr_nonnull (m.runs);

  for (op = 0; op < TEST_RANDOM_OPS; op++) {
    unsigned target = test_phase_target[(op / TEST_PHASE_OPS) % TEST_NPHASES];
    unsigned alloc_pct, dice = test_common_below (&m.rng, 100);
    uint64_t used = 0;

    for (i = 0; i < TEST_RANDOM_TIERS; i++)
      used += m.used[i];
    alloc_pct = used * 100 < target * total ? 70 : 30;

    snprintf (m.where, sizeof m.where, "round %u op %u", round, op);
    if (dice < alloc_pct || m.nruns == 0)
      model_alloc (&m);
    else if (dice < 98) {
      struct model_run r = model_take_piece (&m, UINT32_MAX);

      tierset_free_run (m.set.ts, r.first, r.n);
      model_change (&m, r.first, r.n, MODEL_USED, MODEL_FREE);
    }
    else {
      struct model_run r = model_take_piece (&m, 2);

      tierset_mark_bad (m.set.ts, r.first, r.n);
      model_change (&m, r.first, r.n, MODEL_USED, MODEL_BAD);
    }
    model_check_stats (&m);
  }

  tierset_destroy (m.set.ts);
  for (i = 0; i < TEST_RANDOM_TIERS; i++)
    free (m.state[i]);
  free (m.runs);
}

/* Random mixes of allocations, frees and bad markings over three
 * backends: every answer follows the allocation rules, the counters match
 * the model after every operation, and no bad or used slot is ever
 * handed out (model_change checks that each allocated slot was free).
 */
START_TEST (test_random)
{
  model_round (_i);
}
END_TEST

/* The suite of tier set allocation tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("tierset");
  TCase *tc;

  tc = tcase_create ("addresses");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_addresses);
  tcase_add_test (tc, test_io_routing);
  suite_add_tcase (s, tc);

  tc = tcase_create ("allocation");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_priorities);
  tcase_add_test (tc, test_round_robin);
  tcase_add_test (tc, test_prefer_full_run);
  tcase_add_test (tc, test_avoid);
  tcase_add_test (tc, test_accounting);
  suite_add_tcase (s, tc);

  tc = tcase_create ("random");
  tcase_set_timeout (tc, 120);
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_loop_test (tc, test_random, 0, TEST_RANDOM_ROUNDS);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  return test_common_main ("test-tierset", test_suite, "TIERSET_TEST_SEED",
                           &test_seed);
}
