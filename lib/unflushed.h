/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the slots of one backend written since its last good flush.
 *
 * A flush succeeds only if every write acknowledged before it is durable
 * on a backend that still holds that page.  So each backend keeps the set
 * of its slots in use whose content was written (without FUA) and not yet
 * covered by a successful flush, as two bitmaps of one bit per slot: the
 * filling one takes new writes; a flush, when it starts, turns the
 * filling one into the covered one and starts a new filling one.  If the
 * flush succeeds the covered slots are durable and leave the set; if it
 * fails they go back into the filling one, to be covered by the next
 * flush.  A slot that is freed or marked bad leaves the set at once: the
 * page it held lives elsewhere now, or is gone, and no flush needs it.
 * A backend whose set is empty needs no flush and fails none.
 *
 * Invariants: a slot is in at most one of the two bitmaps; each count is
 * the number of bits set in its bitmap.  All memory is allocated at
 * creation.  Not thread safe: the caller serializes (the tier's lock),
 * and runs at most one flush at a time between unflushed_begin and
 * unflushed_end.
 */

#ifndef SWAPTIER_UNFLUSHED_H
#define SWAPTIER_UNFLUSHED_H

#include <stdbool.h>
#include <stdint.h>

struct unflushed;

/* An empty set for nslots slots.  NULL after log_error on failure. */
extern struct unflushed *unflushed_create (uint64_t nslots);

extern void unflushed_destroy (struct unflushed *u);

/* The n slots from slot were written and are not durable yet. */
extern void unflushed_add (struct unflushed *u, uint64_t slot, uint64_t n);

/* The n slots from slot no longer hold a page (freed, or bad). */
extern void unflushed_forget (struct unflushed *u, uint64_t slot,
                              uint64_t n);

/* A flush starts: it covers the slots in the set now, whose number this
 * returns (0: nothing to flush); writes from now on are not covered.
 */
extern uint64_t unflushed_begin (struct unflushed *u);

/* The flush begun last ended: with ok, the slots it covered (those still
 * in use) are durable; without, they stay in the set.
 */
extern void unflushed_end (struct unflushed *u, bool ok);

/* Slots in the set. */
extern uint64_t unflushed_count (const struct unflushed *u);

#endif /* SWAPTIER_UNFLUSHED_H */
