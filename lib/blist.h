/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: radix bitmap slot allocator.
 *
 * One blist manages the slots of one backend: slot addresses 0 .. nslots-1,
 * each free or used.  The leaves are 64-bit words, one bit per slot (set =
 * free).  Above them sit meta nodes of radix 64 that record, for each child,
 * whether it has any free slot and whether it is entirely free, plus a
 * "bighint": an upper bound on the longest free run lying wholly inside the
 * node.  A search skips a subtree whose hint is too small except for the
 * free runs that cross its edges, and lowers the hint of a subtree it has
 * searched in full without success.
 *
 * Every byte is allocated by blist_create.  Nothing else allocates memory.
 * A blist is not thread safe: the caller serializes access.
 */

#ifndef SWAPTIER_BLIST_H
#define SWAPTIER_BLIST_H

#include <stddef.h>
#include <stdint.h>

/* The largest number of slots one blist can manage. */
#define BLIST_MAX_SLOTS (UINT64_C (1) << 32)

/* Returned by blist_alloc when no run of the requested size is free. */
#define BLIST_NONE UINT64_MAX

struct blist;

/* Fragmentation summary of the free slots. */
struct blist_frag {
  uint64_t nfree;          /* free slots */
  uint64_t nruns;          /* maximal runs of free slots */
  uint64_t largest;        /* length of the longest free run */
  uint64_t hist[33];       /* hist[k]: runs of length in [2^k, 2^(k+1)) */
};

/* Create an allocator for nslots slots (1 .. BLIST_MAX_SLOTS), all free.
 * Returns NULL with errno EINVAL for a bad count or ENOMEM.
 */
extern struct blist *blist_create (uint64_t nslots);

/* Free the allocator and all its memory.  NULL is accepted. */
extern void blist_destroy (struct blist *bl);

/* Allocate one contiguous run of at least min and at most max free slots,
 * 1 <= min <= max.  The search is next-fit: it takes the lowest start s at
 * or after the cursor such that [s, s+min) is free, else the lowest such s
 * before the cursor, and extends the run past min while slots are free, up
 * to max.  The cursor then moves to the end of the run.  Returns the first
 * slot and sets *len, or returns BLIST_NONE (errno ENOSPC, or EINVAL for a
 * bad min/max) and leaves everything unchanged.
 */
extern uint64_t blist_alloc (struct blist *bl, uint64_t min, uint64_t max,
                             uint64_t *len);

/* Free the n slots [start, start+n), which must all be in use.  Returns 0,
 * or -1 with errno ERANGE (range outside the blist or n == 0) or EINVAL
 * (some slot in the range is already free); on error nothing is changed.
 */
extern int blist_free (struct blist *bl, uint64_t start, uint64_t n);

/* Mark the n slots [start, start+n) used, whatever their state.  Returns
 * how many of them were free, or -1 with errno ERANGE (range outside the
 * blist or n == 0) and nothing changed.
 */
extern int64_t blist_fill (struct blist *bl, uint64_t start, uint64_t n);

/* Number of slots the blist manages. */
extern uint64_t blist_size (const struct blist *bl);

/* Number of free slots. */
extern uint64_t blist_free_count (const struct blist *bl);

/* Length of the longest run of free slots (0 when full).  It may tighten
 * the search hints as a side effect; it changes no slot.
 */
extern uint64_t blist_largest_run (struct blist *bl);

/* Fill *frag with a summary of the free runs, by one pass over the map. */
extern void blist_frag (const struct blist *bl, struct blist_frag *frag);

/* Bytes of memory the allocator holds, its own structure included. */
extern size_t blist_memory (const struct blist *bl);

#endif /* SWAPTIER_BLIST_H */
