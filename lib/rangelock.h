/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: page range lock.
 *
 * Requests that touch overlapping pages run one after the other when
 * either of them changes the map (exclusive); readers share.  Conflicting
 * requests are served in arrival order, so none starves and none waits
 * for a later one (no deadlock).  The table has a fixed number of
 * entries, allocated at creation; a caller beyond that waits for one.
 * The entry index stays the caller's until release, so callers can use
 * it to pick a preallocated per-request resource.
 */

#ifndef SWAPTIER_RANGELOCK_H
#define SWAPTIER_RANGELOCK_H

#include <stdbool.h>
#include <stdint.h>

struct rangelock;

/* A lock table of nentries entries.  NULL after log_error on failure. */
extern struct rangelock *rangelock_create (unsigned nentries);

extern void rangelock_destroy (struct rangelock *rl);

/* Hold pages [start, end) shared or exclusive; returns the entry index,
 * 0 .. nentries-1.
 */
extern unsigned rangelock_acquire (struct rangelock *rl, uint64_t start,
                                   uint64_t end, bool exclusive);

/* Release the range held under entry idx. */
extern void rangelock_release (struct rangelock *rl, unsigned idx);

/* Wait until every range held or waited for when this is called has
 * been released.  Ranges asked for later neither wait for this call nor
 * delay it.
 */
extern void rangelock_sync (struct rangelock *rl);

#endif /* SWAPTIER_RANGELOCK_H */
