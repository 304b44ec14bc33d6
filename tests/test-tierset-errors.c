/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the tier set (lib/tierset), over in-memory
 * backends: backend errors and health, flushes, trims, and the backends
 * it refuses to add.
 *
 * A backend fails after max_errors consecutive errors, or at its first
 * error once it is dead; a backend that is not up gets no allocations;
 * a failed one still serves reads.  Flushes reach only what was written
 * since the last one; trims reach the backend, and a trim whose outcome
 * is unknown leaves its slots bad.  Priorities out of range, too many
 * backends, or slots past the address space are refused.  Every stats
 * reading checks used + free + bad = capacity (invariant 5).  The
 * addresses and the allocation rules are the matter of test-tierset.c.
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

/* A backend fails after max_errors consecutive errors of one kind, reads
 * or writes; a success of the same kind starts the count again, one of
 * the other kind does not.  A failed backend gets no new allocations,
 * even with free slots, but still serves reads.
 */
START_TEST (test_failing)
{
  static const uint64_t nslots[] = { 16, 16 };
  static const int priority[] = { 1, 0 };
  struct test_set set;
  struct tier_stats st;
  char *buf, *data;
  slot_t s, s0;
  uint32_t len;
  unsigned i;

  buf = test_common_alloc (PAGE_SIZE);
  data = test_common_alloc (PAGE_SIZE);
  memset (data, 'd', PAGE_SIZE);

  test_set_create (&set, 3, 2, nslots, priority);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s0), 0);

  /* Two errors, a success, two errors: still active. */
  mem_backend_fail_all (set.be[0], MEM_FAIL_WRITE);
  for (i = 0; i < 2; i++) {
    errno = 0;
    ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), -1);
    ck_assert_int_eq (errno, EIO);
  }
  mem_backend_heal (set.be[0]);
  ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), 0);
  mem_backend_fail_all (set.be[0], MEM_FAIL_WRITE);
  for (i = 0; i < 2; i++)
    ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), -1);
  /* A read that works does not excuse the writes that keep failing. */
  ck_assert_int_eq (tierset_read (set.ts, s0, 1, buf, 1), 0);
  st = test_stats (set.ts, 0);
  ck_assert_int_eq (st.state, TIER_ACTIVE);
  ck_assert_str_eq (tier_state_name (st.state), "active");
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 0);

  /* The third in a row fails the backend. */
  ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), -1);
  st = test_stats (set.ts, 0);
  ck_assert_int_eq (st.state, TIER_FAILED);
  ck_assert_str_eq (tier_state_name (st.state), "failed");
  ck_assert_uint_eq (st.writes, 6);
  ck_assert_uint_eq (st.errors, 5);
  ck_assert_uint_eq (st.free, 14);

  /* Allocations spill to priority 0 until it is full, then stop. */
  for (i = 0; i < 16; i++)
    ck_assert_uint_eq (test_alloc_one (set.ts, &s), 1);
  ck_assert_int_eq (test_alloc (set.ts, 1, SLOT_NONE, &s, &len), -1);
  ck_assert_int_eq (test_alloc (set.ts, 1, s0, &s, &len), -1);

  /* Reads are still served, with the data of the last good write. */
  mem_backend_heal (set.be[0]);
  ck_assert_int_eq (tierset_read (set.ts, s0, 1, buf, 1), 0);
  ck_assert_mem_eq (buf, data, PAGE_SIZE);
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.reads, 2);
  ck_assert_int_eq (st.state, TIER_FAILED);
  tierset_destroy (set.ts);

  /* Read errors count too: with max_errors 2, two failed reads. */
  test_set_create (&set, 2, 2, nslots, priority);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s0), 0);
  mem_backend_fail_all (set.be[0], MEM_FAIL_READ);
  ck_assert_int_eq (tierset_read (set.ts, s0, 1, buf, 1), -1);
  ck_assert_int_eq (test_stats (set.ts, 0).state, TIER_ACTIVE);
  ck_assert_int_eq (tierset_read (set.ts, s0, 1, buf, 1), -1);
  ck_assert_int_eq (errno, EIO);
  ck_assert_int_eq (test_stats (set.ts, 0).state, TIER_FAILED);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 1);
  tierset_destroy (set.ts);

  free (buf);
  free (data);
}
END_TEST

/* Flush reaches only the backends written since their last flush; a
 * failed flush is reported, does not stop the others, and is tried again
 * at the next flush.
 */
START_TEST (test_flush)
{
  static const uint64_t nslots[] = { 4, 4, 4 };
  static const int priority[] = { 0, 0, 0 };
  struct test_set set;
  struct mem_counters c;
  slot_t s[3] = { SLOT_NONE, SLOT_NONE, SLOT_NONE };
  char *data;
  unsigned i;

  data = test_common_alloc (PAGE_SIZE);
  memset (data, 'f', PAGE_SIZE);
  test_set_create (&set, 3, 3, nslots, priority);
  /* One slot on each backend, as the rotation gives them. */
  for (i = 0; i < 3; i++) {
    slot_t slot;
    unsigned owner = test_alloc_one (set.ts, &slot);

    ck_assert_uint_eq (s[owner], SLOT_NONE);
    s[owner] = slot;
  }

  ck_assert_int_eq (tierset_flush (set.ts), 0);
  for (i = 0; i < 3; i++) {
    mem_backend_counters (set.be[i], &c);
    ck_assert_uint_eq (c.flushes, 0);
  }

  ck_assert_int_eq (tierset_write (set.ts, s[1], 1, data, false), 0);
  ck_assert_int_eq (tierset_flush (set.ts), 0);
  ck_assert_int_eq (tierset_flush (set.ts), 0);
  for (i = 0; i < 3; i++) {
    mem_backend_counters (set.be[i], &c);
    ck_assert_uint_eq (c.flushes, i == 1 ? 1 : 0);
  }

  /* Backend 0 fails to flush; backend 2 is flushed all the same. */
  mem_backend_fail_all (set.be[0], MEM_FAIL_FLUSH);
  ck_assert_int_eq (tierset_write (set.ts, s[0], 1, data, false), 0);
  ck_assert_int_eq (tierset_write (set.ts, s[2], 1, data, false), 0);
  errno = 0;
  ck_assert_int_eq (tierset_flush (set.ts), -1);
  ck_assert_int_eq (errno, EIO);
  mem_backend_counters (set.be[0], &c);
  ck_assert_uint_eq (c.flushes, 1);
  mem_backend_counters (set.be[2], &c);
  ck_assert_uint_eq (c.flushes, 1);
  ck_assert_uint_eq (test_stats (set.ts, 0).errors, 1);

  /* Only the backend whose flush failed is flushed again. */
  mem_backend_heal (set.be[0]);
  ck_assert_int_eq (tierset_flush (set.ts), 0);
  for (i = 0; i < 3; i++) {
    mem_backend_counters (set.be[i], &c);
    ck_assert_uint_eq (c.flushes, i == 0 ? 2 : 1);
  }
  tierset_destroy (set.ts);
  free (data);
}
END_TEST

/* tierset_trim_free reaches the owning backend at its own slot numbers
 * and frees the slots.  A trim that fails with a known outcome is counted
 * as an error and the slots are freed all the same, without failing the
 * backend however many fail in a row; a trim whose outcome is unknown
 * (ENOTCONN: the server may still execute it later, zeroing whatever
 * page the slots hold by then) leaves its slots bad, never reused.
 */
START_TEST (test_trim)
{
  static const uint64_t nslots[] = { 8, 8 };
  static const int priority[] = { 0, 0 };
  struct test_set set;
  struct mem_counters c;
  struct tier_stats st;
  unsigned char *peek;
  slot_t s;
  uint32_t len;

  peek = test_common_alloc (PAGE_SIZE);
  test_set_create (&set, 2, 2, nslots, priority);
  do
    ck_assert_int_ge (test_alloc (set.ts, 4, SLOT_NONE, &s, &len), 0);
  while (test_owner (set.ts, s) != 1);
  ck_assert_uint_eq (len, 4);

  tierset_trim_free (set.ts, s + 1, 2);
  mem_backend_counters (set.be[1], &c);
  ck_assert_uint_eq (c.trims, 1);
  ck_assert_uint_eq (c.trim_slots, 2);
  mem_backend_peek (set.be[1], s + 1 - test_stats (set.ts, 1).first, peek);
  ck_assert_uint_eq (peek[0], MEM_POISON);
  mem_backend_counters (set.be[0], &c);
  ck_assert_uint_eq (c.trims, 0);
  st = test_stats (set.ts, 1);
  ck_assert_uint_eq (st.used, 2);
  ck_assert_uint_eq (st.free, 6);

  /* Known failure: freed anyway, counted, the backend stays active. */
  mem_backend_fail_all (set.be[1], MEM_FAIL_TRIM);
  tierset_trim_free (set.ts, s, 1);
  st = test_stats (set.ts, 1);
  ck_assert_uint_eq (st.errors, 1);
  ck_assert_int_eq (st.state, TIER_ACTIVE);
  ck_assert_uint_eq (st.used, 1);
  ck_assert_uint_eq (st.free, 7);
  ck_assert_uint_eq (st.bad, 0);

  /* Unknown outcome: bad, not free. */
  mem_backend_heal (set.be[1]);
  mem_backend_set_health (set.be[1], BACKEND_DOWN);
  tierset_trim_free (set.ts, s + 3, 1);
  st = test_stats (set.ts, 1);
  ck_assert_uint_eq (st.errors, 2);
  ck_assert_uint_eq (st.used, 0);
  ck_assert_uint_eq (st.free, 7);
  ck_assert_uint_eq (st.bad, 1);
  free (peek);
  tierset_destroy (set.ts);
}
END_TEST

/* The health of a backend: while it is not up it gets no allocations;
 * errors of a lost connection (ENOTCONN) are counted but do not fail it,
 * the backend deciding that itself; once it is dead, its next error fails
 * it whatever max_errors says.
 */
START_TEST (test_health)
{
  static const uint64_t nslots[] = { 8, 8 };
  static const int priority[] = { 1, 0 };
  struct test_set set;
  struct tier_stats st;
  slot_t s, s0;
  char *data;
  unsigned i;

  data = test_common_alloc (PAGE_SIZE);
  memset (data, 'h', PAGE_SIZE);
  test_set_create (&set, 3, 2, nslots, priority);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s0), 0);
  ck_assert_int_eq (test_stats (set.ts, 0).health, BACKEND_UP);

  mem_backend_set_health (set.be[0], BACKEND_DOWN);
  ck_assert_int_eq (test_stats (set.ts, 0).health, BACKEND_DOWN);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 1);
  for (i = 0; i < 5; i++) {
    errno = 0;
    ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), -1);
    ck_assert_int_eq (errno, ENOTCONN);
  }
  st = test_stats (set.ts, 0);
  ck_assert_uint_eq (st.errors, 5);
  ck_assert_int_eq (st.state, TIER_ACTIVE);

  /* Up again: allocations come back to the higher priority. */
  mem_backend_set_health (set.be[0], BACKEND_UP);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 0);
  ck_assert_int_eq (tierset_write (set.ts, s0, 1, data, false), 0);

  /* Dead: no allocations, and the first error fails the backend. */
  mem_backend_set_health (set.be[0], BACKEND_DEAD);
  ck_assert_uint_eq (test_alloc_one (set.ts, &s), 1);
  errno = 0;
  ck_assert_int_eq (tierset_read (set.ts, s0, 1, data, 1), -1);
  ck_assert_int_eq (errno, EIO);
  st = test_stats (set.ts, 0);
  ck_assert_int_eq (st.state, TIER_FAILED);
  ck_assert_int_eq (st.health, BACKEND_DEAD);
  ck_assert_uint_eq (st.errors, 6);
  free (data);
  tierset_destroy (set.ts);
}
END_TEST

/* Add a backend that must be refused: -1, an error logged, the set
 * unchanged, and the backend still the caller's (closed here: were the
 * set to close it too, the sanitizers would see a double free).
 */
static void
test_refuse (struct tierset *ts, uint64_t nslots, int priority)
{
  struct backend *be = mem_backend_create ("refused", nslots);
  unsigned count = tierset_count (ts), errors = test_common_errors;
  uint64_t capacity = tierset_capacity (ts);

  ck_assert_msg (tierset_add (ts, be, priority) == -1,
                 "a backend of %" PRIu64 " slots with priority %d was "
                 "accepted", nslots, priority);
  ck_assert_uint_gt (test_common_errors, errors);
  ck_assert_uint_eq (tierset_count (ts), count);
  ck_assert_uint_eq (tierset_capacity (ts), capacity);
  backend_close (be);
}

/* Priorities outside TIERSET_PRIORITY_MIN .. MAX are refused, the limits
 * themselves accepted.
 */
START_TEST (test_bad_priority)
{
  struct tierset *ts = tierset_create (3);

  ck_assert_ptr_nonnull (ts);
  test_refuse (ts, 4, TIERSET_PRIORITY_MIN - 1);
  test_refuse (ts, 4, TIERSET_PRIORITY_MAX + 1);
  test_refuse (ts, 4, -1000);
  ck_assert_int_eq (tierset_add (ts, mem_backend_create ("min", 4),
                                 TIERSET_PRIORITY_MIN), 0);
  ck_assert_int_eq (tierset_add (ts, mem_backend_create ("max", 4),
                                 TIERSET_PRIORITY_MAX), 1);
  ck_assert_int_eq (test_stats (ts, 0).priority, TIERSET_PRIORITY_MIN);
  ck_assert_int_eq (test_stats (ts, 1).priority, TIERSET_PRIORITY_MAX);
  tierset_destroy (ts);
}
END_TEST

/* At most TIERSET_MAX_TIERS backends. */
START_TEST (test_too_many)
{
  struct tierset *ts = tierset_create (3);
  unsigned i;

  ck_assert_ptr_nonnull (ts);
  for (i = 0; i < TIERSET_MAX_TIERS; i++)
    ck_assert_int_eq (tierset_add (ts, mem_backend_create ("small", 1), 0),
                      i);
  test_refuse (ts, 1, 0);
  ck_assert_uint_eq (tierset_count (ts), TIERSET_MAX_TIERS);
  ck_assert_uint_eq (tierset_capacity (ts), TIERSET_MAX_TIERS);
  tierset_destroy (ts);
}
END_TEST

/* Backends whose slots do not fit below SLOT_MAX, counting the gap before
 * each, are refused.
 */
START_TEST (test_address_space)
{
  struct tierset *ts = tierset_create (3);

  ck_assert_ptr_nonnull (ts);
  /* Addresses 1 .. SLOT_MAX: SLOT_MAX slots at most for one backend. */
  test_refuse (ts, (uint64_t) SLOT_MAX + 1, 0);
  test_refuse (ts, UINT64_C (1) << 40, 0);
  /* After 10 slots at 1 .. 10 and a gap at 11, SLOT_MAX - 11 are left. */
  ck_assert_int_eq (tierset_add (ts, mem_backend_create ("ten", 10), 0), 0);
  test_refuse (ts, (uint64_t) SLOT_MAX - 10, 0);
  ck_assert_uint_eq (tierset_capacity (ts), 10);
  tierset_destroy (ts);
}
END_TEST

/* The suite of tier set error tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("tierset-errors");
  TCase *tc;

  tc = tcase_create ("errors");
  tcase_add_checked_fixture (tc, test_common_setup, NULL);
  tcase_add_test (tc, test_failing);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_trim);
  tcase_add_test (tc, test_health);
  tcase_add_test (tc, test_bad_priority);
  tcase_add_test (tc, test_too_many);
  tcase_add_test (tc, test_address_space);
  suite_add_tcase (s, tc);

  return s;
  return s;
}

int
main (void)
{
  return test_common_main ("test-tierset-errors", test_suite, NULL, NULL);
}
