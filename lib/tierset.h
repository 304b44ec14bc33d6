/* SPDX-License-Identifier: BSD-3-Clause */
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
 * Backends can be added, given another priority and removed while the
 * set serves I/O.  A backend is removed in two steps: tierset_drain_begin
 * stops allocations on it, the caller moves its pages elsewhere (see
 * drain.h), and tierset_remove closes it once none of its slots is in
 * use.  A removed backend's id and slot addresses are never used again.
 *
 * Every backend is in a failure domain (domain.h); allocations can be
 * kept off a set of domains, which is how the copies of a page land on
 * different ones.
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_TIERSET_H
#define SWAPTIER_TIERSET_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "domain.h"
#include "latency.h"
#include "page.h"

#define TIERSET_MAX_TIERS 64             /* backends at once */
#define TIERSET_MAX_IDS 1024             /* backends over the set's life */
#define TIERSET_PRIORITY_MIN (-1)
#define TIERSET_PRIORITY_MAX 32767

enum tier_state {
  TIER_ACTIVE,                         /* takes new allocations */
  TIER_DRAINING,                       /* being emptied, then removed */
  TIER_FAILED,                         /* too many errors: read only */
};

struct tier_stats {
  unsigned id;
  const char *target;                  /* path or URI */
  const char *kind;                    /* backend kind */
  const char *domain;                  /* failure domain */
  int priority;
  enum tier_state state;
  enum backend_health health;          /* reachability of its server */
  slot_t first;                        /* global address of slot 0 */
  uint64_t capacity, used, free, bad;  /* slots */
  uint64_t reads, writes, errors;      /* requests */
  uint64_t read_slots, write_slots;    /* slots of the successful ones */
  uint64_t lost;                       /* pages lost: their only copy was
                                          here and failed to read */
  uint64_t demoted;                    /* copies moved down from here */
  uint64_t promoted;                   /* copies moved up from here */
  uint64_t corrupt;                    /* copies read here that did not
                                          match their checksum */
  bool clear;                          /* pages stored unencrypted */
  const char *failure;                 /* why it failed, or NULL */
  uint64_t rereads;                    /* client reads served here of
                                          pages read already since their
                                          last write */
};

/* The longest reason of a failure (tier_stats.failure), with its NUL. */
#define TIER_FAILURE_MAX 128

/* Limits and defaults of the remote backends' settings. */
#define TIER_CONNECTIONS_MAX 64
#define TIER_SECONDS_MAX 86400
#define TIER_CONNECTIONS_DEFAULT 4
#define TIER_TIMEOUT_DEFAULT 30         /* seconds */
#define TIER_GRACE_DEFAULT 60           /* seconds */

/* How to open one backend (see backend.h). */
struct tier_spec {
  const char *target;                  /* path or NBD URI */
  const char *domain;                  /* NULL: the default (domain.h) */
  int priority;
  uint64_t capacity;                   /* local: bytes, 0 for none */
  bool force;                          /* local: use it whatever it holds */
  bool clear;                          /* pages stored unencrypted */
  unsigned connections;                /* remote: requests in flight */
  unsigned timeout_ms, grace_ms;       /* remote */
};

struct tierset;

/* An empty tier set.  A backend is failed after max_errors consecutive
 * I/O errors.  NULL after log_error on failure.
 */
extern struct tierset *tierset_create (unsigned max_errors);

/* The process is stopping: make every backend end its waits promptly and
 * fail new requests (see the shutdown operation in backend.h).  Called
 * once, from any thread, before tierset_destroy.
 */
extern void tierset_shutdown (struct tierset *ts);

/* Close every backend and free the set. */
extern void tierset_destroy (struct tierset *ts);

/* The set was never put in service (the start failed): discard every
 * backend, which removes the files their opening created, and free the
 * set.
 */
extern void tierset_discard (struct tierset *ts);

/* Add a backend with a priority; the set owns it from then on.  Returns
 * its id (0, 1, ... in order of addition), or -1 after log_error (too
 * many backends, priority out of range, address space exhausted, no
 * memory), in which case the caller still owns be.
 */
extern int tierset_add (struct tierset *ts, struct backend *be, int priority);

/* tierset_add, in failure domain domain (NULL: the default of its
 * target, see domain.h).
 */
extern int tierset_add_domain (struct tierset *ts, struct backend *be,
                               int priority, const char *domain);

/* Open the backend that spec describes and add it.  A target that is
 * not an NBD URI names a local path (localpath.h).  A local file that a
 * backend of the set already uses is refused before it is opened.  On
 * failure a file that the opening created is removed.  Returns its id,
 * or -1 after log_error.
 */
extern int tierset_open (struct tierset *ts, const struct tier_spec *spec);

/* Number of backends added so far, removed ones included: ids are below
 * it.
 */
extern unsigned tierset_count (const struct tierset *ts);

/* Sum of the capacities of the backends not removed, in slots. */
extern uint64_t tierset_capacity (const struct tierset *ts);

/* How many pages of copies copies each the backends neither removed nor
 * draining hold, placed as the allocator places them (see capacity.c).
 */
extern uint64_t tierset_copies_capacity (struct tierset *ts,
                                         unsigned copies);

/* Fill *st with the counters of backend id and return true, or return
 * false if there is no such backend (removed, or id not below
 * tierset_count).
 */
/* The latencies of backend id's reads ([0]) and writes ([1]): since the
 * start into total, over the interval between the last two calls of
 * tierset_tick into window.  False if there is no such backend.
 */
extern bool tierset_latency (struct tierset *ts, unsigned id,
                             struct latency total[2],
                             struct latency window[2]);

/* Put failed backend id back in service, once its header slot is read
 * again and found to hold this instance's claim (a remote whose server
 * was given up is connected again for it): its error counts start over,
 * new pages go there; pages lost stay lost.  Refused for a backend that
 * is not failed, or whose claim cannot be read.  0, or -1 after
 * log_error.
 */
extern int tierset_revive (struct tierset *ts, unsigned id);

/* The control thread's once-a-second work: end a latency interval of
 * every backend, and fail those whose backend gave up its server while
 * idle (so that list and check say so before a request finds out).
 */
extern void tierset_tick (struct tierset *ts);

extern bool tierset_stats (struct tierset *ts, unsigned id,
                           struct tier_stats *st);

/* Give backend id another priority, effective for the next allocation.
 * Returns 0, or -1 after log_error (no such backend, out of range).
 */
extern int tierset_set_priority (struct tierset *ts, unsigned id,
                                 int priority);

/* Start draining backend id: no new allocations there from now on.
 * Refused (-1 after log_error) if it is draining already, if no other
 * backend takes allocations, or if the free slots of the other active
 * backends, less spare, are fewer than the slots it uses.  The caller
 * moves its pages elsewhere, then calls tierset_remove, or
 * tierset_drain_cancel if that failed.
 */
extern int tierset_drain_begin (struct tierset *ts, unsigned id,
                                uint64_t spare);

/* Stop draining backend id (which tierset_drain_begin accepted): it
 * takes allocations again, unless it failed before or meanwhile.
 */
extern void tierset_drain_cancel (struct tierset *ts, unsigned id);

/* Remove backend id, which must be draining with no slot in use (bad
 * slots do not count): close it and forget it.  Returns 0, or -1 after
 * log_error.
 */
extern int tierset_remove (struct tierset *ts, unsigned id);

/* Priorities lo <= priority < hi: where an allocation may go. */
struct tier_window {
  int lo, hi;
};
#define TIERSET_ANY_WINDOW \
  ((struct tier_window) { TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX + 1 })

/* Allocate one run of 1 .. max consecutive slots on one backend, following
 * the priority and rotation rules; inside a priority a backend that has a
 * run of max is preferred to shorter runs.  Backends in the domains of
 * exclude are never used; such an allocation (a further copy) does not
 * move the rotation on.  Only backends of a priority in window win are
 * used (TIERSET_ANY_WINDOW: all).  The backend holding avoid (a slot, or
 * SLOT_NONE) is tried only after every other.  Returns the first slot
 * and sets *len, or returns SLOT_NONE when no backend has a free slot.
 */
extern slot_t tierset_alloc_run (struct tierset *ts, uint32_t max,
                                 uint32_t *len, slot_t avoid,
                                 domain_mask exclude, struct tier_window win);

/* The domain of a slot in use, as a mask of one bit. */
extern domain_mask tierset_domain_of (const struct tierset *ts, slot_t slot);

/* How many domains the backends not removed, but for backend skip
 * (UINT_MAX: none), are in.
 */
extern unsigned tierset_ndomains (struct tierset *ts, unsigned skip);

/* How good a slot in use is to read from: larger is better.  Backends
 * that take allocations and are reachable come first, those reconnecting
 * next, failed or given up ones last; then higher priorities.
 */
extern unsigned tierset_read_rank (const struct tierset *ts, slot_t slot);

/* Whether the backend of a slot in use is failed (too many errors) or
 * has given up its server: its copies must be re-created elsewhere.
 * The caller holds the range lock on a page that uses the slot.
 */
extern bool tierset_slot_failed (const struct tierset *ts, slot_t slot);

/* The same for a slot read from the map without the range lock, whose
 * backend may be removed meanwhile (then it counts as failed).
 */
extern bool tierset_slot_failed_unlocked (struct tierset *ts, slot_t slot);

/* Slots in use on the backends that tierset_slot_failed says are
 * failed.
 */
extern uint64_t tierset_failed_used (struct tierset *ts);

/* Return the n slots from first, all in use, to their backend's free
 * slots.
 */
extern void tierset_free_run (struct tierset *ts, slot_t first, uint32_t n);

/* Trim the n slots from first, all in use and no longer needed, on their
 * backend (where it can use that), then free them.  A trim whose outcome
 * is unknown (ENOTCONN: the server may still execute it, and would zero
 * whatever page the slots held by then) marks the slots bad instead, so
 * they are never handed out again.  Other trim errors are counted and
 * otherwise ignored.
 */
extern void tierset_trim_free (struct tierset *ts, slot_t first, uint32_t n);

/* Mark the n slots from first, all in use, bad: never handed out again. */
extern void tierset_mark_bad (struct tierset *ts, slot_t first, uint32_t n);

/* The page held by slot, in use, is lost (its only copy failed to read):
 * mark the slot bad and count the page lost on its backend.
 */
extern void tierset_mark_lost (struct tierset *ts, slot_t slot);

/* Pages lost on every backend since the start, removed ones included. */
extern uint64_t tierset_lost (const struct tierset *ts);

/* Read the n slots from first (all on one backend) into buf, PAGE_SIZE
 * aligned, trying up to tries times while the backend has not given up;
 * tries == TIERSET_READ_QUICK reads once without waiting for a lost
 * server (another copy exists).  Write them from buf.  Each call counts one request and,
 * if it fails, one error on the backend, whatever the tries.  Returns 0,
 * or -1 with errno set.
 */
#define TIERSET_READ_QUICK 0
extern int tierset_read (struct tierset *ts, slot_t first, uint32_t n,
                         void *buf, unsigned tries);
extern int tierset_write (struct tierset *ts, slot_t first, uint32_t n,
                          const void *buf, bool fua);

/* Make every write acknowledged before this call durable: flush each
 * backend that holds slots written since its last good flush (see
 * unflushed.h); flushes of one backend run one at a time, and a flush
 * that began before this call does not count for it.  Returns 0, or -1
 * with errno set if any flush failed (all are still attempted); the
 * slots it covered then wait for the next flush.
 */
extern int tierset_flush (struct tierset *ts);

/* A priority level: the backends of one priority that take
 * allocations now (active and reachable), as one.
 */
struct tier_level {
  int priority;
  uint64_t usable;                     /* their slots, less the bad ones */
  uint64_t free;
  domain_mask room;                    /* domains of those with free slots */
};

/* Fill lv with the first max levels, by decreasing priority, and
 * return how many it filled (see tierset-levels.c).
 */
extern unsigned tierset_levels (struct tierset *ts, struct tier_level *lv,
                                unsigned max);

/* Whether a slot read from the map without the range lock is on a
 * backend that takes allocations now; if so, set *priority to its
 * priority.
 */
extern bool tierset_slot_level (struct tierset *ts, slot_t slot,
                                int *priority);

/* Count n copies moved down from the backend of slot first (in use). */
extern void tierset_count_demoted (struct tierset *ts, slot_t first,
                                   uint32_t n);

/* Count a re-read served by the backend of slot (in use; the caller
 * holds the range lock of its page).  Returns whether a backend of a
 * higher priority exists (the page could be promoted).
 */
extern bool tierset_count_reread (struct tierset *ts, slot_t slot);

/* Whether the pages on the backend of slot (in use) are encrypted
 * (the backend was not opened clear).
 */
extern bool tierset_slot_encrypted (const struct tierset *ts, slot_t slot);

/* Whether some backend not removed stores its pages encrypted. */
extern bool tierset_encrypts (struct tierset *ts);

/* Count a copy read from slot (in use) whose bytes did not match. */
extern void tierset_count_corrupt (struct tierset *ts, slot_t slot);

/* Count n copies moved up from the backend of slot first (in use). */
extern void tierset_count_promoted (struct tierset *ts, slot_t first,
                                    uint32_t n);

/* Name of a state, as shown to users. */
extern const char *tier_state_name (enum tier_state state);

#endif /* SWAPTIER_TIERSET_H */
