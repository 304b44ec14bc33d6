/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the tier set's own structures, shared by tierset.c (the
 * backends, their priorities, allocation and removal) and tierset-io.c
 * (their I/O: reads, writes, trims, flushes and the counting of errors).
 * Nothing outside them (and tierset-levels.c) includes this.
 */

#ifndef SWAPTIER_TIERSET_INTERNAL_H
#define SWAPTIER_TIERSET_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blist.h"
#include "domain.h"
#include "latency.h"
#include "tierset.h"
#include "unflushed.h"

struct tier {
  unsigned id;
  int priority;                        /* changed under the set's lock */
  struct backend *be;                  /* NULL once removed */
  char *target;                        /* kept after removal */
  const char *kind;
  char *domain_name;                   /* kept after removal */
  unsigned domain;                     /* its number in the set's table */
  bool local;                          /* a local file: dev, ino are set */
  bool clear;                          /* pages stored unencrypted */
  uint64_t dev, ino;
  slot_t first;                        /* global address of slot 0 */
  uint64_t nslots;

  pthread_mutex_t lock;                /* guards blist, used, bad,
                                          unflushed */
  struct blist *blist;
  uint64_t used, bad;
  struct unflushed *unflushed;         /* written since the last flush */
  pthread_mutex_t flush_lock;          /* one flush of be at a time */

  /* Why it failed, written once by the thread that failed it, before
   * failure_known (release).
   */
  char failure[TIER_FAILURE_MAX];

  /* Atomics. */
  bool failed;                         /* too many errors: for good */
  bool failure_known;                  /* failure is written */
  bool draining;                       /* no allocations: being emptied */
  bool removed;                        /* set under the set's write lock */
  unsigned flushing;                   /* flushes using be right now */
  unsigned error_streak[2];             /* consecutive read, write errors */
  uint64_t reads, writes, errors;
  uint64_t read_slots, write_slots;
  uint64_t lost;                       /* pages lost here, kept after
                                          removal */
  uint64_t demoted, promoted;          /* copies moved down, up from here */
  uint64_t rereads;                    /* reads of pages read before */
  uint64_t corrupt;                    /* reads that did not match */
  struct latency latency[2];           /* reads, writes: since the start */

  /* Under lock: the latencies at the last tick, and those of the
   * interval that ended there (tierset_tick).
   */
  struct latency latency_at_tick[2], latency_window[2];
};

/* The backends of one priority, rotated through by allocation. */
struct tier_group {
  int priority;
  unsigned n;
  struct tier *member[TIERSET_MAX_TIERS];
  unsigned rotor;                      /* atomic */
};

struct tierset {
  unsigned max_errors;
  pthread_rwlock_t lock;               /* guards groups, priorities, adding,
                                          removing */
  unsigned ntiers;                     /* atomic: published after tier[] */
  unsigned nlive;                      /* not removed */
  struct tier *tier[TIERSET_MAX_IDS];  /* by id, so by increasing first */
  unsigned ngroups;
  struct tier_group group[TIERSET_MAX_TIERS]; /* by decreasing priority */
  uint64_t next_first;                 /* first address after the last */
  struct domain_table domains;         /* of the tiers not removed */
};

/* The state of a tier, as shown to users. */
static inline enum tier_state
tier_state (const struct tier *t)
{
  if (__atomic_load_n (&t->draining, __ATOMIC_RELAXED))
    return TIER_DRAINING;
  /* A backend that gave up its server is failed even if no request
   * found out (with copies, none may go there).
   */
  if (__atomic_load_n (&t->failed, __ATOMIC_RELAXED) ||
      backend_health (t->be) == BACKEND_DEAD)
    return TIER_FAILED;
  return TIER_ACTIVE;
}

/* Whether a tier is failed or its backend gave up its server. */
static inline bool
tier_is_failed (const struct tier *t)
{
  return __atomic_load_n (&t->failed, __ATOMIC_RELAXED) ||
    backend_health (t->be) == BACKEND_DEAD;
}

/* The tier owning a global slot address (which must be one). */
extern struct tier *tierset_lookup (const struct tierset *ts, slot_t slot);

#endif /* SWAPTIER_TIERSET_INTERNAL_H */
