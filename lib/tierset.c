/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the tier set: backends, priorities, allocation, removal.
 * Its I/O (reads, writes, flushes, errors) is in tierset-io.c.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "blist.h"
#include "localpath.h"
#include "log.h"
#include "tierset-internal.h"
#include "unflushed.h"

struct tierset *
tierset_create (unsigned max_errors)
{
  struct tierset *ts = calloc (1, sizeof *ts);
  pthread_rwlockattr_t attr;

  if (ts == NULL) {
    log_error ("tier set: %m");
    return NULL;
  }
  ts->max_errors = max_errors > 0 ? max_errors : 1;
  /* Readers (allocations) never stop coming under load: let a writer
   * (adding, removing, a new priority) in after the current ones.
   */
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&ts->lock, &attr);
  pthread_rwlockattr_destroy (&attr);
  ts->next_first = 1;
  return ts;
}

/* Free a tier: its allocator, its copy of the target and itself, not
 * its backend.
 */
static void
tier_free (struct tier *t)
{
  blist_destroy (t->blist);
  unflushed_destroy (t->unflushed);
  free (t->target);
  free (t->domain_name);
  free (t);
}

/* Close (or with discard, discard) every backend and free the set. */
static void
tierset_free (struct tierset *ts, bool discard)
{
  unsigned i;

  if (ts == NULL)
    return;
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    if (discard)
      backend_discard (t->be);
    else
      backend_close (t->be);
    pthread_mutex_destroy (&t->lock);
    pthread_mutex_destroy (&t->flush_lock);
    tier_free (t);
  }
  domain_table_clear (&ts->domains);
  pthread_rwlock_destroy (&ts->lock);
  free (ts);
}

void
tierset_destroy (struct tierset *ts)
{
  tierset_free (ts, false);
}

void
tierset_discard (struct tierset *ts)
{
  tierset_free (ts, true);
}

/* Rebuild the priority groups from the tiers not removed (with the
 * write lock): groups by decreasing priority, members by increasing id.
 */
static void
tierset_build_groups (struct tierset *ts)
{
  unsigned i, g;

  ts->ngroups = 0;
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    if (t->removed)
      continue;
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

/* Whether the set can take backend be (called with the lock); if not,
 * say why.
 */
static bool
tierset_has_room (const struct tierset *ts, const struct backend *be)
{
  uint64_t left;

  if (ts->nlive == TIERSET_MAX_TIERS) {
    log_error ("%s: too many backends (at most %d)",
               be->target, TIERSET_MAX_TIERS);
    return false;
  }
  if (ts->ntiers == TIERSET_MAX_IDS) {
    log_error ("%s: too many backends added since the start (at most %d)",
               be->target, TIERSET_MAX_IDS);
    return false;
  }
  left = ts->next_first <= SLOT_MAX ? SLOT_MAX - ts->next_first + 1 : 0;
  if (be->nslots > left) {
    log_error ("%s: %" PRIu64 " slots do not fit in the 32-bit slot address "
               "space (%" PRIu64 " addresses left)",
               be->target, be->nslots, left);
    return false;
  }
  return true;
}

int
tierset_add (struct tierset *ts, struct backend *be, int priority)
{
  return tierset_add_domain (ts, be, priority, NULL);
}

/* tierset_add_domain, storing pages in clear with clear. */
static int
tierset_add_tier (struct tierset *ts, struct backend *be, int priority,
                  const char *domain, bool clear)
{
  struct tier *t;
  bool room;
  int d;

  if (priority < TIERSET_PRIORITY_MIN || priority > TIERSET_PRIORITY_MAX) {
    log_error ("%s: priority %d is out of range (%d to %d)",
               be->target, priority,
               TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX);
    return -1;
  }
  pthread_rwlock_rdlock (&ts->lock);
  room = tierset_has_room (ts, be);
  pthread_rwlock_unlock (&ts->lock);
  if (!room)
    return -1;

  /* The allocator of a large backend takes a while to build: not under
   * the write lock, which stops every allocation.
   */
  t = calloc (1, sizeof *t);
  if (t && (t->domain_name = domain ? strdup (domain)
            : domain_default (be->target)) == NULL) {
    free (t);
    return -1;
  }
  if (t == NULL || (t->target = strdup (be->target)) == NULL ||
      (t->blist = blist_create (be->nslots)) == NULL ||
      (t->unflushed = unflushed_create (be->nslots)) == NULL) {
    log_error ("%s: allocator for %" PRIu64 " slots: %m",
               be->target, be->nslots);
    if (t)
      tier_free (t);
    return -1;
  }
  t->priority = priority;
  t->clear = clear;
  t->be = be;
  t->kind = be->ops->kind;
  t->local = backend_file_identity (be, &t->dev, &t->ino);
  t->nslots = be->nslots;
  pthread_mutex_init (&t->lock, NULL);
  pthread_mutex_init (&t->flush_lock, NULL);

  /* Another backend may have been added meanwhile. */
  pthread_rwlock_wrlock (&ts->lock);
  if (!tierset_has_room (ts, be) ||
      (d = domain_table_get (&ts->domains, t->domain_name)) == -1) {
    pthread_rwlock_unlock (&ts->lock);
    pthread_mutex_destroy (&t->lock);
    pthread_mutex_destroy (&t->flush_lock);
    tier_free (t);
    return -1;
  }
  t->id = ts->ntiers;
  t->domain = d;
  t->first = ts->next_first;
  ts->next_first += be->nslots + 1;
  ts->tier[t->id] = t;
  ts->nlive++;
  __atomic_store_n (&ts->ntiers, t->id + 1, __ATOMIC_RELEASE);
  tierset_build_groups (ts);
  pthread_rwlock_unlock (&ts->lock);
  return t->id;
}

/* Refuse path if it is a file that a backend of the set uses already
 * (before opening it: its lock would refuse it with a less helpful
 * message).  A path that does not exist yet is left to the opening.
 */
static int
tierset_check_file (struct tierset *ts, const char *path)
{
  struct stat st;
  uint64_t dev, ino;
  unsigned i;
  int r = 0;

  if (stat (path, &st) == -1)
    return 0;
  dev = S_ISBLK (st.st_mode) ? st.st_rdev : st.st_dev;
  ino = S_ISBLK (st.st_mode) ? 0 : st.st_ino;
  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < ts->ntiers; i++) {
    const struct tier *t = ts->tier[i];

    if (!t->removed && t->local && t->dev == dev && t->ino == ino) {
      log_error ("backend %s is the same file as backend %s",
                 path, t->target);
      r = -1;
      break;
    }
  }
  pthread_rwlock_unlock (&ts->lock);
  return r;
}

int
tierset_open (struct tierset *ts, const struct tier_spec *spec)
{
  struct backend *be;
  int id;

  if (backend_is_uri (spec->target))
    be = backend_nbd_open (spec->target, spec->connections,
                           spec->timeout_ms, spec->grace_ms);
  else {
    char *path = localpath_resolve (spec->target);

    if (path == NULL || tierset_check_file (ts, path) == -1) {
      free (path);
      return -1;
    }
    be = backend_file_open (path, spec->capacity, spec->force);
    free (path);
  }
  if (be == NULL)
    return -1;
  id = tierset_add_tier (ts, be, spec->priority, spec->domain, spec->clear);
  if (id == -1)
    backend_discard (be);
  return id;
}

int
tierset_add_domain (struct tierset *ts, struct backend *be, int priority,
                    const char *domain)
{
  return tierset_add_tier (ts, be, priority, domain, false);
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
    if (!__atomic_load_n (&ts->tier[i]->removed, __ATOMIC_ACQUIRE))
      sum += ts->tier[i]->nslots;
  return sum;
}

struct tier *
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

/* The tier of id, or NULL after log_error if there is none (called with
 * the set's lock).
 */
static struct tier *
tierset_live (struct tierset *ts, unsigned id)
{
  if (id >= ts->ntiers || ts->tier[id]->removed) {
    log_error ("no backend %u", id);
    return NULL;
  }
  return ts->tier[id];
}

bool
tierset_stats (struct tierset *ts, unsigned id, struct tier_stats *st)
{
  struct tier *t;

  if (id >= tierset_count (ts))
    return false;
  t = ts->tier[id];
  /* The read lock keeps a removal from closing the backend and freeing
   * the allocator meanwhile.
   */
  pthread_rwlock_rdlock (&ts->lock);
  if (t->removed) {
    pthread_rwlock_unlock (&ts->lock);
    return false;
  }
  *st = (struct tier_stats) {
    .id = t->id,
    .target = t->target,
    .kind = t->kind,
    .domain = t->domain_name,
    .priority = t->priority,
    .state = tier_state (t),
    .health = backend_health (t->be),
    .first = t->first,
    .capacity = t->nslots,
    .reads = __atomic_load_n (&t->reads, __ATOMIC_RELAXED),
    .writes = __atomic_load_n (&t->writes, __ATOMIC_RELAXED),
    .errors = __atomic_load_n (&t->errors, __ATOMIC_RELAXED),
    .read_slots = __atomic_load_n (&t->read_slots, __ATOMIC_RELAXED),
    .write_slots = __atomic_load_n (&t->write_slots, __ATOMIC_RELAXED),
    .lost = __atomic_load_n (&t->lost, __ATOMIC_RELAXED),
    .demoted = __atomic_load_n (&t->demoted, __ATOMIC_RELAXED),
    .promoted = __atomic_load_n (&t->promoted, __ATOMIC_RELAXED),
    .rereads = __atomic_load_n (&t->rereads, __ATOMIC_RELAXED),
    .clear = t->clear,
    .corrupt = __atomic_load_n (&t->corrupt, __ATOMIC_RELAXED),
    .failure = __atomic_load_n (&t->failure_known, __ATOMIC_ACQUIRE)
               ? t->failure : NULL,
  };
  pthread_mutex_lock (&t->lock);
  st->used = t->used;
  st->free = blist_free_count (t->blist);
  st->bad = t->bad;
  pthread_mutex_unlock (&t->lock);
  pthread_rwlock_unlock (&ts->lock);
  return true;
}

int
tierset_set_priority (struct tierset *ts, unsigned id, int priority)
{
  struct tier *t;

  if (priority < TIERSET_PRIORITY_MIN || priority > TIERSET_PRIORITY_MAX) {
    log_error ("backend %u: priority %d is out of range (%d to %d)",
               id, priority, TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX);
    return -1;
  }
  pthread_rwlock_wrlock (&ts->lock);
  t = tierset_live (ts, id);
  if (t) {
    t->priority = priority;
    tierset_build_groups (ts);
  }
  pthread_rwlock_unlock (&ts->lock);
  return t ? 0 : -1;
}

/* Free slots of the tiers other than skip that take allocations (called
 * with the set's lock); *n counts those tiers.
 */
static uint64_t
tierset_room_elsewhere (struct tierset *ts, const struct tier *skip,
                        unsigned *n)
{
  uint64_t room = 0;
  unsigned i;

  *n = 0;
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    if (t == skip || t->removed || tier_state (t) != TIER_ACTIVE ||
        backend_health (t->be) != BACKEND_UP)
      continue;
    (*n)++;
    pthread_mutex_lock (&t->lock);
    room += blist_free_count (t->blist);
    pthread_mutex_unlock (&t->lock);
  }
  return room;
}

int
tierset_drain_begin (struct tierset *ts, unsigned id, uint64_t spare)
{
  struct tier *t;
  uint64_t room, used;
  unsigned others;
  int r = -1;

  /* With the write lock, no allocation is under way: none lands on the
   * tier once the lock is released.
   */
  pthread_rwlock_wrlock (&ts->lock);
  t = tierset_live (ts, id);
  if (t == NULL)
    goto out;
  if (t->draining) {
    log_error ("backend %u %s is being removed already", id, t->target);
    goto out;
  }
  room = tierset_room_elsewhere (ts, t, &others);
  pthread_mutex_lock (&t->lock);
  used = t->used;
  pthread_mutex_unlock (&t->lock);
  if (others == 0) {
    log_error ("backend %u %s cannot be removed: no other backend takes "
               "new pages", id, t->target);
    goto out;
  }
  if (room < spare + used) {
    log_error ("backend %u %s cannot be removed: the other backends have "
               "%" PRIu64 " free slots, %" PRIu64 " of them kept spare, "
               "for its %" PRIu64 " pages", id, t->target, room, spare,
               used);
    goto out;
  }
  __atomic_store_n (&t->draining, true, __ATOMIC_RELAXED);
  r = 0;
 out:
  pthread_rwlock_unlock (&ts->lock);
  return r;
}

void
tierset_drain_cancel (struct tierset *ts, unsigned id)
{
  __atomic_store_n (&ts->tier[id]->draining, false, __ATOMIC_RELAXED);
}

int
tierset_remove (struct tierset *ts, unsigned id)
{
  struct tier *t;
  struct backend *be;
  uint64_t used = 0;

  pthread_rwlock_wrlock (&ts->lock);
  t = tierset_live (ts, id);
  if (t) {
    pthread_mutex_lock (&t->lock);
    used = t->used;
    pthread_mutex_unlock (&t->lock);
    if (!t->draining) {
      log_error ("backend %u %s cannot be closed: it is not being drained",
                 id, t->target);
      t = NULL;
    }
    else if (used > 0) {
      log_error ("backend %u %s cannot be closed: %" PRIu64 " of its slots "
                 "are in use", id, t->target, used);
      t = NULL;
    }
  }
  if (t) {
    /* Paired with tierset_flush: it sees this, or this sees it. */
    __atomic_store_n (&t->removed, true, __ATOMIC_SEQ_CST);
    ts->nlive--;
    domain_table_put (&ts->domains, t->domain);
    tierset_build_groups (ts);
  }
  pthread_rwlock_unlock (&ts->lock);
  if (t == NULL)
    return -1;

  /* No page maps to the tier and nothing allocates there, so only a
   * flush that saw it before it was removed may still use it.
   */
  while (__atomic_load_n (&t->flushing, __ATOMIC_SEQ_CST) > 0)
    nanosleep (&(struct timespec) { .tv_nsec = 1000000 }, NULL);
  be = t->be;
  t->be = NULL;
  backend_close (be);
  blist_destroy (t->blist);
  t->blist = NULL;
  unflushed_destroy (t->unflushed);
  t->unflushed = NULL;
  return 0;
}

/* Allocate want .. max slots on one tier, if it takes allocations. */
static slot_t
tier_alloc (struct tier *t, uint32_t want, uint32_t max, uint32_t *len)
{
  uint64_t s, n;

  if (tier_state (t) != TIER_ACTIVE || backend_health (t->be) != BACKEND_UP)
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
                    const struct tier *avoided, bool only_avoided,
                    domain_mask exclude, struct tier_window win)
{
  unsigned g, i;

  for (g = 0; g < ts->ngroups; g++) {
    struct tier_group *grp = &ts->group[g];

    if (grp->priority < win.lo || grp->priority >= win.hi)
      continue;
    /* The further copies of a page start where its first one did, and
     * move on past the domains excluded: one step per page, so that the
     * first copies rotate over the group whatever the copies.
     */
    unsigned start = exclude ? __atomic_load_n (&grp->rotor, __ATOMIC_RELAXED)
      : __atomic_fetch_add (&grp->rotor, 1, __ATOMIC_RELAXED);
    uint32_t want = max;

    for (;;) {
      for (i = 0; i < grp->n; i++) {
        struct tier *t = grp->member[(start + i) % grp->n];
        slot_t s;

        if ((t == avoided) != only_avoided ||
            (exclude & ((domain_mask) 1 << t->domain)))
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
                   slot_t avoid, domain_mask exclude,
                   struct tier_window win)
{
  const struct tier *avoided;
  slot_t s;

  pthread_rwlock_rdlock (&ts->lock);
  avoided = avoid != SLOT_NONE ? tierset_lookup (ts, avoid) : NULL;
  s = tierset_alloc_pass (ts, max, len, avoided, false, exclude, win);
  if (s == SLOT_NONE && avoided)
    s = tierset_alloc_pass (ts, max, len, avoided, true, exclude, win);
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
  unflushed_forget (t->unflushed, first - t->first, n);
  pthread_mutex_unlock (&t->lock);
  if (swaptier_debug_alloc)
    log_debug ("free: backend %u slots %" PRIu32 "+%" PRIu32,
               t->id, first - t->first, n);
}

void
tierset_mark_bad (struct tierset *ts, slot_t first, uint32_t n)
{
  struct tier *t = tierset_lookup (ts, first);

  pthread_mutex_lock (&t->lock);
  t->used -= n;
  t->bad += n;
  unflushed_forget (t->unflushed, first - t->first, n);
  pthread_mutex_unlock (&t->lock);
  log_error ("backend %u %s: slots %" PRIu32 "+%" PRIu32 " marked bad",
             t->id, t->target, first - t->first, n);
}

void
tierset_mark_lost (struct tierset *ts, slot_t slot)
{
  struct tier *t = tierset_lookup (ts, slot);

  __atomic_fetch_add (&t->lost, 1, __ATOMIC_RELAXED);
  tierset_mark_bad (ts, slot, 1);
}

uint64_t
tierset_lost (const struct tierset *ts)
{
  unsigned i, n = tierset_count (ts);
  uint64_t sum = 0;

  for (i = 0; i < n; i++)
    sum += __atomic_load_n (&ts->tier[i]->lost, __ATOMIC_RELAXED);
  return sum;
}

domain_mask
tierset_domain_of (const struct tierset *ts, slot_t slot)
{
  return (domain_mask) 1 << tierset_lookup (ts, slot)->domain;
}

unsigned
tierset_ndomains (struct tierset *ts, unsigned skip)
{
  domain_mask seen = 0;
  unsigned i, n = 0;

  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < ts->ntiers; i++) {
    const struct tier *t = ts->tier[i];
    domain_mask bit = (domain_mask) 1 << t->domain;

    if (t->removed || i == skip || (seen & bit))
      continue;
    seen |= bit;
    n++;
  }
  pthread_rwlock_unlock (&ts->lock);
  return n;
}

unsigned
tierset_read_rank (const struct tierset *ts, slot_t slot)
{
  const struct tier *t = tierset_lookup (ts, slot);
  unsigned state;

  if (tier_is_failed (t))
    state = 0;
  else if (backend_health (t->be) == BACKEND_DOWN)
    state = 1;
  else
    state = 2;
  /* Priorities are -1 .. 32767: 16 bits once shifted by one. */
  return state << 16 | (unsigned) (__atomic_load_n (&t->priority,
                                                    __ATOMIC_RELAXED) + 1);
}

bool
tierset_slot_failed (const struct tierset *ts, slot_t slot)
{
  return tier_is_failed (tierset_lookup (ts, slot));
}

bool
tierset_slot_failed_unlocked (struct tierset *ts, slot_t slot)
{
  const struct tier *t;
  bool failed;

  /* A removal marks the tier removed under the write lock before it
   * closes the backend.
   */
  pthread_rwlock_rdlock (&ts->lock);
  t = tierset_lookup (ts, slot);
  failed = t->removed || tier_is_failed (t);
  pthread_rwlock_unlock (&ts->lock);
  return failed;
}

uint64_t
tierset_failed_used (struct tierset *ts)
{
  unsigned i;
  uint64_t sum = 0;

  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < ts->ntiers; i++) {
    struct tier *t = ts->tier[i];

    if (t->removed || !tier_is_failed (t))
      continue;
    pthread_mutex_lock (&t->lock);
    sum += t->used;
    pthread_mutex_unlock (&t->lock);
  }
  pthread_rwlock_unlock (&ts->lock);
  return sum;
}

const char *
tier_state_name (enum tier_state state)
{
  switch (state) {
  case TIER_ACTIVE: return "active";
  case TIER_DRAINING: return "draining";
  case TIER_FAILED: return "failed";
  }
  return "unknown";
}
