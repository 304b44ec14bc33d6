/* swaptier: remote NBD backend through libnbd.
 *
 * A pool of up to nconns connections to one export; each request owns one
 * connection from start to end, so the pool size bounds the requests in
 * flight.  A request is issued with libnbd's asynchronous API and waited
 * for with nbd_poll, which gives it a deadline.
 *
 * When a connection fails (error from the socket, timeout), the backend
 * goes DOWN: it takes no new writes (a write in progress fails with
 * ENOTCONN so that the engine puts the data elsewhere), reads wait, and a
 * thread reconnects with exponential backoff.  If the server is not back
 * within the grace time the backend is DEAD and every request fails.
 *
 * Slot 0 of the export holds a token written at start.  Every new
 * connection reads it back; a different token means the server lost what
 * we wrote (a restarted memory server, another export), and the backend is
 * DEAD at once rather than serving zeroes for pages it no longer has.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include <libnbd.h>

#include "backend.h"
#include "log.h"
#include "page.h"

#define REMOTE_MAX_CONNS 64
#define REMOTE_MAX_REQUEST (32 * 1024 * 1024) /* largest request we send */
#define REMOTE_BACKOFF_MIN_MS 100
#define REMOTE_BACKOFF_MAX_MS 2000

struct remote_conn {
  struct nbd_handle *h;                /* NULL: not connected */
  bool busy;                           /* owned by a request */
};

struct remote_backend {
  struct backend be;                   /* must be first */
  unsigned timeout_ms, grace_ms;
  uint32_t max_request;                /* bytes, a multiple of PAGE_SIZE */
  bool multi_conn, can_fua, can_trim;
  char token[PAGE_SIZE] __attribute__ ((aligned (PAGE_SIZE)));

  pthread_mutex_t lock;                /* guards everything below */
  pthread_cond_t changed;              /* a connection or the state */
  enum backend_health health;          /* also read without the lock */
  uint64_t down_since_ms;
  bool thread_running, thread_joinable, closing;
  pthread_t thread;
  unsigned nconns;
  struct remote_conn conn[REMOTE_MAX_CONNS];
};

enum remote_result {
  REMOTE_OK,                              /* done */
  REMOTE_FAILED,                          /* the server answered an error */
  REMOTE_LOST,                            /* the connection is unusable */
  REMOTE_MISMATCH,                        /* the token is not ours */
};

enum remote_op { REMOTE_OP_READ, REMOTE_OP_WRITE, REMOTE_OP_FLUSH, REMOTE_OP_TRIM };

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
 * REMOTE_LOST for the connection, else REMOTE_FAILED with errno set to
 * the server's error.
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

/* Issue one command on handle h and wait for it until the deadline.
 * REMOTE_FAILED leaves errno as the server's error.
 */
static enum remote_result
remote_run (struct remote_backend *rb, struct nbd_handle *h, enum remote_op op,
         void *buf, uint64_t count, uint64_t offset, bool fua)
{
  uint64_t deadline = remote_now_ms () + rb->timeout_ms;
  uint32_t flags = fua && rb->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  int64_t cookie = -1;

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
    uint64_t now;
    int r = nbd_aio_command_completed (h, cookie);

    if (r == 1)
      return REMOTE_OK;
    if (r == -1)
      return remote_command_failed (rb, h);
    now = remote_now_ms ();
    if (now >= deadline) {
      log_error ("%s: no reply within %u ms", rb->be.target, rb->timeout_ms);
      return REMOTE_LOST;
    }
    if (nbd_poll (h, deadline - now) == -1) {
      log_error ("%s: %s", rb->be.target, nbd_get_error ());
      return REMOTE_LOST;
    }
  }
}

/* Connect a new handle, waiting at most the request timeout. */
static struct nbd_handle *
remote_connect_handle (struct remote_backend *rb)
{
  uint64_t deadline = remote_now_ms () + rb->timeout_ms;
  struct nbd_handle *h = nbd_create ();

  if (h == NULL) {
    log_error ("%s: %s", rb->be.target, nbd_get_error ());
    return NULL;
  }
  if (nbd_set_uri_allow_local_file (h, true) == -1 ||
      nbd_aio_connect_uri (h, rb->be.target) == -1)
    goto err;
  while (nbd_aio_is_connecting (h)) {
    uint64_t now = remote_now_ms ();

    if (now >= deadline) {
      log_error ("%s: cannot connect: no answer within %u ms",
                 rb->be.target, rb->timeout_ms);
      nbd_close (h);
      return NULL;
    }
    if (nbd_poll (h, deadline - now) == -1)
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

/* Whether the export behind h still holds our token in slot 0:
 * REMOTE_MISMATCH means the data is gone; REMOTE_FAILED that the server
 * answered the read with an error, which proves nothing either way.
 */
static enum remote_result
remote_check_token (struct remote_backend *rb, struct nbd_handle *h)
{
  char *buf = malloc (PAGE_SIZE);
  enum remote_result r;

  /* Connecting allocates anyway (libnbd), so this costs nothing more. */
  if (buf == NULL) {
    log_error ("%s: %m", rb->be.target);
    return REMOTE_LOST;
  }
  r = remote_run (rb, h, REMOTE_OP_READ, buf, PAGE_SIZE, 0, false);
  if (r == REMOTE_OK && memcmp (buf, rb->token, PAGE_SIZE) != 0) {
    log_error ("%s: the export no longer holds what swaptier wrote there "
               "(the server lost its data or is another export); every "
               "page on this backend is lost", rb->be.target);
    r = REMOTE_MISMATCH;
  }
  free (buf);
  return r;
}

/* Mark the backend DOWN after a lost connection and start reconnecting
 * (with the lock).  Idle connections to the same server are closed too:
 * they are most likely broken the same way.
 */
static void remote_start_reconnect (struct remote_backend *rb);

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
  remote_start_reconnect (rb);
  pthread_cond_broadcast (&rb->changed);
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

/* Sleep ms milliseconds unless the backend is being closed; returns
 * false if it is (with the lock, which it drops while waiting).
 */
static bool
remote_backoff_sleep (struct remote_backend *rb, unsigned ms)
{
  struct timespec until;

  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (!rb->closing &&
         pthread_cond_timedwait (&rb->changed, &rb->lock, &until) == 0)
    ;
  return !rb->closing;
}

/* The reconnection thread: try with growing pauses until a connection
 * is made and the token checks out (UP), the token differs or the grace
 * time is over (DEAD), or the backend is closed.
 */
static void *
remote_reconnect_thread (void *arg)
{
  struct remote_backend *rb = arg;
  unsigned backoff = REMOTE_BACKOFF_MIN_MS;

  pthread_mutex_lock (&rb->lock);
  while (remote_backoff_sleep (rb, backoff)) {
    struct nbd_handle *h;
    enum remote_result r = REMOTE_LOST;
    unsigned i;

    pthread_mutex_unlock (&rb->lock);
    h = remote_connect_handle (rb);
    if (h)
      r = remote_check_token (rb, h);
    pthread_mutex_lock (&rb->lock);

    if (r == REMOTE_OK) {
      for (i = 0; i < rb->nconns; i++)
        if (!rb->conn[i].busy && rb->conn[i].h == NULL)
          break;
      if (i < rb->nconns)
        rb->conn[i].h = h;
      else
        nbd_close (h);
      __atomic_store_n (&rb->health, BACKEND_UP, __ATOMIC_RELAXED);
      log_error ("%s: reconnected after %" PRIu64 " ms", rb->be.target,
                 remote_now_ms () - rb->down_since_ms);
      pthread_cond_broadcast (&rb->changed);
      break;
    }
    if (h)
      nbd_close (h);
    if (r == REMOTE_MISMATCH) {
      remote_mark_dead (rb, "the server lost its data");
      break;
    }
    if (remote_now_ms () - rb->down_since_ms >= rb->grace_ms) {
      remote_mark_dead (rb, "the server did not come back in time");
      break;
    }
    backoff = backoff * 2 < REMOTE_BACKOFF_MAX_MS ? backoff * 2
      : REMOTE_BACKOFF_MAX_MS;
  }
  rb->thread_running = false;
  pthread_mutex_unlock (&rb->lock);
  return NULL;
}

static void
remote_start_reconnect (struct remote_backend *rb)
{
  int err;

  if (rb->thread_running)
    return;
  if (rb->thread_joinable)
    pthread_join (rb->thread, NULL);
  rb->thread_joinable = false;
  err = pthread_create (&rb->thread, NULL, remote_reconnect_thread, rb);
  if (err) {
    errno = err;
    remote_mark_dead (rb, "cannot start the reconnection thread");
    return;
  }
  rb->thread_running = rb->thread_joinable = true;
}

/* Take a connection for one request.  With wait_while_down, wait out a
 * reconnection; otherwise fail at once (ENOTCONN) while DOWN.  Fails with
 * EIO once DEAD.
 */
static struct remote_conn *
remote_acquire (struct remote_backend *rb, bool wait_while_down)
{
  struct remote_conn *c = NULL;
  unsigned i;

  pthread_mutex_lock (&rb->lock);
  for (;;) {
    if (rb->health == BACKEND_DEAD) {
      errno = EIO;
      break;
    }
    if (rb->health == BACKEND_DOWN && !wait_while_down) {
      errno = ENOTCONN;
      break;
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
    pthread_cond_wait (&rb->changed, &rb->lock);
  }
  pthread_mutex_unlock (&rb->lock);
  return c;
}

/* Give the connection back.  After REMOTE_LOST its handle is closed and the
 * backend goes DOWN.
 */
static void
remote_release (struct remote_backend *rb, struct remote_conn *c, enum remote_result r)
{
  pthread_mutex_lock (&rb->lock);
  if (r == REMOTE_LOST) {
    if (c->h)
      nbd_close (c->h);
    c->h = NULL;
    remote_mark_down (rb);
  }
  c->busy = false;
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
}

/* Run one request on connection c, connecting it first if needed and
 * splitting the transfer at the server's largest request.
 */
static enum remote_result
remote_transfer (struct remote_backend *rb, struct remote_conn *c, enum remote_op op,
              char *buf, uint64_t count, uint64_t offset, bool fua)
{
  enum remote_result r = REMOTE_OK;

  if (c->h == NULL) {
    c->h = remote_connect_handle (rb);
    if (c->h == NULL)
      return REMOTE_LOST;
    r = remote_check_token (rb, c->h);
    if (r == REMOTE_MISMATCH) {
      pthread_mutex_lock (&rb->lock);
      remote_mark_dead (rb, "the server lost its data");
      pthread_mutex_unlock (&rb->lock);
      errno = EIO;
      return REMOTE_FAILED;
    }
    if (r == REMOTE_FAILED) {
      /* Not verified: fail this request only, and check again on the
       * next use of this connection.
       */
      nbd_close (c->h);
      c->h = NULL;
    }
    if (r != REMOTE_OK)
      return r;
  }
  if (op == REMOTE_OP_FLUSH)
    return remote_run (rb, c->h, op, NULL, 0, 0, false);
  while (r == REMOTE_OK && count > 0) {
    uint64_t n = count < rb->max_request ? count : rb->max_request;

    r = remote_run (rb, c->h, op, buf, n, offset, fua);
    if (buf)
      buf += n;
    offset += n;
    count -= n;
  }
  return r;
}

/* Data slots start after the token slot. */
static uint64_t
remote_offset (uint64_t slot)
{
  return (slot + 1) * PAGE_SIZE;
}

/* Reads survive a lost connection: they wait for the reconnection and
 * run again, until the backend is DEAD.
 */
static int
remote_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct remote_backend *rb = remote_backend (be);

  for (;;) {
    struct remote_conn *c = remote_acquire (rb, true);
    enum remote_result r;

    if (c == NULL) {
      log_error ("%s: read of slot %" PRIu64 ": the backend is failed",
                 be->target, slot);
      return -1;
    }
    r = remote_transfer (rb, c, REMOTE_OP_READ, buf, n * PAGE_SIZE,
                      remote_offset (slot), false);
    remote_release (rb, c, r);
    if (r == REMOTE_OK)
      return 0;
    if (r == REMOTE_FAILED)
      return -1;
  }
}

/* A write on a lost connection is not retried at the same place: the
 * server may or may not have it, so the engine writes the data elsewhere
 * (and never reuses these slots).
 */
static int
remote_write_op (struct remote_backend *rb, enum remote_op op, const void *buf,
              uint64_t slot, uint64_t n, bool fua)
{
  struct remote_conn *c = remote_acquire (rb, false);
  enum remote_result r;

  if (c == NULL)
    return -1;
  r = remote_transfer (rb, c, op, (char *) buf, n * PAGE_SIZE,
                    remote_offset (slot), fua);
  remote_release (rb, c, r);
  if (r == REMOTE_LOST)
    errno = ENOTCONN;
  return r == REMOTE_OK ? 0 : -1;
}

static int
remote_write (struct backend *be, const void *buf, uint64_t slot, uint64_t n,
           bool fua)
{
  struct remote_backend *rb = remote_backend (be);

  if (remote_write_op (rb, REMOTE_OP_WRITE, buf, slot, n, fua) == -1)
    return -1;
  if (fua && !rb->can_fua)
    return be->ops->flush (be);
  return 0;
}

static int
remote_trim (struct backend *be, uint64_t slot, uint64_t n)
{
  struct remote_backend *rb = remote_backend (be);

  if (!rb->can_trim)
    return 0;
  return remote_write_op (rb, REMOTE_OP_TRIM, NULL, slot, n, false);
}

/* Flush one connection, or every one where the server does not promise
 * that a flush covers all connections (no multi-conn).  While the server
 * is unreachable, wait for it like a read: the flush must still cover
 * what it acknowledged before the connection was lost.
 */
static int
remote_flush (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);
  struct remote_conn *first = remote_acquire (rb, true);
  enum remote_result r;
  unsigned i;
  int ret = 0;

  if (first == NULL)
    return -1;
  r = remote_transfer (rb, first, REMOTE_OP_FLUSH, NULL, 0, 0, false);
  remote_release (rb, first, r);
  if (r != REMOTE_OK) {
    if (r == REMOTE_LOST)
      errno = ENOTCONN;
    return -1;
  }
  for (i = 0; i < rb->nconns && !rb->multi_conn; i++) {
    struct remote_conn *c = &rb->conn[i];

    pthread_mutex_lock (&rb->lock);
    while (c->busy)
      pthread_cond_wait (&rb->changed, &rb->lock);
    if (c == first || c->h == NULL) {
      pthread_mutex_unlock (&rb->lock);
      continue;
    }
    c->busy = true;
    pthread_mutex_unlock (&rb->lock);

    r = remote_run (rb, c->h, REMOTE_OP_FLUSH, NULL, 0, 0, false);
    remote_release (rb, c, r);
    if (r != REMOTE_OK) {
      if (r == REMOTE_LOST)
        errno = ENOTCONN;
      ret = -1;
    }
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
remote_close_backend (struct backend *be)
{
  struct remote_backend *rb = remote_backend (be);
  unsigned i;

  pthread_mutex_lock (&rb->lock);
  rb->closing = true;
  pthread_cond_broadcast (&rb->changed);
  pthread_mutex_unlock (&rb->lock);
  if (rb->thread_joinable)
    pthread_join (rb->thread, NULL);
  for (i = 0; i < rb->nconns; i++)
    if (rb->conn[i].h)
      nbd_close (rb->conn[i].h);
  pthread_cond_destroy (&rb->changed);
  pthread_mutex_destroy (&rb->lock);
  free (be->target);
  free (rb);
}

static const struct backend_ops remote_ops = {
  .kind = "nbd",
  .read = remote_read,
  .write = remote_write,
  .flush = remote_flush,
  .trim = remote_trim,
  .health = remote_health,
  .close = remote_close_backend,
};

/* Learn the export's size and constraints from the first connection and
 * write the token.  Returns false after log_error.
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
               "holds swaptier's token, at least one more is needed)",
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

  if (remote_run (rb, h, REMOTE_OP_WRITE, rb->token, PAGE_SIZE, 0, true) != REMOTE_OK) {
    log_error ("%s: cannot write swaptier's token to slot 0", rb->be.target);
    return false;
  }
  return true;
}

/* Fill the token: a magic string, then random bytes. */
static bool
remote_make_token (struct remote_backend *rb)
{
  size_t len = snprintf (rb->token, sizeof rb->token,
                         "swaptier backend token\n");
  char *p = rb->token + len;
  size_t left = 64;

  while (left > 0) {
    ssize_t r = getrandom (p, left, 0);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      log_error ("getrandom: %m");
      return false;
    }
    p += r;
    left -= r;
  }
  return true;
}

struct backend *
backend_nbd_open (const char *uri, unsigned nconns, unsigned timeout_ms,
                  unsigned grace_ms)
{
  struct remote_backend *rb;
  struct nbd_handle *h;

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
  pthread_mutex_init (&rb->lock, NULL);
  pthread_cond_init (&rb->changed, NULL);

  if (!remote_make_token (rb))
    goto err;
  h = remote_connect_handle (rb);
  if (h == NULL)
    goto err;
  rb->conn[0].h = h;
  if (!remote_probe (rb, h))
    goto err;
  return &rb->be;

 err:
  remote_close_backend (&rb->be);
  return NULL;
}
