/* swaptier: remote NBD backend through libnbd.
 *
 * A pool of up to nconns connections to one export; each request owns one
 * connection from start to end, so the pool size bounds the requests in
 * flight.  A command is issued with libnbd's asynchronous API and waited
 * for with nbd_poll in slices of at most REMOTE_SLICE_MS, so that every
 * wait notices its deadline and a shutdown promptly.
 *
 * Every request has an end.  A command waits timeout= for its reply.
 * From the first failure of a request for want of its server (no reply,
 * a lost connection, the server unreachable) it has grace= more: reads
 * run again, reads and flushes wait out a reconnection, and once that
 * deadline passes the request fails and the backend is DEAD.
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

#include <libnbd.h>

#include "backend.h"
#include "log.h"
#include "page.h"
#include "remote-claim.h"

#define REMOTE_MAX_CONNS 64
#define REMOTE_MAX_REQUEST (32 * 1024 * 1024) /* largest request we send */
#define REMOTE_BACKOFF_MIN_MS 100
#define REMOTE_BACKOFF_MAX_MS 2000
#define REMOTE_SLICE_MS 200             /* longest wait without a check */
#define REMOTE_RELEASE_MS 1000          /* wait for the release at close */
#define REMOTE_FOREVER UINT64_MAX       /* no deadline */

struct remote_conn {
  struct nbd_handle *h;                /* NULL: not connected */
  bool busy;                           /* owned by a request */
};

struct remote_backend {
  struct backend be;                   /* must be first */
  unsigned timeout_ms, grace_ms;
  uint32_t max_request;                /* bytes, a multiple of PAGE_SIZE */
  bool multi_conn, can_fua, can_trim;
  struct remote_claim claim;           /* ours, in slot 0 */
  /* Slot 0 I/O of the opening, the keeper and the closing. */
  char page[PAGE_SIZE] __attribute__ ((aligned (PAGE_SIZE)));
  struct remote_backend *next;         /* remote_all, while open */

  pthread_mutex_t lock;                /* guards everything below */
  pthread_cond_t changed;              /* a connection or the state */
  enum backend_health health;          /* also read without the lock */
  bool stopping;                       /* shutdown: also read without it */
  bool closing;
  uint64_t down_since_ms;
  bool keeper_started;
  pthread_t keeper;
  unsigned nconns;
  struct remote_conn conn[REMOTE_MAX_CONNS];
};

/* Every open remote backend, so that the serving process can start
 * their keepers.
 */
static struct {
  pthread_mutex_t lock;
  bool serving;                        /* backend_nbd_serve was called */
  struct remote_backend *first;
} remote_all = { .lock = PTHREAD_MUTEX_INITIALIZER };

enum remote_result {
  REMOTE_OK,                           /* done */
  REMOTE_FAILED,                       /* the server answered an error */
  REMOTE_UNSENT,                       /* not sent: no usable connection */
  REMOTE_LOST,                         /* sent, no answer: unknown */
  REMOTE_MISMATCH,                     /* slot 0 is not our claim */
};

enum remote_op { REMOTE_OP_READ, REMOTE_OP_WRITE, REMOTE_OP_FLUSH,
                 REMOTE_OP_TRIM };

/* The NBD backend behind a generic backend. */
static inline struct remote_backend *
remote_backend (struct backend *be)
{
  return (struct remote_backend *) be;
}

/* Milliseconds on the monotonic clock. */
static uint64_t
remote_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the shutdown operation was called. */
static bool
remote_stopping (struct remote_backend *rb)
{
  return __atomic_load_n (&rb->stopping, __ATOMIC_ACQUIRE);
}

/* Wait on rb->changed (with the lock) until woken or until the monotonic
 * time until_ms.
 */
static void
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
backend_is_uri (const char *target)
{
  return strncmp (target, "nbd", 3) == 0 && strstr (target, "://") != NULL;
}

/* Whether a failed command means the connection is unusable rather than
 * an error answered by the server: the handle left the ready state, or
 * the error is one of the socket's.
 */
static bool
remote_connection_error (struct nbd_handle *h, int err)
{
  if (!nbd_aio_is_ready (h) && !nbd_aio_is_processing (h))
    return true;
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
  if (remote_connection_error (h, err))
    return REMOTE_LOST;
  errno = err ? err : EIO;
  return REMOTE_FAILED;
}

/* Issue one command on handle h and wait for its reply for timeout=, and
 * not past until.  With stoppable, a shutdown ends the wait too.
 * REMOTE_FAILED leaves errno as the server's error.
 */
static enum remote_result
remote_run (struct remote_backend *rb, struct nbd_handle *h,
            enum remote_op op, void *buf, uint64_t count, uint64_t offset,
            bool fua, uint64_t until, bool stoppable)
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
      log_error ("%s: request abandoned: the server is stopping",
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

/* Connect a new handle, waiting at most the request timeout, not past
 * until, and not after a shutdown.  NULL after log_error on failure.
 */
static struct nbd_handle *
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
static void
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
static enum remote_result
remote_check_claim (struct remote_backend *rb, struct nbd_handle *h,
                    void *page, uint64_t until)
{
  enum remote_result r = remote_run (rb, h, REMOTE_OP_READ, page, PAGE_SIZE,
                                     0, false, until, true);
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

/* Slot 0 I/O on one handle for the claim functions (struct claim_io). */
struct remote_slot0 {
  struct remote_backend *rb;
  struct nbd_handle *h;
  unsigned wait_ms;                    /* longest wait of one command */
  bool stoppable;
  enum remote_result r;                /* of the last command */
};

static int
remote_slot0_read (void *opaque, void *page)
{
  struct remote_slot0 *s = opaque;

  s->r = remote_run (s->rb, s->h, REMOTE_OP_READ, page, PAGE_SIZE, 0, false,
                     remote_now_ms () + s->wait_ms, s->stoppable);
  if (s->r != REMOTE_OK)
    log_error ("%s: cannot read swaptier's header in slot 0",
               s->rb->be.target);
  return s->r == REMOTE_OK ? 0 : -1;
}

static int
remote_slot0_write (void *opaque, const void *page)
{
  struct remote_slot0 *s = opaque;

  s->r = remote_run (s->rb, s->h, REMOTE_OP_WRITE, (void *) page, PAGE_SIZE,
                     0, true, remote_now_ms () + s->wait_ms, s->stoppable);
  if (s->r != REMOTE_OK)
    log_error ("%s: cannot write swaptier's header to slot 0",
               s->rb->be.target);
  return s->r == REMOTE_OK ? 0 : -1;
}

/* The claim I/O of s. */
static struct claim_io
remote_slot0_io (struct remote_slot0 *s)
{
  return (struct claim_io) { .read = remote_slot0_read,
                             .write = remote_slot0_write, .opaque = s };
}

static void *remote_keeper (void *arg);

/* Start the keeper unless it runs (with the lock).  Failing to start it
 * fails the backend: nothing would reconnect.
 */
static void
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
}

/* Mark the backend DOWN after a lost connection and have the keeper
 * reconnect (with the lock).  Idle connections to the same server are
 * closed too: they are most likely broken the same way.
 */
static void
remote_mark_down (struct remote_backend *rb)
{
  unsigned i;

  for (i = 0; i < rb->nconns; i++) {
    if (!rb->conn[i].busy && rb->conn[i].h) {
      nbd_close (rb->conn[i].h);
      rb->conn[i].h = NULL;
    }
  }
  if (rb->health != BACKEND_UP)
    return;
  __atomic_store_n (&rb->health, BACKEND_DOWN, __ATOMIC_RELAXED);
  rb->down_since_ms = remote_now_ms ();
  log_error ("%s: connection lost; reconnecting for up to %u s",
             rb->be.target, rb->grace_ms / 1000);
  remote_start_keeper (rb);
  pthread_cond_broadcast (&rb->changed);
}

/* One attempt of the keeper to reconnect (with the lock, dropped
 * meanwhile): UP with the new connection in the pool, DEAD if slot 0 is
 * not our claim or the grace time is over, else still DOWN.
 */
static void
remote_reconnect (struct remote_backend *rb)
{
  struct nbd_handle *h;
  enum remote_result r = REMOTE_UNSENT;
  unsigned i;

  pthread_mutex_unlock (&rb->lock);
  h = remote_connect_handle (rb, REMOTE_FOREVER);
  if (h)
    r = remote_check_claim (rb, h, rb->page, REMOTE_FOREVER);
  pthread_mutex_lock (&rb->lock);

  if (r == REMOTE_OK && rb->health == BACKEND_DOWN) {
    for (i = 0; i < rb->nconns; i++)
      if (!rb->conn[i].busy && rb->conn[i].h == NULL)
        break;
    if (i < rb->nconns) {
      rb->conn[i].h = h;
      h = NULL;
    }
    __atomic_store_n (&rb->health, BACKEND_UP, __ATOMIC_RELAXED);
    log_error ("%s: reconnected after %" PRIu64 " ms", rb->be.target,
               remote_now_ms () - rb->down_since_ms);
    pthread_cond_broadcast (&rb->changed);
  }
  if (h)
    nbd_close (h);
  if (rb->health == BACKEND_DOWN &&
      remote_now_ms () - rb->down_since_ms >= rb->grace_ms)
    remote_mark_dead (rb, "the server did not come back in time");
}

/* Take a connection for one request, waiting for one to be free.  While
 * DOWN, fail at once (ENOTCONN) unless wait_while_down, which waits out
 * a reconnection until *until, first set to grace= from now if it had
 * no deadline yet.  Fails with EIO once DEAD, ESHUTDOWN after a
 * shutdown, ETIMEDOUT past *until.
 */
static struct remote_conn *
remote_acquire (struct remote_backend *rb, bool wait_while_down,
                uint64_t *until)
{
  struct remote_conn *c = NULL;
  unsigned i;

  pthread_mutex_lock (&rb->lock);
  for (;;) {
    if (rb->stopping) {
      errno = ESHUTDOWN;
      break;
    }
    if (rb->health == BACKEND_DEAD) {
      errno = EIO;
      break;
    }
    if (rb->health == BACKEND_DOWN) {
      if (!wait_while_down) {
        errno = ENOTCONN;
        break;
      }
      if (*until == REMOTE_FOREVER)
        *until = remote_now_ms () + rb->grace_ms;
    }
    if (rb->health == BACKEND_UP) {
      /* Prefer a connected idle connection. */
      for (i = 0; i < rb->nconns; i++) {
        if (!rb->conn[i].busy &&
            (c == NULL || (c->h == NULL && rb->conn[i].h)))
          c = &rb->conn[i];
      }
      if (c) {
        c->busy = true;
        break;
      }
    }
    if (remote_now_ms () >= *until) {
      errno = ETIMEDOUT;
      break;
    }
    remote_wait (rb, *until);
  }
  pthread_mutex_unlock (&rb->lock);
  return c;
}

/* Give the connection back.  After REMOTE_LOST or REMOTE_UNSENT its
 * handle is closed and the backend goes DOWN.
 */
static void
remote_release (struct remote_backend *rb, struct remote_conn *c,
                enum remote_result r)
{
  pthread_mutex_lock (&rb->lock);
  if (r == REMOTE_LOST || r == REMOTE_UNSENT) {
    if (c->h)
      nbd_close (c->h);
    c->h = NULL;
    remote_mark_down (rb);
  }
  c->busy = false;
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
}

/* Connect c, whose handle is NULL, and check the claim on it.  Anything
 * but REMOTE_OK means that the request was not sent.
 */
static enum remote_result
remote_connect_conn (struct remote_backend *rb, struct remote_conn *c,
                     uint64_t until)
{
  /* Connecting allocates anyway (libnbd), so this costs nothing more. */
  char *page = malloc (PAGE_SIZE);
  enum remote_result r;

  if (page == NULL) {
    log_error ("%s: %m", rb->be.target);
    return REMOTE_UNSENT;
  }
  c->h = remote_connect_handle (rb, until);
  if (c->h == NULL) {
    free (page);
    return REMOTE_UNSENT;
  }
  r = remote_check_claim (rb, c->h, page, until);
  free (page);
  if (r == REMOTE_LOST)
    return REMOTE_UNSENT;
  if (r != REMOTE_OK) {
    /* Not verified: fail this request only (REMOTE_FAILED), and check
     * again on the next use of this connection.
     */
    nbd_close (c->h);
    c->h = NULL;
    if (r == REMOTE_MISMATCH)
      errno = EIO;
  }
  return r;
}

/* Run one request on connection c until the deadline until, connecting
 * it first if needed and splitting the transfer at the server's largest
 * request.
 */
static enum remote_result
remote_transfer (struct remote_backend *rb, struct remote_conn *c,
                 enum remote_op op, char *buf, uint64_t count,
                 uint64_t offset, bool fua, uint64_t until)
{
  enum remote_result r = REMOTE_OK;

  if (c->h == NULL && (r = remote_connect_conn (rb, c, until)) != REMOTE_OK)
    return r;
  if (op == REMOTE_OP_FLUSH)
    return remote_run (rb, c->h, op, NULL, 0, 0, false, until, true);
  while (r == REMOTE_OK && count > 0) {
    uint64_t n = count < rb->max_request ? count : rb->max_request;

    r = remote_run (rb, c->h, op, buf, n, offset, fua, until, true);
    if (buf)
      buf += n;
    offset += n;
    count -= n;
  }
  return r;
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
    if (until == REMOTE_FOREVER)
      until = remote_now_ms () + rb->grace_ms;
    else if (remote_now_ms () >= until) {
      remote_give_up (rb, "read", slot);
      errno = EIO;
      return -1;
    }
  }
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
  if (r == REMOTE_LOST || r == REMOTE_UNSENT)
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
  if (r == REMOTE_OK || r == REMOTE_UNSENT || r == REMOTE_MISMATCH)
    return 0;
  return -1;
}

/* Flush connection c (owned by the caller) until the deadline until. */
static int
remote_flush_conn (struct remote_backend *rb, struct remote_conn *c,
                   uint64_t until)
{
  enum remote_result r = remote_transfer (rb, c, REMOTE_OP_FLUSH, NULL, 0, 0,
                                          false, until);

  remote_release (rb, c, r);
  if (r == REMOTE_LOST || r == REMOTE_UNSENT)
    errno = ENOTCONN;
  return r == REMOTE_OK ? 0 : -1;
}

/* Flush one connection, or every one where the server does not promise
 * that a flush covers all connections (no multi-conn).  While the server
 * is unreachable, wait for it like a read (until grace= after finding it
 * so): the flush must still cover what it acknowledged before the
 * connection was lost.
 */
static int
remote_flush (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);
  uint64_t until = REMOTE_FOREVER;
  struct remote_conn *first = remote_acquire (rb, true, &until);
  unsigned i;
  int ret = 0;

  if (first == NULL) {
    if (errno == ETIMEDOUT) {
      remote_give_up (rb, "flush", 0);
      errno = EIO;
    }
    return -1;
  }
  if (remote_flush_conn (rb, first, until) == -1)
    return -1;
  for (i = 0; i < rb->nconns && !rb->multi_conn; i++) {
    struct remote_conn *c = &rb->conn[i];

    /* A busy connection's request ends by its own deadline. */
    pthread_mutex_lock (&rb->lock);
    while (c->busy && !rb->stopping)
      remote_wait (rb, REMOTE_FOREVER);
    if (rb->stopping) {
      pthread_mutex_unlock (&rb->lock);
      errno = ESHUTDOWN;
      return -1;
    }
    if (c == first || c->h == NULL) {
      pthread_mutex_unlock (&rb->lock);
      continue;
    }
    c->busy = true;
    pthread_mutex_unlock (&rb->lock);
    if (remote_flush_conn (rb, c, until) == -1)
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

/* One heartbeat of the keeper on an idle connection (with the lock,
 * dropped meanwhile).  No idle connection: no beat this time.
 */
static void
remote_beat (struct remote_backend *rb)
{
  struct remote_slot0 s = { .rb = rb, .wait_ms = rb->timeout_ms,
                            .stoppable = true, .r = REMOTE_OK };
  struct claim_io io = remote_slot0_io (&s);
  struct remote_conn *c = NULL;
  enum claim_state state = CLAIM_OURS;
  unsigned i;

  for (i = 0; i < rb->nconns && c == NULL; i++)
    if (!rb->conn[i].busy && rb->conn[i].h)
      c = &rb->conn[i];
  if (c == NULL)
    return;
  c->busy = true;
  s.h = c->h;
  pthread_mutex_unlock (&rb->lock);
  claim_beat (&rb->claim, rb->be.target, &io, rb->page, &state);
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
  pthread_mutex_unlock (&rb->lock);
  return NULL;
}

/* Write the claim back released on an idle connection, waiting at most
 * REMOTE_RELEASE_MS for each command (the process may be stopping).
 */
static void
remote_release_claim (struct remote_backend *rb)
{
  struct remote_slot0 s = { .rb = rb, .wait_ms = REMOTE_RELEASE_MS };
  struct claim_io io = remote_slot0_io (&s);
  unsigned i;

  for (i = 0; i < rb->nconns && s.h == NULL; i++)
    s.h = rb->conn[i].h;
  claim_release (&rb->claim, rb->be.target,
                 s.h && rb->health == BACKEND_UP ? &io : NULL, rb->page);
}

/* Close a backend, opened or only partly (claimed says whether slot 0
 * holds its claim).
 */
static void
remote_destroy (struct remote_backend *rb, bool claimed)
{
  struct remote_backend **p;
  unsigned i;

  pthread_mutex_lock (&remote_all.lock);
  for (p = &remote_all.first; *p; p = &(*p)->next) {
    if (*p == rb) {
      *p = rb->next;
      break;
    }
  }
  pthread_mutex_unlock (&remote_all.lock);
  pthread_mutex_lock (&rb->lock);
  rb->closing = true;
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
  if (rb->keeper_started)
    pthread_join (rb->keeper, NULL);
  if (claimed)
    remote_release_claim (rb);
  for (i = 0; i < rb->nconns; i++)
    if (rb->conn[i].h)
      nbd_close (rb->conn[i].h);
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

static const struct backend_ops remote_ops = {
  .kind = "nbd",
  .read = remote_read,
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
  rb->health = BACKEND_UP;
  remote_init_sync (rb);

  rb->conn[0].h = remote_connect_handle (rb, REMOTE_FOREVER);
  if (rb->conn[0].h == NULL || !remote_probe (rb, rb->conn[0].h))
    goto err;
  s = (struct remote_slot0) { .rb = rb, .h = rb->conn[0].h,
                              .wait_ms = timeout_ms };
  io = remote_slot0_io (&s);
  if (claim_take (&rb->claim, uri, &io, rb->page) == -1)
    goto err;

  pthread_mutex_lock (&remote_all.lock);
  rb->next = remote_all.first;
  remote_all.first = rb;
  if (remote_all.serving) {
    pthread_mutex_lock (&rb->lock);
    remote_start_keeper (rb);
    pthread_mutex_unlock (&rb->lock);
  }
  pthread_mutex_unlock (&remote_all.lock);
  return &rb->be;

 err:
  remote_destroy (rb, false);
  return NULL;
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
