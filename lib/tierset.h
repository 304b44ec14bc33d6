/* swaptier: the tier set, every backend with its priority and allocator.
 *
 * Each backend (a "tier") owns the global slot addresses
 * [first, first + nslots), with one unused address before it, and a blist
 * for its slots.  Allocation tries the highest priority first (a larger
 * number is preferred, as in Linux) and rotates among backends of equal
 * priority, one step per allocation, which stripes consecutive writes.
 * Only when every backend of a priority is full or failed does it spill
 * to the next priority.  A slot is free, used by one page, or bad; bad
 * slots stay allocated forever.  Per backend, used + free + bad equals
 * the capacity whenever the counters are read (they are read and changed
 * under the backend's lock).
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_TIERSET_H
#define SWAPTIER_TIERSET_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "page.h"

#define TIERSET_MAX_TIERS 64
#define TIERSET_PRIORITY_MIN (-1)
#define TIERSET_PRIORITY_MAX 32767

enum tier_state {
  TIER_ACTIVE,                         /* takes new allocations */
  TIER_FAILED,                         /* too many errors: read only */
};

struct tier_stats {
  unsigned id;
  const char *target;                  /* path or URI */
  const char *kind;                    /* backend kind */
  int priority;
  enum tier_state state;
  enum backend_health health;          /* reachability of its server */
  slot_t first;                        /* global address of slot 0 */
  uint64_t capacity, used, free, bad;  /* slots */
  uint64_t reads, writes, errors;      /* requests */
};

struct tierset;

/* An empty tier set.  A backend is failed after max_errors consecutive
 * I/O errors.  NULL after log_error on failure.
 */
extern struct tierset *tierset_create (unsigned max_errors);

/* Close every backend and free the set. */
extern void tierset_destroy (struct tierset *ts);

/* Add a backend with a priority; the set owns it from then on.  Returns
 * its id (0, 1, ... in order of addition), or -1 after log_error (too
 * many backends, priority out of range, address space exhausted, no
 * memory), in which case the caller still owns be.
 */
extern int tierset_add (struct tierset *ts, struct backend *be, int priority);

/* Number of backends added so far. */
extern unsigned tierset_count (const struct tierset *ts);

/* Sum of the capacities of all backends, in slots. */
extern uint64_t tierset_capacity (const struct tierset *ts);

/* Counters of backend id (id < tierset_count). */
extern void tierset_stats (struct tierset *ts, unsigned id,
                           struct tier_stats *st);

/* Allocate one run of 1 .. max consecutive slots on one backend, following
 * the priority and rotation rules; inside a priority a backend that has a
 * run of max is preferred to shorter runs.  The backend holding avoid (a
 * slot, or SLOT_NONE) is tried only after every other.  Returns the first
 * slot and sets *len, or returns SLOT_NONE when no backend has a free slot.
 */
extern slot_t tierset_alloc_run (struct tierset *ts, uint32_t max,
                                 uint32_t *len, slot_t avoid);

/* Return the n slots from first, all in use, to their backend's free
 * slots.
 */
extern void tierset_free_run (struct tierset *ts, slot_t first, uint32_t n);

/* Tell the backend holding the n slots from first, about to be freed,
 * that their content is no longer needed (where it can use that).  Errors
 * are counted and otherwise ignored.
 */
extern void tierset_trim (struct tierset *ts, slot_t first, uint32_t n);

/* Mark the n slots from first, all in use, bad: never handed out again. */
extern void tierset_mark_bad (struct tierset *ts, slot_t first, uint32_t n);

/* Read or write the n slots from first (all on one backend) from or into
 * buf, PAGE_SIZE aligned.  Counts the request and any error on the
 * backend.  Returns 0, or -1 with errno set.
 */
extern int tierset_read (struct tierset *ts, slot_t first, uint32_t n,
                         void *buf);
extern int tierset_write (struct tierset *ts, slot_t first, uint32_t n,
                          const void *buf, bool fua);

/* Flush every backend written since its last flush.  Returns 0, or -1
 * with errno set if any flush failed (all are still attempted).
 */
extern int tierset_flush (struct tierset *ts);

/* Name of a state, as shown to users. */
extern const char *tier_state_name (enum tier_state state);

#endif /* SWAPTIER_TIERSET_H */
