/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: an in-memory backend.
 *
 * A struct backend whose slots live in memory, for unit tests only.  It
 * can be told to fail: every request of some kinds (a dead device),
 * requests that touch given slots, or one request out of n.  A failing
 * request reports its cause through log_error, sets errno (EIO, or
 * ENOTCONN as said below) and changes no slot, as a real backend does.
 * A request that breaks the contract of backend.h (no slots, slots past
 * the end, a buffer not PAGE_SIZE aligned) is a bug of the caller, not an
 * I/O error: it aborts.
 *
 * Its health can be set as a remote backend's changes: while DOWN, writes
 * and trims fail with ENOTCONN (reads and flushes are served, as if the
 * connection came back in time); once DEAD, every request fails with EIO.
 *
 * The backend counts the requests it receives.  Slots never written read
 * as zeroes; trimmed slots read as MEM_POISON bytes, so that data read
 * from a slot after it was given up shows.  The memory for the data is
 * allocated at the first write or trim, so a backend that is never
 * written may be very large.
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_TESTS_MEM_BACKEND_H
#define SWAPTIER_TESTS_MEM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

/* Kinds of request a failure applies to. */
#define MEM_FAIL_READ 1u
#define MEM_FAIL_WRITE 2u
#define MEM_FAIL_FLUSH 4u
#define MEM_FAIL_TRIM 8u
#define MEM_FAIL_ALL \
  (MEM_FAIL_READ | MEM_FAIL_WRITE | MEM_FAIL_FLUSH | MEM_FAIL_TRIM)

/* Every byte of a trimmed slot. */
#define MEM_POISON 0xdb

/* The most failing slot ranges one backend holds at once. */
#define MEM_FAIL_RANGES 16

struct mem_counters {
  uint64_t reads, writes, flushes, trims; /* requests, failed included */
  uint64_t read_slots, write_slots, trim_slots; /* of the successful ones */
  uint64_t fua_writes;                 /* writes asking for FUA */
  uint64_t failures;                   /* requests that failed */
};

/* A backend of nslots slots, all reading as zeroes, that fails nothing.
 * Aborts if memory runs out.
 */
extern struct backend *mem_backend_create (const char *target,
                                           uint64_t nslots);

/* From now on fail every request of the given kinds (MEM_FAIL_*), on top
 * of the other failures; MEM_FAIL_ALL makes a dead device.
 */
extern void mem_backend_fail_all (struct backend *be, unsigned kinds);

/* From now on fail every request of the given kinds that touches one of
 * the n slots from slot.  Aborts beyond MEM_FAIL_RANGES ranges.
 */
extern void mem_backend_fail_slots (struct backend *be, uint64_t slot,
                                    uint64_t n, unsigned kinds);

/* From now on fail the next read or write, then every nth read or write
 * after it; n == 0 stops this.
 */
extern void mem_backend_fail_every (struct backend *be, unsigned n);

/* From now on fail the next n requests of the given kinds (a transient
 * error), on top of the other failures.
 */
extern void mem_backend_fail_next (struct backend *be, unsigned kinds,
                                   unsigned n);

/* With hold, requests of the given kinds (MEM_FAIL_* bits) wait, once
 * counted, until they are released by a call without hold: a backend
 * whose requests take as long as a test wants.
 */
extern void mem_backend_hold (struct backend *be, unsigned kinds, bool hold);

/* Forget every failure set above, health included: the backend works
 * again, with the data its successful writes and trims left.
 */
extern void mem_backend_heal (struct backend *be);

/* Set the health the backend reports and acts by. */
extern void mem_backend_set_health (struct backend *be,
                                    enum backend_health health);

/* With yield, every read and write first gives up the CPU (sched_yield),
 * which widens the windows in which concurrent requests interleave.
 */
extern void mem_backend_set_yield (struct backend *be, bool yield);

/* With fn, every read first calls fn (arg, slot, n) without the
 * backend's lock held; if it returns true the read fails with EIO.  NULL
 * removes the hook.  (Review helper: lets a test order reads exactly.)
 */
extern void mem_backend_set_read_hook (struct backend *be,
                                       bool (*fn) (void *arg, uint64_t slot,
                                                   uint64_t n),
                                       void *arg);

/* Copy the counters into *c. */
extern void mem_backend_counters (struct backend *be, struct mem_counters *c);

/* Copy the content of one slot into buf (PAGE_SIZE bytes), without
 * counting a request and whatever failures are set.
 */
extern void mem_backend_peek (struct backend *be, uint64_t slot, void *buf);

/* Replace the content of one slot with buf (PAGE_SIZE bytes), as a disk
 * or a server that changed it would, without counting a request.  The
 * backend must have been written.
 */
extern void mem_backend_poke (struct backend *be, uint64_t slot,
                              const void *buf);

#endif /* SWAPTIER_TESTS_MEM_BACKEND_H */
