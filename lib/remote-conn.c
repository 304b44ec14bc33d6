/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the remote backend's pool of connections (see remote.h).
 *
 * A pooled connection is a link (remote-link.c): many requests at once.
 * A handle not in the pool yet (being connected, its claim checked) has
 * one user, which issues one command at a time with libnbd's
 * asynchronous API and waits with nbd_poll in slices of REMOTE_SLICE_MS.
 * Either way the outcome tells what the server may have done: REMOTE_OK
 * and REMOTE_FAILED are answers; REMOTE_LOST means the command may have
 * been sent and no answer came, so the server may still execute it;
 * REMOTE_UNSENT that nothing was sent.  A lost connection makes the
 * backend DOWN (the keeper reconnects) and is closed once it has no user
 * and no command in flight (remote_reap).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "remote.h"

/* Milliseconds on the monotonic clock. */
uint64_t
remote_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set by backend_nbd_shutdown_all: the whole process is stopping. */
static bool remote_process_stopping;

void
backend_nbd_shutdown_all (void)
{
  __atomic_store_n (&remote_process_stopping, true, __ATOMIC_RELEASE);
}

/* Whether waits must end now: the shutdown operation was called, the
 * process is stopping, or the backend is being closed.
 */
bool
remote_stopping (struct remote_backend *rb)
{
  return __atomic_load_n (&rb->stopping, __ATOMIC_ACQUIRE) ||
    __atomic_load_n (&remote_process_stopping, __ATOMIC_ACQUIRE) ||
    __atomic_load_n (&rb->closing, __ATOMIC_ACQUIRE);
}

/* A short pause (10 ms) before trying again. */
void
remote_pause (void)
{
  struct timespec pause = { .tv_nsec = 10 * 1000000L };

  nanosleep (&pause, NULL);
}

/* Wait on rb->changed (with the lock) until woken or until the monotonic
 * time until_ms.
 */
void
remote_wait (struct remote_backend *rb, uint64_t until_ms)
{
  struct timespec ts;

  if (until_ms == REMOTE_FOREVER) {
    pthread_cond_wait (&rb->changed, &rb->lock);
    return;
  }
  ts.tv_sec = until_ms / 1000;
  ts.tv_nsec = (until_ms % 1000) * 1000000L;
  pthread_cond_timedwait (&rb->changed, &rb->lock, &ts);
}

bool
remote_error_is_connection (int err)
{
  switch (err) {
  case ENOTCONN: case ESHUTDOWN: case ECONNRESET: case ECONNREFUSED:
  case ECONNABORTED: case EPIPE: case ETIMEDOUT:
    return true;
  default:
    return false;
  }
}

/* Report libnbd's error for a command that failed on h, and classify it:
 * REMOTE_LOST for the connection (the command may have been sent), else
 * REMOTE_FAILED with errno set to the server's error.
 */
static enum remote_result
remote_command_failed (struct remote_backend *rb, struct nbd_handle *h)
{
  int err = nbd_get_errno ();

  log_error ("%s: %s", rb->be.target, nbd_get_error ());
  if ((!nbd_aio_is_ready (h) && !nbd_aio_is_processing (h)) ||
      remote_error_is_connection (err))
    return REMOTE_LOST;
  errno = err ? err : EIO;
  return REMOTE_FAILED;
}

/* One command on handle h, which no other thread uses: see remote_run. */
static enum remote_result
remote_run_alone (struct remote_backend *rb, struct nbd_handle *h,
                  enum remote_op op, void *buf, uint64_t count,
                  uint64_t offset, bool fua, uint64_t until, bool stoppable)
{
  uint64_t start = remote_now_ms ();
  uint64_t deadline = start + rb->timeout_ms;
  uint32_t flags = fua && rb->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  int64_t cookie = -1;

  if (until < deadline)
    deadline = until;
  switch (op) {
  case REMOTE_OP_READ:
    cookie = nbd_aio_pread (h, buf, count, offset, NBD_NULL_COMPLETION, 0);
    break;
  case REMOTE_OP_WRITE:
    cookie = nbd_aio_pwrite (h, buf, count, offset, NBD_NULL_COMPLETION,
                             flags);
    break;
  case REMOTE_OP_FLUSH:
    cookie = nbd_aio_flush (h, NBD_NULL_COMPLETION, 0);
    break;
  case REMOTE_OP_TRIM:
    cookie = nbd_aio_trim (h, count, offset, NBD_NULL_COMPLETION, 0);
    break;
  }
  if (cookie == -1)
    return remote_command_failed (rb, h);

  for (;;) {
    uint64_t now, slice;
    int r = nbd_aio_command_completed (h, cookie);

    if (r == 1)
      return REMOTE_OK;
    if (r == -1)
      return remote_command_failed (rb, h);
    if (stoppable && remote_stopping (rb)) {
      log_error ("%s: request abandoned: stopping",
                 rb->be.target);
      return REMOTE_LOST;
    }
    now = remote_now_ms ();
    if (now >= deadline) {
      log_error ("%s: no reply within %" PRIu64 " ms", rb->be.target,
                 deadline - start);
      return REMOTE_LOST;
    }
    slice = deadline - now < REMOTE_SLICE_MS ? deadline - now
      : REMOTE_SLICE_MS;
    if (nbd_poll (h, slice) == -1) {
      log_error ("%s: %s", rb->be.target, nbd_get_error ());
      return REMOTE_LOST;
    }
  }
}

enum remote_result
remote_run (struct remote_backend *rb, struct remote_link *link,
            struct nbd_handle *h, enum remote_op op, void *buf,
            uint64_t count, uint64_t offset, bool fua, uint64_t until,
            bool stoppable)
{
  if (link)
    return remote_link_run (link, op, buf, count, offset, fua, until,
                            stoppable);
  return remote_run_alone (rb, h, op, buf, count, offset, fua, until,
                           stoppable);
}

/* Connect a new handle, waiting at most the request timeout, not past
 * until, and not after a shutdown.  NULL after log_error on failure.
 */
struct nbd_handle *
remote_connect_handle (struct remote_backend *rb, uint64_t until)
{
  uint64_t deadline = remote_now_ms () + rb->timeout_ms;
  struct nbd_handle *h = nbd_create ();

  if (until < deadline)
    deadline = until;
  if (h == NULL) {
    log_error ("%s: %s", rb->be.target, nbd_get_error ());
    return NULL;
  }
  if (nbd_set_uri_allow_local_file (h, true) == -1 ||
      nbd_aio_connect_uri (h, rb->be.target) == -1)
    goto err;
  while (nbd_aio_is_connecting (h)) {
    uint64_t now = remote_now_ms ();

    if (now >= deadline || remote_stopping (rb)) {
      if (remote_stopping (rb))
        log_error ("%s: connection abandoned: stopping", rb->be.target);
      else
        log_error ("%s: cannot connect: no answer within %u ms",
                   rb->be.target, rb->timeout_ms);
      nbd_close (h);
      return NULL;
    }
    if (nbd_poll (h, deadline - now < REMOTE_SLICE_MS ? deadline - now
                  : REMOTE_SLICE_MS) == -1)
      goto err;
  }
  if (!nbd_aio_is_ready (h)) {
    log_error ("%s: cannot connect: the server closed the connection",
               rb->be.target);
    nbd_close (h);
    return NULL;
  }
  return h;

 err:
  log_error ("%s: cannot connect: %s", rb->be.target, nbd_get_error ());
  nbd_close (h);
  return NULL;
}

/* Mark the backend DEAD (with the lock). */
void
remote_mark_dead (struct remote_backend *rb, const char *why)
{
  if (rb->health != BACKEND_DEAD)
    log_error ("%s: %s; the backend is failed", rb->be.target, why);
  __atomic_store_n (&rb->health, BACKEND_DEAD, __ATOMIC_RELAXED);
  pthread_cond_broadcast (&rb->changed);
}

/* Whether slot 0 behind h holds our claim (read into page): on
 * REMOTE_MISMATCH the backend is DEAD; REMOTE_FAILED means the server
 * answered the read with an error, which proves nothing either way.
 */
enum remote_result
remote_check_claim (struct remote_backend *rb, struct remote_link *link,
                    struct nbd_handle *h, void *page, uint64_t until)
{
  enum remote_result r = remote_run (rb, link, h, REMOTE_OP_READ, page,
                                     PAGE_SIZE, 0, false, until, true);
  enum claim_state state;

  if (r != REMOTE_OK)
    return r;
  state = claim_check (&rb->claim, page, rb->be.target);
  if (state == CLAIM_OURS)
    return REMOTE_OK;
  pthread_mutex_lock (&rb->lock);
  remote_mark_dead (rb, state == CLAIM_GONE ? "the server lost its data"
                    : "claimed by another instance");
  pthread_mutex_unlock (&rb->lock);
  return REMOTE_MISMATCH;
}

static int
remote_slot0_read (void *opaque, void *page)
{
  struct remote_slot0 *s = opaque;

  s->r = remote_run (s->rb, s->link, s->h, REMOTE_OP_READ, page, PAGE_SIZE,
                     0, false, remote_now_ms () + s->wait_ms, s->stoppable);
  if (s->r != REMOTE_OK)
    log_error ("%s: cannot read swaptier's header in slot 0",
               s->rb->be.target);
  return s->r == REMOTE_OK ? 0 : -1;
}

static int
remote_slot0_write (void *opaque, const void *page)
{
  struct remote_slot0 *s = opaque;

  s->r = remote_run (s->rb, s->link, s->h, REMOTE_OP_WRITE, (void *) page,
                     PAGE_SIZE, 0, true, remote_now_ms () + s->wait_ms,
                     s->stoppable);
  if (s->r != REMOTE_OK)
    log_error ("%s: cannot write swaptier's header to slot 0",
               s->rb->be.target);
  return s->r == REMOTE_OK ? 0 : -1;
}

/* The claim I/O of s. */
struct claim_io
remote_slot0_io (struct remote_slot0 *s)
{
  return (struct claim_io) { .read = remote_slot0_read,
                             .write = remote_slot0_write, .opaque = s };
}

/* Mark the backend DOWN after a lost connection and have the keeper
 * reconnect (with the lock).  Idle connections to the same server are
 * most likely broken the same way: those with nothing in flight are
 * closed (one with no user and replies still to come was cut already:
 * remote_reap closes it).  (A link's poller never takes the lock, so
 * closing one here cannot deadlock.)
 */
void
remote_mark_down (struct remote_backend *rb)
{
  unsigned i;

  for (i = 0; i < rb->nconns; i++) {
    struct remote_conn *c = &rb->conn[i];

    if (c->users == 0 && c->link && remote_link_idle (c->link)) {
      remote_link_close (c->link);
      c->link = NULL;
    }
  }
  if (rb->health != BACKEND_UP)
    return;
  __atomic_store_n (&rb->health, BACKEND_DOWN, __ATOMIC_RELAXED);
  rb->down_since_ms = remote_now_ms ();
  rb->open_limit = rb->nconns;         /* it may come back with more */
  log_error ("%s: connection lost; reconnecting for up to %u s",
             rb->be.target, rb->grace_ms / 1000);
  remote_start_keeper (rb);
  pthread_cond_broadcast (&rb->changed);
}

/* Whether a broken link nobody uses may be closed now (with the lock):
 * nothing is in flight on it, or it was cut grace= ago (then said).
 */
static bool
remote_reap_due (struct remote_backend *rb, struct remote_link *link,
                 uint64_t now)
{
  uint64_t cut_ms;
  unsigned owed = remote_link_owed (link, &cut_ms);

  if (owed > 0 && now - cut_ms < rb->grace_ms)
    return false;
  if (owed > 0)
    log_error ("%s: closing a connection with %u request%s unanswered "
               "for %u s (grace=)", rb->be.target, owed,
               owed == 1 ? "" : "s", rb->grace_ms / 1000);
  return true;
}

void
remote_reap (struct remote_backend *rb)
{
  uint64_t now = remote_now_ms ();
  unsigned i, kept = 0;

  for (i = 0; i < rb->ndraining; i++) {
    if (remote_reap_due (rb, rb->draining[i], now))
      remote_link_close (rb->draining[i]);
    else
      rb->draining[kept++] = rb->draining[i];
  }
  rb->ndraining = kept;
  for (i = 0; i < rb->nconns; i++) {
    struct remote_conn *c = &rb->conn[i];

    if (c->link == NULL || c->users > 0 || !remote_link_broken (c->link))
      continue;
    if (remote_reap_due (rb, c->link, now))
      remote_link_close (c->link);
    else if (rb->ndraining < REMOTE_MAX_CONNS)
      rb->draining[rb->ndraining++] = c->link;   /* its place is free */
    else
      continue;
    c->link = NULL;
  }
}

bool
remote_pool_blocked (struct remote_backend *rb)
{
  unsigned i;

  for (i = 0; i < rb->nconns; i++)
    if (rb->conn[i].link == NULL || !remote_link_broken (rb->conn[i].link))
      return false;
  return true;
}

struct remote_conn *
remote_pick_working (struct remote_backend *rb)
{
  struct remote_conn *best = NULL;
  unsigned i;

  for (i = 0; i < rb->nconns; i++) {
    struct remote_conn *c = &rb->conn[i];

    if (c->link && !remote_link_broken (c->link) &&
        c->users < REMOTE_LINK_DEPTH &&
        (best == NULL || c->users < best->users))
      best = c;
  }
  return best;
}

struct remote_conn *
remote_pick (struct remote_backend *rb)
{
  struct remote_conn *best = remote_pick_working (rb), *spare = NULL;
  unsigned i, connected = 0;

  for (i = 0; i < rb->nconns; i++) {
    struct remote_conn *c = &rb->conn[i];

    if (c->link || c->users > 0)
      connected++;
    else if (spare == NULL)
      spare = c;
  }
  if (spare && (best == NULL ||
                (best->users > 0 && connected < rb->open_limit)))
    return spare;
  return best;
}

/* For a request whose place could not be connected: the working link
 * with the fewest users, counted for it, if there is one; the server is
 * then taken to accept no more connections than it has now.  NULL if
 * none works.
 */
static struct remote_conn *
remote_pick_instead (struct remote_backend *rb)
{
  struct remote_conn *best;
  unsigned i, connected = 0;

  pthread_mutex_lock (&rb->lock);
  best = remote_pick_working (rb);
  for (i = 0; i < rb->nconns; i++)
    if (rb->conn[i].link)
      connected++;
  if (best) {
    best->users++;
    if (connected < rb->open_limit)
      log_error ("%s: the server took no more connections; requests "
                 "share the %u it has", rb->be.target, connected);
    rb->open_limit = connected;
  }
  pthread_mutex_unlock (&rb->lock);
  return best;
}

/* Take a connection for one request, waiting for one to be free.  While
 * DOWN (also once every place holds a broken link), fail at once
 * (ENOTCONN) unless wait_while_down, which waits out a reconnection
 * until *until, first set to grace= from now if it had no deadline yet.
 * Fails with EIO once DEAD, ESHUTDOWN after a shutdown, ETIMEDOUT past
 * *until.
 */
struct remote_conn *
remote_acquire (struct remote_backend *rb, bool wait_while_down,
                uint64_t *until)
{
  struct remote_conn *c = NULL;

  pthread_mutex_lock (&rb->lock);
  for (;;) {
    /* Also while DOWN: a place freed may be what a reconnection needs. */
    remote_reap (rb);
    if (rb->stopping) {
      errno = ESHUTDOWN;
      break;
    }
    if (rb->health == BACKEND_DEAD) {
      errno = EIO;
      break;
    }
    if (rb->health == BACKEND_UP && (c = remote_pick (rb)) != NULL) {
      c->users++;
      break;
    }
    /* No place but broken links that still owe replies: DOWN (no new
     * pages go there) until the keeper finds a place free.
     */
    if (rb->health == BACKEND_UP && remote_pool_blocked (rb))
      remote_mark_down (rb);
    if (rb->health == BACKEND_DOWN) {
      if (!wait_while_down) {
        errno = ENOTCONN;
        break;
      }
      if (*until == REMOTE_FOREVER)
        *until = remote_now_ms () + rb->grace_ms;
    }
    if (remote_now_ms () >= *until) {
      errno = ETIMEDOUT;
      break;
    }
    /* Sliced: a broken link's last reply frees its place unannounced. */
    remote_wait (rb, *until - remote_now_ms () < REMOTE_SLICE_MS ? *until
                 : remote_now_ms () + REMOTE_SLICE_MS);
  }
  pthread_mutex_unlock (&rb->lock);
  return c;
}

/* Give the connection back.  After REMOTE_LOST or REMOTE_UNSENT (not
 * REMOTE_UNSENT_LOCAL) the backend goes DOWN.  Broken links done with
 * are closed.
 */
void
remote_release (struct remote_backend *rb, struct remote_conn *c,
                enum remote_result r)
{
  pthread_mutex_lock (&rb->lock);
  c->users--;
  remote_reap (rb);
  if (r == REMOTE_LOST || r == REMOTE_UNSENT)
    remote_mark_down (rb);
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
}

bool
remote_pool_add (struct remote_backend *rb, struct nbd_handle *h)
{
  struct remote_link *link;
  unsigned i;

  remote_reap (rb);
  for (i = 0; i < rb->nconns; i++)
    if (rb->conn[i].users == 0 && rb->conn[i].link == NULL)
      break;
  if (i == rb->nconns)
    return false;
  link = remote_link_new (rb, h);
  rb->conn[i].link = link;
  return true;
}

/* Connect c, which has no link (and this request as its one user), and
 * check the claim on it.  Anything but REMOTE_OK means that the request
 * was not sent.
 */
static enum remote_result
remote_connect_conn (struct remote_backend *rb, struct remote_conn *c,
                     uint64_t until)
{
  /* On the stack (SWAPSAFE_THREAD_STACK is 256 KiB): h is this thread's
   * alone and closed before returning, so libnbd is done with it.
   */
  char page[PAGE_SIZE];
  struct remote_link *link;
  struct nbd_handle *h;
  enum remote_result r;

  h = remote_connect_handle (rb, until);
  if (h == NULL)
    return REMOTE_UNSENT;
  r = remote_check_claim (rb, NULL, h, page, until);
  if (r != REMOTE_OK) {
    int err = errno;

    /* Not verified: fail this request only (REMOTE_FAILED), and check
     * again on the next use of this connection.
     */
    nbd_close (h);
    if (r == REMOTE_LOST)
      return REMOTE_UNSENT;
    if (r == REMOTE_FAILED && err == ENOMEM)
      return REMOTE_UNSENT_LOCAL;      /* ours, not the server's */
    errno = r == REMOTE_MISMATCH ? EIO : err;
    return r;
  }
  link = remote_link_new (rb, h);
  if (link == NULL)
    return REMOTE_UNSENT_LOCAL;
  pthread_mutex_lock (&rb->lock);
  c->link = link;
  pthread_mutex_unlock (&rb->lock);
  return REMOTE_OK;
}

/* Run one request on connection c until the deadline until, connecting
 * it first if needed and splitting the transfer at the server's largest
 * request.
 */
enum remote_result
remote_transfer (struct remote_backend *rb, struct remote_conn *c,
                 enum remote_op op, char *buf, uint64_t count,
                 uint64_t offset, bool fua, uint64_t until)
{
  enum remote_result r = REMOTE_OK;

  if (c->link == NULL &&
      (r = remote_connect_conn (rb, c, until)) != REMOTE_OK) {
    struct remote_conn *instead;

    /* Refused beside links that work: a server that takes so many. */
    if (r != REMOTE_UNSENT || (instead = remote_pick_instead (rb)) == NULL)
      return r;
    r = remote_transfer (rb, instead, op, buf, count, offset, fua, until);
    remote_release (rb, instead, r);
    return r;
  }
  if (op == REMOTE_OP_FLUSH)
    return remote_link_run (c->link, op, NULL, 0, 0, false, until, true);
  while (r == REMOTE_OK && count > 0) {
    uint64_t n = count < rb->max_request ? count : rb->max_request;

    r = remote_link_run (c->link, op, buf, n, offset, fua, until, true);
    if (buf)
      buf += n;
    offset += n;
    count -= n;
  }
  return r;
}
