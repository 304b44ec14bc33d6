/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: remote NBD backend through libnbd.
 *
 * A pool of up to nconns connections to one export, each carrying many
 * requests at once (remote-link.c), so the requests in flight are bounded
 * by what the engine sends, not by the pool.  Every wait lasts at most
 * REMOTE_SLICE_MS between checks of its deadline and of a shutdown.
 *
 * Every request has an end.  A command is lost once its connection has
 * answered nothing for timeout= while it waited, and after timeout= +
 * grace= in all (remote-link.c).  From the first failure of a request
 * for want of its server (no reply, a lost connection, the server
 * unreachable) it has grace= more: reads (and, with multi-conn,
 * flushes) run again, reads and flushes wait out a reconnection, and
 * once that deadline passes the request fails and the backend is DEAD.
 *
 * Health: UP; DOWN after a lost connection (no new writes, reads and
 * flushes wait, the keeper reconnects with backoff); DEAD once the server
 * has not come back within grace= of going DOWN, a request's deadline
 * passed, or slot 0 is no longer our claim: every request fails (EIO).
 *
 * Unknown outcomes (backend.h): a write or trim that was sent and got no
 * reply fails with ENOTCONN, as does a write refused while DOWN (its
 * slots are bad either way).  A trim that was not sent returns 0.
 *
 * Slot 0 of the export holds the header of our claim (remote-claim.h),
 * checked on every new connection: data slot s is at byte (s + 1) * 4096.
 * The keeper, one thread per backend, runs in the serving process (from
 * backend_nbd_serve, or from the first lost connection): it reconnects
 * while DOWN, and while UP raises the claim's heartbeat every
 * CLAIM_BEAT_MS.  The shutdown operation ends every wait and fails every
 * later request with ESHUTDOWN.
 *
 * This file holds the operations, the opening and the closing; remote.h
 * describes the state shared with remote-conn.c (connections, commands)
 * and remote-keeper.c (the keeper thread).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "remote.h"

/* The NBD backend behind a generic backend. */
static inline struct remote_backend *
remote_backend (struct backend *be)
{
  return (struct remote_backend *) be;
}

bool
backend_is_uri (const char *target)
{
  return strncmp (target, "nbd", 3) == 0 && strstr (target, "://") != NULL;
}

/* Data slots start after the header slot. */
static uint64_t
remote_offset (uint64_t slot)
{
  return (slot + 1) * PAGE_SIZE;
}

/* A request whose deadline passed: the server has not answered for
 * grace=.  Fail the backend, so that the requests after it end at once.
 */
static void
remote_give_up (struct remote_backend *rb, const char *what, uint64_t slot)
{
  log_error ("%s: %s of slot %" PRIu64 ": no answer within %u s of the "
             "first failure (grace=)", rb->be.target, what, slot,
             rb->grace_ms / 1000);
  pthread_mutex_lock (&rb->lock);
  remote_mark_dead (rb, "a request got no answer within grace=");
  pthread_mutex_unlock (&rb->lock);
}

/* Reads survive a lost connection: they wait for the reconnection and
 * run again, until grace= after their first failure.  Fails with EIO
 * then or once DEAD, or with ESHUTDOWN.
 */
static int
remote_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct remote_backend *rb = remote_backend (be);
  uint64_t until = REMOTE_FOREVER;

  for (;;) {
    struct remote_conn *c = remote_acquire (rb, true, &until);
    enum remote_result r;

    if (c == NULL && errno == ETIMEDOUT) {
      remote_give_up (rb, "read", slot);
      errno = EIO;
    }
    if (c == NULL) {
      log_error ("%s: read of slot %" PRIu64 ": %s", be->target, slot,
                 errno == ESHUTDOWN ? "the server is stopping"
                 : "the backend is failed");
      return -1;
    }
    r = remote_transfer (rb, c, REMOTE_OP_READ, buf, n * PAGE_SIZE,
                         remote_offset (slot), false, until);
    remote_release (rb, c, r);
    if (r == REMOTE_OK)
      return 0;
    if (r == REMOTE_FAILED || r == REMOTE_MISMATCH)
      return -1;
    if (remote_stopping (rb)) {
      errno = ESHUTDOWN;
      return -1;
    }
    /* Short of memory here, with the server not at fault so far: no
     * grace= spent (each try waited for memory until its deadline);
     * failing would lose the page.
     */
    if (r == REMOTE_UNSENT_LOCAL && until == REMOTE_FOREVER) {
      remote_pause ();
      continue;
    }
    if (until == REMOTE_FOREVER)
      until = remote_now_ms () + rb->grace_ms;
    else if (remote_now_ms () >= until) {
      remote_give_up (rb, "read", slot);
      errno = EIO;
      return -1;
    }
  }
}

/* A read when another copy exists: one try, on a connection that works
 * now, within timeout=.  A failure does not count against grace=.
 */
static int
remote_read_quick (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct remote_backend *rb = remote_backend (be);
  uint64_t until = REMOTE_FOREVER;
  struct remote_conn *c = remote_acquire (rb, false, &until);
  enum remote_result r;

  if (c == NULL) {
    int err = errno;

    log_error ("%s: read of slot %" PRIu64 ": %s", be->target, slot,
               err == ESHUTDOWN ? "the server is stopping"
               : "the server is not reachable now");
    errno = err;
    return -1;
  }
  r = remote_transfer (rb, c, REMOTE_OP_READ, buf, n * PAGE_SIZE,
                       remote_offset (slot), false, until);
  remote_release (rb, c, r);
  if (r == REMOTE_OK)
    return 0;
  /* A lost connection is the keeper's and grace='s business, not an
   * error of the backend (ENOTCONN does not count towards max-errors).
   */
  if (remote_stopping (rb))
    errno = ESHUTDOWN;
  else if (r != REMOTE_FAILED)
    errno = r == REMOTE_MISMATCH ? EIO : ENOTCONN;
  return -1;
}

/* One write or trim, not retried at the same place: the engine writes
 * the data elsewhere.  Returns the outcome, with errno set unless
 * REMOTE_OK: ENOTCONN if it was lost, or not sent because the server
 * is unreachable; EIO if not sent because the backend is failed.
 */
static enum remote_result
remote_write_op (struct remote_backend *rb, enum remote_op op,
                 const void *buf, uint64_t slot, uint64_t n, bool fua)
{
  uint64_t until = REMOTE_FOREVER;
  struct remote_conn *c = remote_acquire (rb, false, &until);
  enum remote_result r;

  if (c == NULL)
    return REMOTE_UNSENT;
  r = remote_transfer (rb, c, op, (char *) buf, n * PAGE_SIZE,
                       remote_offset (slot), fua, until);
  remote_release (rb, c, r);
  if (r == REMOTE_LOST || remote_unsent (r))
    errno = ENOTCONN;
  return r;
}

static int
remote_write (struct backend *be, const void *buf, uint64_t slot, uint64_t n,
              bool fua)
{
  struct remote_backend *rb = remote_backend (be);

  if (remote_write_op (rb, REMOTE_OP_WRITE, buf, slot, n, fua) != REMOTE_OK)
    return -1;
  if (fua && !rb->can_fua)
    return be->ops->flush (be);
  return 0;
}

/* A trim that was sent and got no answer may still be executed: ENOTCONN.
 * One that was not sent (the server unreachable, the backend failed) did
 * nothing, which is fine for an advisory request: 0.
 */
static int
remote_trim (struct backend *be, uint64_t slot, uint64_t n)
{
  struct remote_backend *rb = remote_backend (be);
  enum remote_result r;

  if (!rb->can_trim)
    return 0;
  if (remote_stopping (rb)) {
    errno = ESHUTDOWN;
    return -1;
  }
  r = remote_write_op (rb, REMOTE_OP_TRIM, NULL, slot, n, false);
  if (r == REMOTE_OK || remote_unsent (r) || r == REMOTE_MISMATCH)
    return 0;
  return -1;
}

/* Flush connection c (owned by the caller) until the deadline until:
 * the outcome, with errno set unless REMOTE_OK (EIO when no answer
 * came).
 */
static enum remote_result
remote_flush_conn (struct remote_backend *rb, struct remote_conn *c,
                   uint64_t until)
{
  enum remote_result r = remote_transfer (rb, c, REMOTE_OP_FLUSH, NULL, 0, 0,
                                          false, until);

  remote_release (rb, c, r);
  if (r == REMOTE_LOST || remote_unsent (r) || r == REMOTE_MISMATCH)
    errno = EIO;
  return r;
}

/* Flush one connection, or every one where the server does not promise
 * that a flush covers all connections (no multi-conn).  While the server
 * is unreachable, wait for it like a read (until grace= after finding it
 * so): the flush must still cover what it acknowledged before the
 * connection was lost.  With multi-conn a flush that got no answer is
 * sent again the same way, since one on any connection covers all; else
 * the writes of the lost connection are covered by nothing, and the
 * flush fails (EIO).
 */
static int
remote_flush (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);
  uint64_t until = REMOTE_FOREVER;
  struct remote_conn *first;
  enum remote_result r;
  unsigned i;
  int ret = 0;

  for (;;) {
    first = remote_acquire (rb, true, &until);
    if (first == NULL) {
      if (errno == ETIMEDOUT) {
        remote_give_up (rb, "flush", 0);
        errno = EIO;
      }
      return -1;
    }
    r = remote_flush_conn (rb, first, until);
    if (r == REMOTE_OK)
      break;
    if (remote_stopping (rb)) {
      errno = ESHUTDOWN;
      return -1;
    }
    if ((r != REMOTE_LOST && !remote_unsent (r)) || !rb->multi_conn)
      return -1;
    if (r == REMOTE_UNSENT_LOCAL && until == REMOTE_FOREVER) {
      remote_pause ();                 /* as in remote_read */
      continue;
    }
    if (until == REMOTE_FOREVER)
      until = remote_now_ms () + rb->grace_ms;
    else if (remote_now_ms () >= until) {
      remote_give_up (rb, "flush", 0);
      errno = EIO;
      return -1;
    }
  }
  /* The others, beside the requests on them: a flush covers the writes
   * completed on its connection before it, and those are all the writes
   * acknowledged before this flush began.
   */
  for (i = 0; i < rb->nconns && !rb->multi_conn; i++) {
    struct remote_conn *c = &rb->conn[i];

    pthread_mutex_lock (&rb->lock);
    if (rb->stopping) {
      pthread_mutex_unlock (&rb->lock);
      errno = ESHUTDOWN;
      return -1;
    }
    if (c == first || c->link == NULL || remote_link_broken (c->link)) {
      pthread_mutex_unlock (&rb->lock);
      continue;
    }
    c->users++;
    pthread_mutex_unlock (&rb->lock);
    if (remote_flush_conn (rb, c, until) != REMOTE_OK)
      ret = -1;
  }
  return ret;
}

static enum backend_health
remote_health (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);

  return __atomic_load_n (&rb->health, __ATOMIC_RELAXED);
}

static void
remote_shutdown (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);

  pthread_mutex_lock (&rb->lock);
  __atomic_store_n (&rb->stopping, true, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
}

/* Close a backend, opened or only partly (claimed says whether slot 0
 * holds its claim).
 */
static void
remote_destroy (struct remote_backend *rb, bool claimed)
{
  uint64_t until;
  unsigned i;

  remote_keeper_remove (rb);
  pthread_mutex_lock (&rb->lock);
  __atomic_store_n (&rb->closing, true, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
  if (rb->keeper_started)
    pthread_join (rb->keeper, NULL);
  if (claimed)
    remote_release_claim (rb);
  /* Replies still to come are waited for a while: a server may not
   * bear a connection closed under them (remote-link.c).
   */
  until = remote_now_ms () + REMOTE_RELEASE_MS;
  for (i = 0; i < rb->nconns; i++)
    remote_link_wait_idle (rb->conn[i].link, until);
  for (i = 0; i < rb->ndraining; i++)
    remote_link_wait_idle (rb->draining[i], until);
  for (i = 0; i < rb->nconns; i++)
    remote_link_close (rb->conn[i].link);
  for (i = 0; i < rb->ndraining; i++)
    remote_link_close (rb->draining[i]);
  pthread_cond_destroy (&rb->changed);
  pthread_mutex_destroy (&rb->lock);
  free (rb->be.target);
  free (rb);
}

static void
remote_close_backend (struct backend *be)
{
  remote_destroy (remote_backend (be), true);
}

/* Whether slot 0 of the export still holds this instance's claim, read
 * now on a connection that works (see backend.h); a backend whose server
 * was given up is connected again for it (remote_revive).
 */
static int
remote_check_claim_now (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);
  uint64_t until = REMOTE_FOREVER;
  struct remote_conn *c;
  enum remote_result r;
  char *page;

  if (__atomic_load_n (&rb->health, __ATOMIC_RELAXED) == BACKEND_DEAD)
    return remote_revive (rb);
  page = malloc (PAGE_SIZE);
  if (page == NULL) {
    log_error ("%s: %m", be->target);
    return -1;
  }
  c = remote_acquire (rb, false, &until);
  if (c == NULL) {
    log_error ("%s: its claim cannot be checked: the server is not "
               "reachable now", be->target);
    free (page);
    return -1;
  }
  /* A connection not connected yet is connected, its claim checked. */
  if (c->link)
    r = remote_check_claim (rb, c->link, NULL, page, until);
  else
    r = remote_transfer (rb, c, REMOTE_OP_READ, page, PAGE_SIZE, 0, false,
                         until);
  remote_release (rb, c, r);
  free (page);
  if (r == REMOTE_MISMATCH)
    log_error ("%s: slot 0 no longer holds this instance's claim",
               be->target);
  else if (r != REMOTE_OK)
    log_error ("%s: its claim could not be read", be->target);
  return r == REMOTE_OK ? 0 : -1;
}

static const struct backend_ops remote_ops = {
  .kind = "nbd",
  .check_claim = remote_check_claim_now,
  .read = remote_read,
  .read_quick = remote_read_quick,
  .write = remote_write,
  .flush = remote_flush,
  .trim = remote_trim,
  .health = remote_health,
  .shutdown = remote_shutdown,
  .close = remote_close_backend,
};

/* Learn the export's size and constraints from the first connection.
 * Returns false after log_error.
 */
static bool
remote_probe (struct remote_backend *rb, struct nbd_handle *h)
{
  int64_t size = nbd_get_size (h);
  int64_t minimum = nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM);
  int64_t maximum = nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM);
  int multi_conn = nbd_can_multi_conn (h);
  int can_fua = nbd_can_fua (h);
  int can_trim = nbd_can_trim (h);
  int read_only = nbd_is_read_only (h);

  if (size == -1 || minimum == -1 || maximum == -1 || multi_conn == -1 ||
      can_fua == -1 || can_trim == -1 || read_only == -1) {
    log_error ("%s: %s", rb->be.target, nbd_get_error ());
    return false;
  }
  if (read_only) {
    log_error ("%s: the export is read-only", rb->be.target);
    return false;
  }
  if (minimum > PAGE_SIZE || (minimum > 0 && PAGE_SIZE % minimum != 0)) {
    log_error ("%s: the server's minimum block size %" PRIi64 " does not "
               "divide the %" PRIu32 "-byte slot", rb->be.target, minimum,
               PAGE_SIZE);
    return false;
  }
  if (size < 2 * (int64_t) PAGE_SIZE) {
    log_error ("%s: export of %" PRIi64 " bytes is too small (one slot "
               "holds swaptier's header, at least one more is needed)",
               rb->be.target, size);
    return false;
  }
  rb->max_request = REMOTE_MAX_REQUEST;
  if (maximum > 0 && maximum < REMOTE_MAX_REQUEST)
    rb->max_request = maximum / PAGE_SIZE * PAGE_SIZE;
  if (rb->max_request < PAGE_SIZE) {
    log_error ("%s: the server's largest request %" PRIi64 " is smaller "
               "than one slot", rb->be.target, maximum);
    return false;
  }
  rb->be.nslots = size / PAGE_SIZE - 1;
  rb->multi_conn = multi_conn;
  rb->can_fua = can_fua;
  rb->can_trim = can_trim;
  return true;
}

/* Initialize the lock and the condition (on the monotonic clock). */
static void
remote_init_sync (struct remote_backend *rb)
{
  pthread_condattr_t attr;

  pthread_mutex_init (&rb->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&rb->changed, &attr);
  pthread_condattr_destroy (&attr);
}

struct backend *
backend_nbd_open (const char *uri, unsigned nconns, unsigned timeout_ms,
                  unsigned grace_ms)
{
  struct remote_backend *rb;
  struct nbd_handle *h = NULL;
  struct remote_slot0 s;
  struct claim_io io;

  if (nconns < 1 || nconns > REMOTE_MAX_CONNS) {
    log_error ("%s: connections must be 1 to %d", uri, REMOTE_MAX_CONNS);
    return NULL;
  }
  rb = calloc (1, sizeof *rb);
  if (rb == NULL || (rb->be.target = strdup (uri)) == NULL) {
    log_error ("%s: %m", uri);
    free (rb);
    return NULL;
  }
  rb->be.ops = &remote_ops;
  rb->timeout_ms = timeout_ms;
  rb->grace_ms = grace_ms;
  rb->nconns = nconns;
  rb->open_limit = nconns;
  rb->health = BACKEND_UP;
  remote_init_sync (rb);

  h = remote_connect_handle (rb, REMOTE_FOREVER);
  if (h == NULL || !remote_probe (rb, h))
    goto err;
  s = (struct remote_slot0) { .rb = rb, .h = h, .wait_ms = timeout_ms };
  io = remote_slot0_io (&s);
  if (claim_take (&rb->claim, uri, &io, rb->page) == -1)
    goto err;
  /* From here on the pool's (its poller starts in the serving process). */
  rb->conn[0].link = remote_link_new (rb, h);

  remote_keeper_add (rb);
  return &rb->be;

 err:
  if (h)
    nbd_close (h);
  remote_destroy (rb, false);
  return NULL;
}
