/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the tier set's I/O: reads, writes, trims and flushes of the
 * backends, and the counting of their errors, which fails a backend
 * after too many in a row (see tierset.h).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tierset-internal.h"
#include "unflushed.h"

void
tierset_trim_free (struct tierset *ts, slot_t first, uint32_t n)
{
  struct tier *t = tierset_lookup (ts, first);

  if (t->be->ops->trim &&
      t->be->ops->trim (t->be, first - t->first, n) == -1) {
    __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
    if (errno == ENOTCONN) {
      tierset_mark_bad (ts, first, n);
      return;
    }
  }
  tierset_free_run (ts, first, n);
}

/* Fail a tier: no new pages go there; its pages are still read.  The
 * first caller's reason is kept for tierset_stats.
 */
static void tier_fail (struct tier *t, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
tier_fail (struct tier *t, const char *fmt, ...)
{
  va_list ap;

  if (__atomic_exchange_n (&t->failed, true, __ATOMIC_RELAXED))
    return;
  va_start (ap, fmt);
  vsnprintf (t->failure, sizeof t->failure, fmt, ap);
  va_end (ap);
  __atomic_store_n (&t->failure_known, true, __ATOMIC_RELEASE);
  log_error ("backend %u %s: failed (%s); no new pages go there",
             t->id, t->target, t->failure);
}

/* Fail tier t if its backend gave up reaching its server; whether it
 * did.
 */
static bool
tier_fail_if_gone (struct tier *t)
{
  if (backend_health (t->be) != BACKEND_DEAD)
    return false;
  tier_fail (t, "its server is gone (unreachable past grace=)");
  return true;
}

int
tierset_revive (struct tierset *ts, unsigned id)
{
  struct tier *t;
  int r = -1;

  pthread_rwlock_rdlock (&ts->lock);
  if (id >= tierset_count (ts) || ts->tier[id]->removed) {
    log_error ("no backend %u", id);
    goto out;
  }
  t = ts->tier[id];
  /* Given up since the last tick: failed now, as list already says. */
  tier_fail_if_gone (t);
  if (!__atomic_load_n (&t->failed, __ATOMIC_RELAXED)) {
    log_error ("backend %u %s is not failed", id, t->target);
    goto out;
  }
  if (t->be->ops->check_claim && t->be->ops->check_claim (t->be) == -1)
    goto out;
  __atomic_store_n (&t->error_streak[0], 0, __ATOMIC_RELAXED);
  __atomic_store_n (&t->error_streak[1], 0, __ATOMIC_RELAXED);
  __atomic_store_n (&t->failure_known, false, __ATOMIC_RELAXED);
  __atomic_store_n (&t->failed, false, __ATOMIC_RELEASE);
  log_notice ("backend %u %s: revived; new pages go there again", id,
              t->target);
  r = 0;
 out:
  pthread_rwlock_unlock (&ts->lock);
  return r;
}

/* Count the outcome of one read or write (is_write) on a tier; fail the
 * tier after max_errors errors in a row of one kind (reads that still
 * work do not excuse writes that keep failing, nor the reverse), or when
 * its backend gave up reaching its server.  A lost connection (ENOTCONN)
 * counts as an error but not towards max_errors: the backend's own grace
 * time decides about those.
 */
static void
tier_count_result (struct tierset *ts, struct tier *t, bool is_write, int r)
{
  unsigned *streak = &t->error_streak[is_write];
  int err = errno;

  if (r == 0) {
    __atomic_store_n (streak, 0, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
  if (!tier_fail_if_gone (t) && err != ENOTCONN &&
           __atomic_add_fetch (streak, 1, __ATOMIC_RELAXED) >= ts->max_errors)
    tier_fail (t, "%u %s errors in a row (max-errors=), the last: %s",
               ts->max_errors, is_write ? "write" : "read", strerror (err));
  errno = err;
}

int
tierset_read (struct tierset *ts, slot_t first, uint32_t n, void *buf,
              unsigned tries)
{
  struct tier *t = tierset_lookup (ts, first);
  uint64_t start;
  unsigned i;
  int r = -1;

  if (swaptier_debug_io)
    log_debug ("read: backend %u slots %" PRIu32 "+%" PRIu32,
               t->id, first - t->first, n);
  __atomic_fetch_add (&t->reads, 1, __ATOMIC_RELAXED);
  start = latency_now_ns ();
  if (tries == TIERSET_READ_QUICK)
    r = (t->be->ops->read_quick ? t->be->ops->read_quick
         : t->be->ops->read) (t->be, buf, first - t->first, n);
  for (i = 0; i < tries && r == -1; i++) {
    /* A backend that gave up fails every try the same way. */
    if (i > 0 && backend_health (t->be) == BACKEND_DEAD)
      break;
    r = t->be->ops->read (t->be, buf, first - t->first, n);
  }
  latency_add (&t->latency[0], latency_now_ns () - start);
  if (r == 0)
    __atomic_fetch_add (&t->read_slots, n, __ATOMIC_RELAXED);
  tier_count_result (ts, t, false, r);
  return r;
}

int
tierset_write (struct tierset *ts, slot_t first, uint32_t n,
               const void *buf, bool fua)
{
  struct tier *t = tierset_lookup (ts, first);
  uint64_t start;
  int r;

  if (swaptier_debug_io)
    log_debug ("write: backend %u slots %" PRIu32 "+%" PRIu32 "%s",
               t->id, first - t->first, n, fua ? " fua" : "");
  __atomic_fetch_add (&t->writes, 1, __ATOMIC_RELAXED);
  start = latency_now_ns ();
  r = t->be->ops->write (t->be, buf, first - t->first, n, fua);
  latency_add (&t->latency[1], latency_now_ns () - start);
  if (r == 0) {
    __atomic_fetch_add (&t->write_slots, n, __ATOMIC_RELAXED);
    /* Before the write is acknowledged, so that every flush the client
     * sends after that covers it.
     */
    if (!fua) {
      pthread_mutex_lock (&t->lock);
      unflushed_add (t->unflushed, first - t->first, n);
      pthread_mutex_unlock (&t->lock);
    }
  }
  tier_count_result (ts, t, true, r);
  return r;
}

bool
tierset_latency (struct tierset *ts, unsigned id, struct latency total[2],
                 struct latency window[2])
{
  struct tier *t;
  unsigned k;

  if (id >= tierset_count (ts))
    return false;
  t = ts->tier[id];
  if (__atomic_load_n (&t->removed, __ATOMIC_ACQUIRE))
    return false;
  for (k = 0; k < 2; k++)
    latency_snapshot (&t->latency[k], &total[k]);
  pthread_mutex_lock (&t->lock);
  memcpy (window, t->latency_window, sizeof t->latency_window);
  pthread_mutex_unlock (&t->lock);
  return true;
}

void
tierset_tick (struct tierset *ts)
{
  unsigned i, k, n;

  /* Read-locked: a removal frees the backend (t->be) under the lock. */
  pthread_rwlock_rdlock (&ts->lock);
  n = tierset_count (ts);
  for (i = 0; i < n; i++) {
    struct tier *t = ts->tier[i];
    struct latency now[2];

    /* Noticed by the backend (an idle remote's heartbeat) before any
     * request: the tier fails now, with the reason, not at the next
     * request.
     */
    if (!t->removed)
      tier_fail_if_gone (t);

    for (k = 0; k < 2; k++)
      latency_snapshot (&t->latency[k], &now[k]);
    pthread_mutex_lock (&t->lock);
    for (k = 0; k < 2; k++) {
      latency_window (&now[k], &t->latency_at_tick[k],
                      &t->latency_window[k]);
      t->latency_at_tick[k] = now[k];
    }
    pthread_mutex_unlock (&t->lock);
  }
  pthread_rwlock_unlock (&ts->lock);
}

/* Flush one tier if it holds slots written since its last good flush:
 * see unflushed.h.  Returns 0, or -1 with errno set.
 */
static int
tier_flush (struct tier *t)
{
  uint64_t covered;
  int r = 0;

  pthread_mutex_lock (&t->flush_lock);
  pthread_mutex_lock (&t->lock);
  covered = unflushed_begin (t->unflushed);
  pthread_mutex_unlock (&t->lock);
  if (covered > 0) {
    r = t->be->ops->flush (t->be);
    if (r == -1)
      __atomic_fetch_add (&t->errors, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_lock (&t->lock);
  unflushed_end (t->unflushed, r == 0);
  pthread_mutex_unlock (&t->lock);
  pthread_mutex_unlock (&t->flush_lock);
  return r;
}

int
tierset_flush (struct tierset *ts)
{
  unsigned i, n = tierset_count (ts);
  int r = 0, saved_errno = 0;

  for (i = 0; i < n; i++) {
    struct tier *t = ts->tier[i];

    /* Keep tierset_remove from closing the backend meanwhile (a removed
     * tier holds no slot in use, so it needs no flush).
     */
    __atomic_add_fetch (&t->flushing, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n (&t->removed, __ATOMIC_SEQ_CST) &&
        tier_flush (t) == -1) {
      saved_errno = errno;
      r = -1;
    }
    __atomic_sub_fetch (&t->flushing, 1, __ATOMIC_RELEASE);
  }
  if (r == -1)
    errno = saved_errno;
  return r;
}

void
tierset_shutdown (struct tierset *ts)
{
  unsigned i, n = tierset_count (ts);

  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < n; i++) {
    struct tier *t = ts->tier[i];

    if (!t->removed && t->be->ops->shutdown)
      t->be->ops->shutdown (t->be);
  }
  pthread_rwlock_unlock (&ts->lock);
}

