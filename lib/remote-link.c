/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: one connection of a remote backend, with many commands in
 * flight on it (see remote.h).
 *
 * NBD lets a client send a command before the replies to the earlier
 * ones came back, and libnbd's asynchronous API issues commands from any
 * thread.  A link is one connected handle and its poller: a thread that
 * waits with poll(2) on the handle's socket, in the direction libnbd
 * asks for, and on an eventfd that the other threads write to when they
 * issued a command (the direction may now include writing) or when the
 * link is being closed.  The poller tells libnbd what the socket can do
 * (nbd_aio_notify_read, _write); libnbd then calls the completion of
 * each command whose reply came, in the poller's thread.  A completion
 * only records the error and posts the semaphore of its command, which
 * the thread that issued it waits on.
 *
 * So the commands in flight on a remote backend are those its callers
 * sent, up to REMOTE_LINK_DEPTH per connection, not one per connection.
 *
 * Every command owns its data: a write's bytes are copied into it before
 * it is issued, a read's are copied out once it completed (at most one
 * stripe unit, 1 MiB: the engine's runs are no longer).  A command is
 * freed by the last of its two holders to let go of it: the caller, and
 * libnbd (which calls the free callback once it will not touch the
 * command's buffer again: retired, or its handle closed).  So a caller
 * whose command gets no reply in time (see remote_link_deadline), or
 * whose wait a shutdown ends, returns at once, REMOTE_LOST, and leaves
 * the command to libnbd.
 *
 * Such a link is cut: the pool gives it no new command, but it is not
 * closed while the server may still answer on it.  inflight counts the
 * commands libnbd holds; a cut link is closed once that is zero and it
 * has no user (remote_link_idle), or once grace= passed since the cut
 * (the server is not answering: it would have been given up), or when
 * the backend is closed, after waiting a while for the replies
 * (remote_link_wait_idle).  The server
 * may take a command it never answered as done; closing a connection
 * with several replies still to come makes nbdkit 1.32 abort (fixed by
 * nbdkit commit 9d82aa4f, in 1.34), so this is what keeps a stall longer
 * than timeout= from taking a Debian server down.
 *
 * lock serializes every call into libnbd on the handle.  poll(2) itself
 * runs without it.  The poller is started at the first command of the
 * process that serves, not at opening, since nbdkit may fork in
 * between; a poller of another process (the parent) does not count.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "remote.h"
#include "swapsafe.h"

struct remote_link {
  struct remote_backend *rb;
  struct nbd_handle *h;
  int wake;                            /* eventfd: issued, or stop */
  pthread_mutex_t lock;                /* libnbd calls on h */
  bool cut;                            /* no new commands: also read
                                          without the lock */
  bool dead;                           /* libnbd closed the connection */
  bool stop;                           /* the poller must end */
  unsigned inflight;                   /* commands libnbd holds: atomic */
  uint64_t cut_ms;                     /* when it was cut (0: not): atomic */
  uint64_t reply_ms;                   /* the last reply: atomic */
  pid_t poller_pid;                    /* 0: no poller (in this process) */
  pthread_t poller;
};

/* One command: what its completion says, and its own data. */
struct remote_link_cmd {
  struct remote_link *link;
  sem_t done;                          /* posted by the completion */
  int error;
  unsigned holders;                    /* the caller, libnbd: atomic */
  char data[];                         /* the bytes read or written */
};

struct remote_link *
remote_link_new (struct remote_backend *rb, struct nbd_handle *h)
{
  struct remote_link *link = calloc (1, sizeof *link);

  if (link == NULL) {
    log_error ("%s: %m", rb->be.target);
    nbd_close (h);
    return NULL;
  }
  link->wake = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (link->wake == -1) {
    log_error ("%s: eventfd: %m", rb->be.target);
    nbd_close (h);
    free (link);
    return NULL;
  }
  link->rb = rb;
  link->h = h;
  pthread_mutex_init (&link->lock, NULL);
  return link;
}

/* Wake the poller. */
static void
remote_link_kick (struct remote_link *link)
{
  uint64_t one = 1;

  if (write (link->wake, &one, sizeof one) == -1 && errno != EAGAIN)
    log_error ("%s: eventfd: %m", link->rb->be.target);
}

/* Whether the handle can carry no more commands (with the lock). */
static bool
remote_link_dead (struct remote_link *link)
{
  return !nbd_aio_is_ready (link->h) && !nbd_aio_is_processing (link->h);
}

/* The poller: until stop, poll the socket in the direction libnbd wants
 * (not once it is dead: libnbd closed the socket) and the
 * eventfd, and tell libnbd what the socket can do.
 */
static void *
remote_link_poll (void *arg)
{
  struct remote_link *link = arg;

  swapsafe_enter_io ();
  for (;;) {
    struct pollfd p[2] = { { .fd = -1 }, { .fd = link->wake,
                                            .events = POLLIN } };
    unsigned dir = 0;
    uint64_t count;

    pthread_mutex_lock (&link->lock);
    if (link->stop) {
      pthread_mutex_unlock (&link->lock);
      break;
    }
    if (!link->dead) {
      p[0].fd = nbd_aio_get_fd (link->h);
      dir = nbd_aio_get_direction (link->h);
      p[0].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
        (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    }
    pthread_mutex_unlock (&link->lock);

    if (poll (p, 2, -1) == -1)
      continue;                        /* EINTR */
    if (p[1].revents & POLLIN)
      while (read (link->wake, &count, sizeof count) > 0)
        ;
    if (p[0].revents == 0)
      continue;
    pthread_mutex_lock (&link->lock);
    if (!link->dead) {
      int r = 0;

      if ((p[0].revents & POLLIN) ||
          ((p[0].revents & (POLLHUP | POLLERR)) &&
           (dir & LIBNBD_AIO_DIRECTION_READ)))
        r = nbd_aio_notify_read (link->h);
      else if (p[0].revents & (POLLOUT | POLLHUP | POLLERR))
        r = nbd_aio_notify_write (link->h);
      /* Polled on until libnbd itself gives the connection up. */
      link->dead = remote_link_dead (link);
      if (r == -1 || link->dead)
        __atomic_store_n (&link->cut, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock (&link->lock);
  }
  return NULL;
}

/* Start the poller unless it runs in this process (with the lock).
 * False after log_error.
 */
static bool
remote_link_start (struct remote_link *link)
{
  pid_t pid = getpid ();
  int err;

  if (link->poller_pid == pid)
    return true;
  err = pthread_create (&link->poller, NULL, remote_link_poll, link);
  if (err) {
    errno = err;
    log_error ("%s: starting a poller thread: %m", link->rb->be.target);
    return false;
  }
  link->poller_pid = pid;
  return true;
}

/* The completion of a command, in the poller's thread (or that of the
 * caller that issued it, if the link is dead): keep its error and wake
 * the caller.  Returning 1 retires the command.
 */
static int
remote_link_done (void *opaque, int *error)
{
  struct remote_link_cmd *cmd = opaque;

  __atomic_store_n (&cmd->link->reply_ms, remote_now_ms (),
                    __ATOMIC_RELAXED);
  cmd->error = *error;
  sem_post (&cmd->done);
  return 1;
}

/* Let go of a command: the last of its holders frees it. */
static void
remote_link_cmd_put (struct remote_link_cmd *cmd)
{
  if (__atomic_sub_fetch (&cmd->holders, 1, __ATOMIC_ACQ_REL) == 0) {
    sem_destroy (&cmd->done);
    free (cmd);
  }
}

/* libnbd's free callback: it will not touch the command again. */
static void
remote_link_cmd_freed (void *opaque)
{
  struct remote_link_cmd *cmd = opaque;

  __atomic_sub_fetch (&cmd->link->inflight, 1, __ATOMIC_RELEASE);
  remote_link_cmd_put (cmd);
}

/* Cut the link: it takes no new commands.  Those in flight on it go on;
 * the socket stays open while the server may still answer.
 */
static void
remote_link_cut (struct remote_link *link)
{
  uint64_t never = 0;

  __atomic_compare_exchange_n (&link->cut_ms, &never, remote_now_ms (),
                               false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  __atomic_store_n (&link->cut, true, __ATOMIC_RELEASE);
}

bool
remote_link_broken (struct remote_link *link)
{
  return __atomic_load_n (&link->cut, __ATOMIC_ACQUIRE);
}

/* Issue cmd on the link (with the lock), its data in cmd->data.
 * Returns its cookie, or -1 with libnbd's error.
 */
static int64_t
remote_link_issue (struct remote_link *link, enum remote_op op,
                   uint64_t count, uint64_t offset, uint32_t flags,
                   struct remote_link_cmd *cmd)
{
  nbd_completion_callback cb = { .callback = remote_link_done,
                                 .user_data = cmd,
                                 .free = remote_link_cmd_freed };

  switch (op) {
  case REMOTE_OP_READ:
    return nbd_aio_pread (link->h, cmd->data, count, offset, cb, 0);
  case REMOTE_OP_WRITE:
    return nbd_aio_pwrite (link->h, cmd->data, count, offset, cb, flags);
  case REMOTE_OP_FLUSH:
    return nbd_aio_flush (link->h, cb, 0);
  case REMOTE_OP_TRIM:
    return nbd_aio_trim (link->h, count, offset, cb, 0);
  }
  abort ();
}

/* A command for op over count bytes, held by the caller and (once
 * issued) libnbd; a write's bytes copied from buf.  NULL on ENOMEM.
 */
static struct remote_link_cmd *
remote_link_cmd_new (enum remote_op op, const void *buf, uint64_t count)
{
  bool has_data = op == REMOTE_OP_READ || op == REMOTE_OP_WRITE;
  struct remote_link_cmd *cmd = malloc (sizeof *cmd +
                                        (has_data ? count : 0));

  if (cmd == NULL)
    return NULL;
  cmd->error = 0;
  cmd->holders = 2;
  sem_init (&cmd->done, 0, 0);
  if (op == REMOTE_OP_WRITE)
    memcpy (cmd->data, buf, count);
  return cmd;
}

/* Send a command for op on the link: REMOTE_OK with *cmdp in flight
 * (libnbd holds it, and so does the caller), else what happened and
 * errno (REMOTE_FAILED with ENOMEM: no memory for it).
 */
static enum remote_result
remote_link_send (struct remote_link *link, enum remote_op op,
                  const void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags, struct remote_link_cmd **cmdp)
{
  struct remote_backend *rb = link->rb;
  struct remote_link_cmd *cmd = remote_link_cmd_new (op, buf, count);
  enum remote_result r = REMOTE_OK;
  int64_t cookie = -1;
  int err;

  if (cmd == NULL) {
    errno = ENOMEM;
    return REMOTE_FAILED;
  }
  cmd->link = link;
  pthread_mutex_lock (&link->lock);
  if (!link->cut && remote_link_start (link)) {
    __atomic_add_fetch (&link->inflight, 1, __ATOMIC_RELAXED);
    /* On failure libnbd has called the free callback already. */
    cookie = remote_link_issue (link, op, count, offset, flags, cmd);
    if (cookie == -1) {
      /* Not issued: the connection's fault (not sent), or the request's. */
      err = nbd_get_errno ();
      if (err != ENOMEM)
        log_error ("%s: %s", rb->be.target, nbd_get_error ());
      if (remote_link_dead (link) || remote_error_is_connection (err)) {
        link->dead = remote_link_dead (link);
        remote_link_cut (link);
        r = REMOTE_UNSENT;
      }
      else {
        errno = err ? err : EIO;
        r = REMOTE_FAILED;
      }
    }
  }
  else {
    __atomic_sub_fetch (&cmd->holders, 1, __ATOMIC_RELAXED);
    r = REMOTE_UNSENT;                 /* cut, or no poller: not sent */
  }
  pthread_mutex_unlock (&link->lock);
  if (cookie == -1) {
    err = errno;
    remote_link_cmd_put (cmd);
    errno = err;
    return r;
  }
  remote_link_kick (link);
  *cmdp = cmd;
  return REMOTE_OK;
}

/* When a command sent at start, with no answer by last at the latest,
 * is lost: timeout= after the later of its sending and the link's last
 * reply.  A server that keeps answering is not late for the commands
 * queued behind others (pipelined, they wait in its queue), but each
 * command ends by last.
 */
static uint64_t
remote_link_deadline (struct remote_link *link, uint64_t start,
                      uint64_t last)
{
  uint64_t reply = __atomic_load_n (&link->reply_ms, __ATOMIC_RELAXED);
  uint64_t deadline = (reply > start ? reply : start) + link->rb->timeout_ms;

  return deadline < last ? deadline : last;
}

/* The absolute time until (ms on the monotonic clock) as a timespec. */
static struct timespec
remote_link_timespec (uint64_t until)
{
  return (struct timespec) { .tv_sec = until / 1000,
                             .tv_nsec = (until % 1000) * 1000000L };
}

enum remote_result
remote_link_run (struct remote_link *link, enum remote_op op, void *buf,
                 uint64_t count, uint64_t offset, bool fua, uint64_t until,
                 bool stoppable)
{
  struct remote_backend *rb = link->rb;
  uint64_t start = remote_now_ms ();
  uint64_t last = start + rb->timeout_ms + rb->grace_ms;
  uint32_t flags = fua && rb->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  struct remote_link_cmd *cmd;
  bool late = false, abandoned = false, short_of_memory = false;
  enum remote_result r;
  int err;

  if (until < last)
    last = until;
  /* Sent past its deadline, it would only be lost at once. */
  if (start >= last)
    return REMOTE_UNSENT_LOCAL;
  /* Memory short (ours or libnbd's) is not the page's fault, nor the
   * connection's: wait for it while the command may still be sent.
   */
  while ((r = remote_link_send (link, op, buf, count, offset, flags, &cmd))
         == REMOTE_FAILED && errno == ENOMEM) {
    if (!short_of_memory)
      log_error ("%s: no memory for a command; waiting", rb->be.target);
    short_of_memory = true;
    if ((stoppable && remote_stopping (rb)) ||
        remote_now_ms () + 10 >= last)
      return REMOTE_UNSENT_LOCAL;
    remote_pause ();
  }
  if (r != REMOTE_OK)
    return r;
  if (short_of_memory)
    start = remote_now_ms ();          /* sent only now */

  for (;;) {
    uint64_t now = remote_now_ms (), deadline = remote_link_deadline
      (link, start, last), wake = deadline;
    struct timespec ts;

    if (wake - now > REMOTE_SLICE_MS)
      wake = now + REMOTE_SLICE_MS;
    ts = remote_link_timespec (wake);
    if (now < deadline &&
        sem_clockwait (&cmd->done, CLOCK_MONOTONIC, &ts) == 0)
      break;
    /* It may have completed as the wait ended. */
    if (sem_trywait (&cmd->done) == 0)
      break;
    abandoned = stoppable && remote_stopping (rb);
    late = !abandoned &&
      remote_now_ms () >= remote_link_deadline (link, start, last);
    if (abandoned || late)
      break;
  }
  if (late || abandoned) {
    /* The command stays libnbd's; the link takes no more. */
    remote_link_cut (link);
    remote_link_cmd_put (cmd);
    if (abandoned)
      log_error ("%s: request abandoned: stopping", rb->be.target);
    else if (remote_now_ms () >= last)
      log_error ("%s: no reply within %" PRIu64 " ms", rb->be.target,
                 last - start);
    else
      log_error ("%s: no reply within %u ms (none on its connection)",
                 rb->be.target, rb->timeout_ms);
    return REMOTE_LOST;
  }
  err = cmd->error;
  if (err == 0 && op == REMOTE_OP_READ)
    memcpy (buf, cmd->data, count);
  remote_link_cmd_put (cmd);
  if (err == 0)
    return REMOTE_OK;
  if (remote_link_broken (link) || remote_error_is_connection (err)) {
    log_error ("%s: connection lost: %s", rb->be.target, strerror (err));
    remote_link_cut (link);
    return REMOTE_LOST;
  }
  log_error ("%s: the server answered: %s", rb->be.target, strerror (err));
  errno = err;
  return REMOTE_FAILED;
}

bool
remote_link_idle (struct remote_link *link)
{
  return __atomic_load_n (&link->inflight, __ATOMIC_ACQUIRE) == 0;
}

unsigned
remote_link_owed (struct remote_link *link, uint64_t *cut_ms)
{
  *cut_ms = __atomic_load_n (&link->cut_ms, __ATOMIC_RELAXED);
  return __atomic_load_n (&link->inflight, __ATOMIC_ACQUIRE);
}

void
remote_link_wait_idle (struct remote_link *link, uint64_t until)
{
  while (link && !remote_link_idle (link) && remote_now_ms () < until)
    remote_pause ();
}

void
remote_link_close (struct remote_link *link)
{
  if (link == NULL)
    return;
  pthread_mutex_lock (&link->lock);
  link->stop = true;
  pthread_mutex_unlock (&link->lock);
  remote_link_kick (link);
  if (link->poller_pid == getpid ())
    pthread_join (link->poller, NULL);
  /* Commands still in flight are freed here (the free callback). */
  nbd_close (link->h);
  close (link->wake);
  pthread_mutex_destroy (&link->lock);
  free (link);
}
