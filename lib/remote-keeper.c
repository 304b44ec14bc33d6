/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the keeper thread of a remote backend (see remote.h).
 *
 * One per backend, started in the serving process (backend_nbd_serve,
 * for the backends opened before; at opening, for those opened after;
 * and at the first lost connection, for programs that never call
 * backend_nbd_serve).  While DOWN it reconnects with growing pauses, the
 * new connection checked for our claim; while UP it raises the claim's
 * heartbeat every CLAIM_BEAT_MS on its least used connection, and fails
 * the backend if slot 0 is no longer our claim.  It stops when the
 * backend is closed, shut down or DEAD.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "remote.h"

/* Every open remote backend, so that the serving process can start
 * their keepers.
 */
static struct {
  pthread_mutex_t lock;
  bool serving;                        /* backend_nbd_serve was called */
  struct remote_backend *first;
} remote_all = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *remote_keeper (void *arg);

/* Start the keeper unless it runs (with the lock).  Failing to start it
 * fails the backend: nothing would reconnect.
 */
void
remote_start_keeper (struct remote_backend *rb)
{
  int err;

  if (rb->keeper_started || rb->closing)
    return;
  err = pthread_create (&rb->keeper, NULL, remote_keeper, rb);
  if (err) {
    errno = err;
    log_error ("%s: starting the keeper thread: %m", rb->be.target);
    remote_mark_dead (rb, "cannot start the keeper thread");
    return;
  }
  rb->keeper_started = true;
  rb->keeper_running = true;
}

/* One attempt of the keeper to reconnect (with the lock, dropped
 * meanwhile): UP once the claim reads back on a link that still works,
 * or on a new connection put in the pool (or, the pool full, beside a
 * link that works); DEAD if slot 0 is not our claim or the grace time
 * is over; else still DOWN.
 */
static void
remote_reconnect (struct remote_backend *rb)
{
  struct nbd_handle *h;
  enum remote_result r = REMOTE_UNSENT;
  struct remote_conn *c;

  /* A server that takes one connection only needs the old one closed
   * first, once its replies came.
   */
  remote_reap (rb);
  /* A link that still works proves the server there, if the claim reads
   * back on it (and a server that takes one connection would refuse
   * another).
   */
  if ((c = remote_pick_working (rb)) != NULL) {
    c->users++;
    pthread_mutex_unlock (&rb->lock);
    r = remote_check_claim (rb, c->link, NULL, rb->page, REMOTE_FOREVER);
    remote_release (rb, c, r);
    pthread_mutex_lock (&rb->lock);
    if (r == REMOTE_OK && rb->health == BACKEND_DOWN) {
      __atomic_store_n (&rb->health, BACKEND_UP, __ATOMIC_RELAXED);
      log_error ("%s: reconnected after %" PRIu64 " ms (a connection "
                 "still worked)", rb->be.target,
                 remote_now_ms () - rb->down_since_ms);
      pthread_cond_broadcast (&rb->changed);
    }
    if (r == REMOTE_OK || r == REMOTE_MISMATCH)
      return;
    r = REMOTE_UNSENT;
  }
  pthread_mutex_unlock (&rb->lock);
  h = remote_connect_handle (rb, REMOTE_FOREVER);
  if (h)
    r = remote_check_claim (rb, NULL, h, rb->page, REMOTE_FOREVER);
  pthread_mutex_lock (&rb->lock);

  if (r == REMOTE_OK && rb->health == BACKEND_DOWN) {
    if (remote_pool_add (rb, h))
      h = NULL;
    /* UP only with a place to use: while every place holds a broken
     * link still owed replies, it stays DOWN (the next attempt reaps).
     */
    if (h == NULL || !remote_pool_blocked (rb)) {
      __atomic_store_n (&rb->health, BACKEND_UP, __ATOMIC_RELAXED);
      log_error ("%s: reconnected after %" PRIu64 " ms", rb->be.target,
                 remote_now_ms () - rb->down_since_ms);
      pthread_cond_broadcast (&rb->changed);
    }
  }
  if (h)
    nbd_close (h);
  if (rb->health == BACKEND_DOWN &&
      remote_now_ms () - rb->down_since_ms >= rb->grace_ms)
    remote_mark_dead (rb, "the server did not come back in time");
}

/* One heartbeat of the keeper, on the least used working connection,
 * else on one it connects (with the lock, dropped meanwhile).  All
 * full: no beat this time.
 */
static void
remote_beat (struct remote_backend *rb)
{
  /* Queued behind requests, a beat is late only as they are (no reply
   * on its connection for timeout=): no bound of its own.
   */
  struct remote_slot0 s = { .rb = rb,
                            .wait_ms = rb->timeout_ms + rb->grace_ms,
                            .stoppable = true, .r = REMOTE_OK };
  struct claim_io io = remote_slot0_io (&s);
  struct remote_conn *c;
  enum claim_state state = CLAIM_OURS;

  /* The least used working link; only if there is none, a place to
   * connect (a server may take one connection only).
   */
  c = remote_pick_working (rb);
  if (c == NULL) {
    remote_reap (rb);
    c = remote_pick (rb);
  }
  if (c == NULL)
    return;
  c->users++;
  pthread_mutex_unlock (&rb->lock);
  /* No working link (the server closed the last one): connect one, which
   * finds out whether the server is there.
   */
  if (c->link == NULL)
    s.r = remote_transfer (rb, c, REMOTE_OP_READ, rb->page, PAGE_SIZE, 0,
                           false, remote_now_ms () + rb->timeout_ms);
  /* Refused, the read may have gone to a link connected meanwhile (it
   * answered: no beat this time).
   */
  if (s.r == REMOTE_OK && c->link) {
    s.link = c->link;
    claim_beat (&rb->claim, rb->be.target, &io, rb->page, &state);
  }
  if (state != CLAIM_OURS) {
    pthread_mutex_lock (&rb->lock);
    remote_mark_dead (rb, state == CLAIM_GONE ? "the server lost its data"
                      : "claimed by another instance");
    pthread_mutex_unlock (&rb->lock);
  }
  remote_release (rb, c, s.r);
  pthread_mutex_lock (&rb->lock);
}

/* The keeper: reconnect with growing pauses while DOWN, raise the
 * heartbeat every CLAIM_BEAT_MS while UP, until the backend is closed,
 * shut down or DEAD.
 */
static void *
remote_keeper (void *arg)
{
  struct remote_backend *rb = arg;
  unsigned backoff = REMOTE_BACKOFF_MIN_MS;
  uint64_t next_beat = 0;

  pthread_mutex_lock (&rb->lock);
  while (!rb->closing && !rb->stopping && rb->health != BACKEND_DEAD) {
    uint64_t now = remote_now_ms ();

    if (rb->health == BACKEND_DOWN) {
      remote_wait (rb, now + backoff);
      if (rb->closing || rb->stopping || rb->health != BACKEND_DOWN)
        continue;
      remote_reconnect (rb);
      backoff = backoff * 2 < REMOTE_BACKOFF_MAX_MS ? backoff * 2
        : REMOTE_BACKOFF_MAX_MS;
      continue;
    }
    backoff = REMOTE_BACKOFF_MIN_MS;
    if (now >= next_beat) {
      next_beat = now + CLAIM_BEAT_MS;
      remote_beat (rb);
      continue;
    }
    remote_wait (rb, next_beat);
  }
  rb->keeper_running = false;
  pthread_mutex_unlock (&rb->lock);
  return NULL;
}

int
remote_revive (struct remote_backend *rb)
{
  struct nbd_handle *h;
  enum remote_result r = REMOTE_UNSENT;
  uint64_t until = remote_now_ms () + rb->timeout_ms;
  char *page = malloc (PAGE_SIZE);
  bool serving;

  if (page == NULL) {
    log_error ("%s: %m", rb->be.target);
    return -1;
  }
  pthread_mutex_lock (&remote_all.lock);
  serving = remote_all.serving;
  pthread_mutex_unlock (&remote_all.lock);

  h = remote_connect_handle (rb, until);
  if (h)
    r = remote_check_claim (rb, NULL, h, page, until);
  free (page);
  if (r != REMOTE_OK) {
    if (h)
      nbd_close (h);
    if (r == REMOTE_MISMATCH)
      log_error ("%s: slot 0 no longer holds this instance's claim",
                 rb->be.target);
    else
      log_error ("%s: its server is still not reachable", rb->be.target);
    return -1;
  }

  pthread_mutex_lock (&rb->lock);
  if (rb->health != BACKEND_DEAD || rb->closing || rb->stopping) {
    pthread_mutex_unlock (&rb->lock);
    nbd_close (h);
    log_error ("%s: changed state while it was being revived",
               rb->be.target);
    return -1;
  }
  if (remote_pool_add (rb, h))
    h = NULL;
  /* Every place still holds a broken link owed replies: DOWN, and the
   * keeper connects once one is free (or gives up after grace=).
   */
  if (h && remote_pool_blocked (rb)) {
    __atomic_store_n (&rb->health, BACKEND_DOWN, __ATOMIC_RELAXED);
    rb->down_since_ms = remote_now_ms ();
  }
  else
    __atomic_store_n (&rb->health, BACKEND_UP, __ATOMIC_RELAXED);
  /* A keeper that left its loop on seeing DEAD is joined (it no longer
   * needs the lock) and replaced; one that has not seen it goes on.
   */
  if (rb->keeper_started && !rb->keeper_running) {
    pthread_join (rb->keeper, NULL);
    rb->keeper_started = false;
  }
  if (serving)
    remote_start_keeper (rb);
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
  if (h)
    nbd_close (h);
  log_notice ("%s: reconnected, and slot 0 still holds this instance's "
              "claim", rb->be.target);
  return 0;
}

/* Write the claim back released on an idle connection, waiting at most
 * REMOTE_RELEASE_MS for each command (the process may be stopping).
 */
void
remote_release_claim (struct remote_backend *rb)
{
  struct remote_slot0 s = { .rb = rb, .wait_ms = REMOTE_RELEASE_MS };
  struct claim_io io = remote_slot0_io (&s);
  unsigned i;

  for (i = 0; i < rb->nconns && s.link == NULL; i++)
    if (rb->conn[i].link && !remote_link_broken (rb->conn[i].link))
      s.link = rb->conn[i].link;
  claim_release (&rb->claim, rb->be.target,
                 s.link && __atomic_load_n (&rb->health, __ATOMIC_RELAXED)
                 == BACKEND_UP ? &io : NULL, rb->page);
}

void
remote_keeper_add (struct remote_backend *rb)
{
  pthread_mutex_lock (&remote_all.lock);
  rb->next = remote_all.first;
  remote_all.first = rb;
  if (remote_all.serving) {
    pthread_mutex_lock (&rb->lock);
    remote_start_keeper (rb);
    pthread_mutex_unlock (&rb->lock);
  }
  pthread_mutex_unlock (&remote_all.lock);
}

void
remote_keeper_remove (struct remote_backend *rb)
{
  struct remote_backend **p;

  pthread_mutex_lock (&remote_all.lock);
  for (p = &remote_all.first; *p; p = &(*p)->next) {
    if (*p == rb) {
      *p = rb->next;
      break;
    }
  }
  pthread_mutex_unlock (&remote_all.lock);
}

void
backend_nbd_serve (void)
{
  struct remote_backend *rb;

  pthread_mutex_lock (&remote_all.lock);
  remote_all.serving = true;
  for (rb = remote_all.first; rb; rb = rb->next) {
    pthread_mutex_lock (&rb->lock);
    remote_start_keeper (rb);
    pthread_mutex_unlock (&rb->lock);
  }
  pthread_mutex_unlock (&remote_all.lock);
}
