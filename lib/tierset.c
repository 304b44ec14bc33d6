/* swaptier: the tier set. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "blist.h"
#include "log.h"
#include "tierset.h"

struct tier {
  unsigned id;
  int priority;
  struct backend *be;
  slot_t first;                        /* global address of slot 0 */
  uint64_t nslots;

  pthread_mutex_t lock;                /* guards blist, used, bad */
  struct blist *blist;
  uint64_t used, bad;

  /* Atomics. */
  enum tier_state state;
  unsigned consecutive_errors;
  bool dirty;                          /* written since the last flush */
  uint64_t reads, writes, errors;
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
  pthread_rwlock_t lock;               /* guards the groups and adding */
  unsigned ntiers;                     /* atomic: published after tier[] */
  struct tier *tier[TIERSET_MAX_TIERS];/* by id, so by increasing first */
  unsigned ngroups;
  struct tier_group group[TIERSET_MAX_TIERS]; /* by decreasing priority */
  uint64_t next_first;                 /* first address after the last */
};

struct tierset *
tierset_create (unsigned max_errors)
{
  struct tierset *ts = calloc (1, sizeof *ts);

  if (ts == NULL) {
    log_error ("tier set: %m");
    return NULL;
  }
  ts->max_errors = max_errors > 0 ? max_errors : 1;
  pthread_rwlock_init (&ts->lock, NULL);
  ts->next_first = 1;
  return ts;
}

void
tierset_destroy (struct tierset *ts)
{
  unsigned i;

  if (ts == NULL)
    return;
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    backend_close (t->be);
    blist_destroy (t->blist);
    pthread_mutex_destroy (&t->lock);
    free (t);
  }
  pthread_rwlock_destroy (&ts->lock);
  free (ts);
}

/* Rebuild the priority groups from the tiers (with the write lock):
 * groups by decreasing priority, members by increasing id.
 */
static void
tierset_build_groups (struct tierset *ts)
{
  unsigned i, g;

  ts->ngroups = 0;
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    for (g = 0; g < ts->ngroups; g++)
      if (ts->group[g].priority <= t->priority)
        break;
    if (g == ts->ngroups || ts->group[g].priority != t->priority) {
      /* Open a new group at position g. */
      for (unsigned k = ts->ngroups; k > g; k--)
        ts->group[k] = ts->group[k - 1];
      ts->group[g] = (struct tier_group) { .priority = t->priority };
      ts->ngroups++;
    }
    ts->group[g].member[ts->group[g].n++] = t;
  }
}

int
tierset_add (struct tierset *ts, struct backend *be, int priority)
{
  struct tier *t;
  uint64_t left;
  int id = -1;

  if (priority < TIERSET_PRIORITY_MIN || priority > TIERSET_PRIORITY_MAX) {
    log_error ("%s: priority %d is out of range (%d to %d)",
               be->target, priority,
               TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX);
    return -1;
  }

  pthread_rwlock_wrlock (&ts->lock);
  if (ts->ntiers == TIERSET_MAX_TIERS) {
    log_error ("%s: too many backends (at most %d)",
               be->target, TIERSET_MAX_TIERS);
    goto out;
  }
  left = ts->next_first <= SLOT_MAX ? SLOT_MAX - ts->next_first + 1 : 0;
  if (be->nslots > left) {
    log_error ("%s: %" PRIu64 " slots do not fit in the 32-bit slot address "
               "space (%" PRIu64 " addresses left)",
               be->target, be->nslots, left);
    goto out;
  }
  t = calloc (1, sizeof *t);
  if (t == NULL || (t->blist = blist_create (be->nslots)) == NULL) {
    log_error ("%s: allocator for %" PRIu64 " slots: %m",
               be->target, be->nslots);
    free (t);
    goto out;
  }
  t->id = ts->ntiers;
  t->priority = priority;
  t->be = be;
  t->first = ts->next_first;
  t->nslots = be->nslots;
  t->state = TIER_ACTIVE;
  pthread_mutex_init (&t->lock, NULL);

  ts->next_first += be->nslots + 1;
  ts->tier[t->id] = t;
  __atomic_store_n (&ts->ntiers, t->id + 1, __ATOMIC_RELEASE);
  tierset_build_groups (ts);
  id = t->id;
 out:
  pthread_rwlock_unlock (&ts->lock);
  return id;
}

unsigned
tierset_count (const struct tierset *ts)
{
  return __atomic_load_n (&ts->ntiers, __ATOMIC_ACQUIRE);
}

uint64_t
tierset_capacity (const struct tierset *ts)
{
  unsigned i, n = tierset_count (ts);
  uint64_t sum = 0;

  for (i = 0; i < n; i++)
    sum += ts->tier[i]->nslots;
  return sum;
}

/* The tier owning a global slot address (which must be one). */
static struct tier *
tierset_lookup (const struct tierset *ts, slot_t slot)
{
  unsigned lo = 0, hi = tierset_count (ts);

  /* The last tier whose first address is <= slot. */
  while (hi - lo > 1) {
    unsigned mid = lo + (hi - lo) / 2;

    if (ts->tier[mid]->first <= slot)
      lo = mid;
    else
      hi = mid;
  }
  return ts->tier[lo];
}

void
tierset_stats (struct tierset *ts, unsigned id, struct tier_stats *st)
{
  struct tier *t = ts->tier[id];

  pthread_rwlock_rdlock (&ts->lock);
  *st = (struct tier_stats) {
    .id = t->id,
    .target = t->be->target,
    .kind = t->be->ops->kind,
    .priority = t->priority,
    .state = __atomic_load_n (&t->state, __ATOMIC_RELAXED),
    .health = backend_health (t->be),
    .first = t->first,
    .capacity = t->nslots,
    .reads = __atomic_load_n (&t->reads, __ATOMIC_RELAXED),
    .writes = __atomic_load_n (&t->writes, __ATOMIC_RELAXED),
    .errors = __atomic_load_n (&t->errors, __ATOMIC_RELAXED),
  };
  pthread_rwlock_unlock (&ts->lock);

  pthread_mutex_lock (&t->lock);
  st->used = t->used;
  st->free = blist_free_count (t->blist);
  st->bad = t->bad;
  pthread_mutex_unlock (&t->lock);
}

/* Allocate want .. max slots on one tier, if it takes allocations. */
static slot_t
tier_alloc (struct tier *t, uint32_t want, uint32_t max, uint32_t *len)
{
  uint64_t s, n;

  if (__atomic_load_n (&t->state, __ATOMIC_RELAXED) != TIER_ACTIVE ||
      backend_health (t->be) != BACKEND_UP)
    return SLOT_NONE;
  pthread_mutex_lock (&t->lock);
  s = blist_alloc (t->blist, want, max, &n);
  if (s != BLIST_NONE)
    t->used += n;
  pthread_mutex_unlock (&t->lock);
  if (s == BLIST_NONE)
    return SLOT_NONE;
  if (swaptier_debug_alloc)
    log_debug ("alloc: backend %u slots %" PRIu64 "+%" PRIu64
               " (asked %" PRIu32 "..%" PRIu32 ")",
               t->id, s, n, want, max);
  *len = n;
  return t->first + s;
}

/* One allocation over the groups in priority order.  With only_avoided,
 * try just the avoided tier; otherwise every tier but it.
 */
static slot_t
tierset_alloc_pass (struct tierset *ts, uint32_t max, uint32_t *len,
                    const struct tier *avoided, bool only_avoided)
{
  unsigned g, i;

  for (g = 0; g < ts->ngroups; g++) {
    struct tier_group *grp = &ts->group[g];
    unsigned start = __atomic_fetch_add (&grp->rotor, 1, __ATOMIC_RELAXED);
    uint32_t want = max;

    for (;;) {
      for (i = 0; i < grp->n; i++) {
        struct tier *t = grp->member[(start + i) % grp->n];
        slot_t s;

        if ((t == avoided) != only_avoided)
          continue;
        s = tier_alloc (t, want, max, len);
        if (s != SLOT_NONE)
          return s;
      }
      if (want == 1)
        break;
      want = 1;
    }
  }
  return SLOT_NONE;
}

slot_t
tierset_alloc_run (struct tierset *ts, uint32_t max, uint32_t *len,
                   slot_t avoid)
{
  const struct tier *avoided;
  slot_t s;

  pthread_rwlock_rdlock (&ts->lock);
  avoided = avoid != SLOT_NONE ? tierset_lookup (ts, avoid) : NULL;
  s = tierset_alloc_pass (ts, max, len, avoided, false);
  if (s == SLOT_NONE && avoided)
    s = tierset_alloc_pass (ts, max, len, avoided, true);
  pthread_rwlock_unlock (&ts->lock);
  return s;
}

void
tierset_free_run (struct tierset *ts, slot_t first, uint32_t n)
{
  struct tier *t = tierset_lookup (ts, first);

  pthread_mutex_lock (&t->lock);
  if (blist_free (t->blist, first - t->first, n) == -1) {
    /* A slot freed twice: the map and the allocator disagree. */
    log_error ("backend %u: freeing slots %" PRIu32 "+%" PRIu32 ": %m "
               "(internal error)", t->id, first - t->first, n);
    abort ();
  }
  t->used -= n;
  pthread_mutex_unlock (&t->lock);
  if (swaptier_debug_alloc)
    log_debug ("free: backend %u slots %" PRIu32 "+%" PRIu32,
               t->id, first - t->first, n);
}

void
tierset_trim (struct tierset *ts, slot_t first, uint32_t n)
{
  struct tier *t = tierset_lookup (ts, first);

  if (t->be->ops->trim &&
      t->be->ops->trim (t->be, first - t->first, n) == -1)
    __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
}

void
tierset_mark_bad (struct tierset *ts, slot_t first, uint32_t n)
{
  struct tier *t = tierset_lookup (ts, first);

  pthread_mutex_lock (&t->lock);
  t->used -= n;
  t->bad += n;
  pthread_mutex_unlock (&t->lock);
  log_error ("backend %u %s: slots %" PRIu32 "+%" PRIu32 " marked bad",
             t->id, t->be->target, first - t->first, n);
}

/* Fail a tier: no new pages go there; its pages are still read. */
static void
tier_fail (struct tier *t, const char *why)
{
  if (__atomic_exchange_n (&t->state, TIER_FAILED, __ATOMIC_RELAXED)
      != TIER_FAILED)
    log_error ("backend %u %s: failed (%s); no new pages go there",
               t->id, t->be->target, why);
}

/* Count the outcome of one I/O request on a tier; fail the tier after
 * max_errors errors in a row, or when its backend gave up reaching its
 * server.  A lost connection (ENOTCONN) counts as an error but not
 * towards max_errors: the backend's own grace time decides about those.
 */
static void
tier_count_result (struct tierset *ts, struct tier *t, int r)
{
  int err = errno;
  unsigned errors;

  if (r == 0) {
    __atomic_store_n (&t->consecutive_errors, 0, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
  if (backend_health (t->be) == BACKEND_DEAD)
    tier_fail (t, "its server is gone");
  else if (err != ENOTCONN) {
    errors = __atomic_add_fetch (&t->consecutive_errors, 1,
                                 __ATOMIC_RELAXED);
    if (errors >= ts->max_errors)
      tier_fail (t, "too many consecutive errors");
  }
  errno = err;
}

int
tierset_read (struct tierset *ts, slot_t first, uint32_t n, void *buf)
{
  struct tier *t = tierset_lookup (ts, first);
  int r;

  if (swaptier_debug_io)
    log_debug ("read: backend %u slots %" PRIu32 "+%" PRIu32,
               t->id, first - t->first, n);
  __atomic_fetch_add (&t->reads, 1, __ATOMIC_RELAXED);
  r = t->be->ops->read (t->be, buf, first - t->first, n);
  tier_count_result (ts, t, r);
  return r;
}

int
tierset_write (struct tierset *ts, slot_t first, uint32_t n,
               const void *buf, bool fua)
{
  struct tier *t = tierset_lookup (ts, first);
  int r;

  if (swaptier_debug_io)
    log_debug ("write: backend %u slots %" PRIu32 "+%" PRIu32 "%s",
               t->id, first - t->first, n, fua ? " fua" : "");
  __atomic_fetch_add (&t->writes, 1, __ATOMIC_RELAXED);
  r = t->be->ops->write (t->be, buf, first - t->first, n, fua);
  /* Only after the write: a flush that cleared the flag meanwhile does
   * not cover this write, the next one will.
   */
  __atomic_store_n (&t->dirty, true, __ATOMIC_RELEASE);
  tier_count_result (ts, t, r);
  return r;
}

int
tierset_flush (struct tierset *ts)
{
  unsigned i, n = tierset_count (ts);
  int r = 0, saved_errno = 0;

  for (i = 0; i < n; i++) {
    struct tier *t = ts->tier[i];

    /* Clear first: a write completing after this is flushed next time. */
    if (!__atomic_exchange_n (&t->dirty, false, __ATOMIC_ACQ_REL))
      continue;
    if (t->be->ops->flush (t->be) == -1) {
      saved_errno = errno;
      __atomic_store_n (&t->dirty, true, __ATOMIC_RELAXED);
      __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
      r = -1;
    }
  }
  if (r == -1)
    errno = saved_errno;
  return r;
}

const char *
tier_state_name (enum tier_state state)
{
  switch (state) {
  case TIER_ACTIVE: return "active";
  case TIER_FAILED: return "failed";
  }
  return "unknown";
}
