/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the tier set seen as priority levels, for the demoter.
 *
 * A level is what tierset_alloc_run treats as one: the backends of one
 * priority.  Only those that take allocations now count: active and
 * reachable (a failed or draining backend's free slots are no room, nor
 * are those of a server being reconnected to), and a slot is "on" a
 * level only while its backend is one of them: the demoter leaves the
 * copies on failed backends to the repairer, those on draining ones to
 * the drain, and does not wait for a server that is away.  The counters
 * of what the demoter moved down and up and of the re-reads (client
 * reads of a page already read since its last write) live with each
 * backend's other counters.
 */

#include <config.h>

#include "blist.h"
#include "tierset-internal.h"

/* Whether a tier takes allocations now. */
static bool
tier_takes_pages (const struct tier *t)
{
  return tier_state (t) == TIER_ACTIVE && backend_health (t->be) == BACKEND_UP;
}

unsigned
tierset_levels (struct tierset *ts, struct tier_level *lv, unsigned max)
{
  unsigned g, i, n = 0;

  pthread_rwlock_rdlock (&ts->lock);
  for (g = 0; g < ts->ngroups; g++) {
    struct tier_level level = { .priority = ts->group[g].priority };

    for (i = 0; i < ts->group[g].n; i++) {
      struct tier *t = ts->group[g].member[i];
      uint64_t free;

      if (!tier_takes_pages (t))
        continue;
      pthread_mutex_lock (&t->lock);
      level.usable += t->nslots - t->bad;
      free = blist_free_count (t->blist);
      pthread_mutex_unlock (&t->lock);
      level.free += free;
      if (free > 0)
        level.room |= (domain_mask) 1 << t->domain;
    }
    if (level.usable == 0)
      continue;
    if (n < max)
      lv[n] = level;
    n++;
  }
  pthread_rwlock_unlock (&ts->lock);
  return n < max ? n : max;
}

bool
tierset_slot_level (struct tierset *ts, slot_t slot, int *priority)
{
  const struct tier *t;
  bool on;

  /* The lock keeps a removal (which marks the tier removed under the
   * write lock before closing it) and priority changes out.
   */
  pthread_rwlock_rdlock (&ts->lock);
  t = tierset_lookup (ts, slot);
  on = !t->removed && tier_takes_pages (t);
  *priority = t->priority;
  pthread_rwlock_unlock (&ts->lock);
  return on;
}

void
tierset_count_demoted (struct tierset *ts, slot_t first, uint32_t n)
{
  __atomic_add_fetch (&tierset_lookup (ts, first)->demoted, n,
                      __ATOMIC_RELAXED);
}

bool
tierset_count_reread (struct tierset *ts, slot_t slot)
{
  struct tier *t = tierset_lookup (ts, slot);
  bool higher;

  __atomic_add_fetch (&t->rereads, 1, __ATOMIC_RELAXED);
  pthread_rwlock_rdlock (&ts->lock);
  higher = ts->ngroups > 0 && ts->group[0].priority > t->priority;
  pthread_rwlock_unlock (&ts->lock);
  return higher;
}

bool
tierset_slot_encrypted (const struct tierset *ts, slot_t slot)
{
  return !tierset_lookup (ts, slot)->clear;
}

bool
tierset_encrypts (struct tierset *ts)
{
  unsigned i;
  bool any = false;

  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < ts->ntiers; i++)
    any |= !ts->tier[i]->removed && !ts->tier[i]->clear;
  pthread_rwlock_unlock (&ts->lock);
  return any;
}

void
tierset_count_corrupt (struct tierset *ts, slot_t slot)
{
  __atomic_add_fetch (&tierset_lookup (ts, slot)->corrupt, 1,
                      __ATOMIC_RELAXED);
}

void
tierset_count_promoted (struct tierset *ts, slot_t first, uint32_t n)
{
  __atomic_add_fetch (&tierset_lookup (ts, first)->promoted, n,
                      __ATOMIC_RELAXED);
}
