/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the control socket. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "control-internal.h"
#include "log.h"

struct control_state control = {
  .listen_fd = -1, .wake = { -1, -1 }, .done = { -1, -1 },
  .add_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* A command running in a thread of its own for one client, so that a
 * slow one (an add that connects to a server that does not answer) does
 * not hold up the others.  The client's further lines wait for it; when
 * it finishes it says so on control.done, and the control thread queues
 * its reply and frees it.
 */
struct control_job {
  pthread_t thread;
  struct ctl_command cmd;
  char line[CTL_LINE_MAX];             /* as the client sent it */
  char *reply;                         /* its reply, once finished */
  size_t reply_len;
  bool finished;                       /* atomic */
  char why[512];                       /* its thread's last error */
};

/* Milliseconds of the monotonic clock. */
static int64_t
control_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a server accepts connections on the socket at addr. */
static bool
control_listening (const struct sockaddr_un *addr)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool r;

  if (fd == -1)
    return false;
  r = connect (fd, (const struct sockaddr *) addr, sizeof *addr) == 0;
  close (fd);
  return r;
}

int
control_open (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  mode_t mask;
  int r;

  if (strlen (path) >= sizeof addr.sun_path) {
    nbdkit_error ("control=%s: a socket path has at most %zu bytes",
                  path, sizeof addr.sun_path - 1);
    return -1;
  }
  strcpy (addr.sun_path, path);
  if (lstat (path, &st) == 0) {
    if (!S_ISSOCK (st.st_mode)) {
      nbdkit_error ("control=%s: the file exists and is not a socket", path);
      return -1;
    }
    if (control_listening (&addr)) {
      nbdkit_error ("control=%s: another server is listening there", path);
      return -1;
    }
    unlink (path);
  }
  control.path = strdup (path);
  control.listen_fd = socket (AF_UNIX,
                              SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (control.path == NULL || control.listen_fd == -1) {
    nbdkit_error ("control=%s: %m", path);
    goto fail;
  }
  /* Mode 0600 from the start: no window in which others could connect. */
  mask = umask (0177);
  r = bind (control.listen_fd, (struct sockaddr *) &addr, sizeof addr);
  umask (mask);
  if (r == -1) {
    nbdkit_error ("control=%s: bind: %m", path);
    goto fail;
  }
  if (listen (control.listen_fd, CONTROL_CLIENTS) == -1 ||
      pipe2 (control.wake, O_CLOEXEC) == -1 ||
      pipe2 (control.done, O_CLOEXEC | O_NONBLOCK) == -1) {
    nbdkit_error ("control=%s: %m", path);
    unlink (path);
    goto fail;
  }
  control.pid = getpid ();
  control.open = true;
  return 0;

 fail:
  if (control.listen_fd >= 0)
    close (control.listen_fd);
  control.listen_fd = -1;
  for (int i = 0; i < 2; i++) {
    if (control.wake[i] >= 0)
      close (control.wake[i]);
    if (control.done[i] >= 0)
      close (control.done[i]);
    control.wake[i] = control.done[i] = -1;
  }
  free (control.path);
  control.path = NULL;
  return -1;
}

/* Disconnect a client, first trying to send it what replies it has
 * pending and one error line (or none).  A job it has goes on: its slot
 * stays taken until control_jobs_done (or control_close) reaps the job,
 * and its reply is dropped.
 */
static void
control_drop (struct control_client *c, const char *why)
{
  char line[128];
  int n = why ? snprintf (line, sizeof line, "error %s\n", why) : 0;
  if (c->out_len > 0)
    send (c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0)
    send (c->fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  close (c->fd);
  c->fd = -1;
  free (c->out);
  c->out = NULL;
  c->out_len = 0;
}

/* Send what the client takes of its pending replies, without waiting;
 * false if it is gone (and dropped).
 */
static bool
control_flush (struct control_client *c)
{
  size_t done = 0;

  while (done < c->out_len) {
    ssize_t n = send (c->fd, c->out + done, c->out_len - done,
                      MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1 && errno == EAGAIN)
      break;
    if (n <= 0) {
      c->out_len = 0;
      control_drop (c, NULL);
      return false;
    }
    done += n;
  }
  c->out_len -= done;
  memmove (c->out, c->out + done, c->out_len);
  return true;
}

/* Append len bytes of reply to the client's pending replies; false if
 * the client was dropped (no memory).
 */
static bool
control_queue (struct control_client *c, const char *reply, size_t len)
{
  char *queue = realloc (c->out, c->out_len + len);

  if (queue == NULL) {
    control_drop (c, "out of memory");
    return false;
  }
  memcpy (queue + c->out_len, reply, len);
  c->out = queue;
  c->out_len += len;
  return true;
}

/* The audit trail: log who ran the command line (len bytes) and what
 * came of it (the status line of reply), for the commands that change
 * something (add, priority, remove) and for every line refused.  A
 * refusal is the operator's to fix: a notice, not a server error.
 */
static void
control_audit (const struct control_client *c, const char *line,
               size_t len, bool action, const char *reply, size_t reply_len)
{
  const char *status = reply, *p;
  char shown[2 * CTL_LINE_MAX];
  size_t i, n = 0;
  bool refused;

  /* The status line is the last line of the reply. */
  for (p = reply; p < reply + reply_len; p++)
    if (*p == '\n' && p + 1 < reply + reply_len)
      status = p + 1;
  refused = reply_len >= 6 && strncmp (status, "error ", 6) == 0;
  if (!action && !refused)
    return;
  /* The line as sent, without its control characters. */
  for (i = 0; i < len && n < sizeof shown - 1; i++)
    shown[n++] = (unsigned char) line[i] < ' ' || line[i] == 0x7f ? '?'
                 : line[i];
  shown[n] = '\0';
  n = 0;
  while (status + n < reply + reply_len && status[n] != '\n')
    n++;
  log_notice ("control: uid %u pid %d: %s: %.*s", (unsigned) c->uid,
              (int) c->pid, shown, (int) n, status);
}

/* The thread of a job: run its command, keep the reply, say so. */
static void *
control_job_run (void *arg)
{
  struct control_job *job = arg;
  FILE *out = open_memstream (&job->reply, &job->reply_len);

  log_capture_only (job->why, sizeof job->why);
  if (out) {
    control_run (out, &job->cmd, job->why);
    fclose (out);
  }
  log_capture (NULL, 0);
  __atomic_store_n (&job->finished, true, __ATOMIC_RELEASE);
  while (write (control.done[1], "", 1) == -1 && errno == EINTR)
    ;
  return NULL;
}

/* Run cmd (from line, len bytes) for client c in a job; false if the
 * client was dropped.
 */
static bool
control_job_start (struct control_client *c, const struct ctl_command *cmd,
                   const char *line, size_t len)
{
  struct control_job *job = calloc (1, sizeof *job);
  int err;

  if (job == NULL) {
    control_drop (c, "out of memory");
    return false;
  }
  job->cmd = *cmd;
  memcpy (job->line, line, len < sizeof job->line ? len : sizeof job->line);
  err = pthread_create (&job->thread, NULL, control_job_run, job);
  if (err) {
    char reply[256];
    int n = snprintf (reply, sizeof reply,
                      "error cannot start a thread: %s\n", strerror (err));

    free (job);
    return control_queue (c, reply, n);
  }
  c->job = job;
  return true;
}

/* Wait for the job of client c to end and free it; with queue, queue
 * its reply first.  False if the client was dropped.
 */
static bool
control_job_end (struct control_client *c, bool queue)
{
  struct control_job *job = c->job;
  bool r = true;

  pthread_join (job->thread, NULL);
  c->job = NULL;
  if (job->reply)
    control_audit (c, job->line, strnlen (job->line, sizeof job->line),
                   true, job->reply, job->reply_len);
  if (queue) {
    if (job->reply)
      r = control_queue (c, job->reply, job->reply_len);
    else {
      control_drop (c, "out of memory");
      r = false;
    }
  }
  free (job->reply);
  free (job);
  return r;
}

/* Run one command line and queue its reply, or start a job for it;
 * false if the client was dropped.
 */
static bool
control_command (struct control_client *c, const char *line, size_t len)
{
  struct ctl_command *cmd = &control.cmd;
  char err[256], *reply = NULL;
  size_t size = 0;
  bool parsed = ctl_parse (line, len, cmd, err, sizeof err) == 0;
  FILE *out;
  bool r;

  /* add may connect to a server, revive reconnect one: neither holds
   * the other clients up while it waits (timeout=).
   */
  if (parsed && (cmd->verb == CTL_ADD || cmd->verb == CTL_REVIVE))
    return control_job_start (c, cmd, line, len);
  out = open_memstream (&reply, &size);
  if (out == NULL) {
    control_drop (c, "out of memory");
    return false;
  }
  control.why[0] = '\0';
  if (!parsed)
    control_error (out, err);
  else
    control_run (out, cmd, control.why);
  fclose (out);
  control_audit (c, line, len, parsed && (cmd->verb == CTL_PRIORITY ||
                                          cmd->verb == CTL_REMOVE ||
                                          cmd->verb == CTL_CANCEL ||
                                          cmd->verb == CTL_REVIVE ||
                                          cmd->verb == CTL_STOP),
                 reply, size);
  r = control_queue (c, reply, size);
  free (reply);
  return r;
}

/* Run the client's complete lines while its pending replies stay below
 * CONTROL_OUT_MAX, and send what it takes of them.
 */
static void
control_serve (struct control_client *c, int64_t now)
{
  char *nl;

  while (c->job == NULL && c->out_len < CONTROL_OUT_MAX &&
         (nl = memchr (c->buf, '\n', c->len)) != NULL) {
    size_t len = nl - c->buf;

    if (!control_command (c, c->buf, len))
      return;
    c->len -= len + 1;
    memmove (c->buf, nl + 1, c->len);
    c->deadline = now + CONTROL_IDLE_MS;
  }
  if (c->len == sizeof c->buf && memchr (c->buf, '\n', c->len) == NULL) {
    control_drop (c, "the line is too long; closing");
    return;
  }
  control_flush (c);
}

void
control_nbd_opened (void)
{
  __atomic_add_fetch (&control.nbd_clients, 1, __ATOMIC_RELAXED);
}

void
control_nbd_closed (void)
{
  __atomic_sub_fetch (&control.nbd_clients, 1, __ATOMIC_RELAXED);
}

/* Read what a client sent and serve it. */
static void
control_read (struct control_client *c, int64_t now)
{
  ssize_t n = read (c->fd, c->buf + c->len, sizeof c->buf - c->len);

  if (n == -1 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    control_drop (c, NULL);
    return;
  }
  c->len += n;
  control_serve (c, now);
}

/* Take a new client, if it is the server's user or root. */
static void
control_accept (int64_t now)
{
  struct ucred cred;
  socklen_t len = sizeof cred;
  unsigned i;
  int fd;

  fd = accept4 (control.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd == -1)
    return;
  for (i = 0; i < CONTROL_CLIENTS; i++)
    if (control.client[i].fd == -1 && control.client[i].job == NULL)
      break;
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
    log_warning ("control: a client whose credentials cannot be read "
                 "(%m) is refused");
    control_drop (&(struct control_client) { .fd = fd },
                  "not allowed: your credentials cannot be read");
    return;
  }
  if (cred.uid != 0 && cred.uid != geteuid ()) {
    char why[128];

    snprintf (why, sizeof why, "not allowed: uid %u is neither root nor "
              "the plugin's user (uid %u)", (unsigned) cred.uid,
              (unsigned) geteuid ());
    log_notice ("control: uid %u pid %d: refused: %s", (unsigned) cred.uid,
                (int) cred.pid, why);
    control_drop (&(struct control_client) { .fd = fd }, why);
    return;
  }
  if (i == CONTROL_CLIENTS) {
    log_warning ("control: uid %u pid %d: refused: %d clients already",
                 (unsigned) cred.uid, (int) cred.pid, CONTROL_CLIENTS);
    control_drop (&(struct control_client) { .fd = fd },
                  "too many clients; try again later");
    return;
  }
  control.client[i] = (struct control_client) {
    .fd = fd, .deadline = now + CONTROL_IDLE_MS,
    .uid = cred.uid, .pid = cred.pid,
  };
}

/* Queue the replies of the jobs that finished and serve their clients
 * on.
 */
static void
control_jobs_done (int64_t now)
{
  char byte[64];
  unsigned i;

  while (read (control.done[0], byte, sizeof byte) > 0)
    ;
  for (i = 0; i < CONTROL_CLIENTS; i++) {
    struct control_client *c = &control.client[i];

    if (c->job == NULL ||
        !__atomic_load_n (&c->job->finished, __ATOMIC_ACQUIRE))
      continue;
    if (c->fd == -1)
      control_job_end (c, false);      /* its client is gone */
    else if (control_job_end (c, true)) {
      c->deadline = now + CONTROL_IDLE_MS;
      control_serve (c, now);
    }
  }
}

/* The thread: serve the clients until control_close. */
static void *
control_thread (void *arg)
{
  struct pollfd pfd[3 + CONTROL_CLIENTS];
  unsigned who[CONTROL_CLIENTS];

  log_capture_only (control.why, sizeof control.why);
  for (;;) {
    int64_t now = control_now (), wait;
    unsigned i, n = 3;

    if (now >= control.next_tick) {
      control_sample (now);
      control.next_tick = now + CONTROL_TICK_MS;
    }
    wait = control.next_tick - now;
    pfd[0] = (struct pollfd) { .fd = control.wake[0], .events = POLLIN };
    pfd[1] = (struct pollfd) { .fd = control.listen_fd, .events = POLLIN };
    pfd[2] = (struct pollfd) { .fd = control.done[0], .events = POLLIN };
    for (i = 0; i < CONTROL_CLIENTS; i++) {
      struct control_client *c = &control.client[i];

      /* A client whose command runs waits for it, without a deadline. */
      if (c->fd == -1 || c->job)
        continue;
      if (c->deadline <= now) {
        control_drop (c, "no command for a while; closing");
        continue;
      }
      if (c->deadline - now < wait)
        wait = c->deadline - now;
      who[n - 3] = i;
      /* Its next lines wait until its replies are sent. */
      pfd[n++] = (struct pollfd) {
        .fd = c->fd, .events = c->out_len > 0 ? POLLOUT : POLLIN,
      };
    }
    if (poll (pfd, n, wait) == -1)
      continue;                        /* EINTR */
    if (pfd[0].revents)
      break;
    now = control_now ();
    if (pfd[2].revents & POLLIN)
      control_jobs_done (now);
    for (i = 3; i < n; i++) {
      struct control_client *c = &control.client[who[i - 3]];

      if (pfd[i].revents == 0 || c->fd == -1 || c->job)
        continue;
      if (c->out_len == 0)
        control_read (c, now);
      else if (control_flush (c) && c->out_len == 0)
        control_serve (c, now);
    }
    if (pfd[1].revents & POLLIN)
      control_accept (now);
    /* After the reply to stop (a few bytes: sent by now, or its client
     * dropped), nbdkit stops serving, and unloads the plugin once its
     * requests are done.
     */
    if (control.stop_asked) {
      control.stop_asked = false;
      nbdkit_shutdown ();
    }
  }
  log_capture (NULL, 0);
  return NULL;
}

int
control_start (struct engine *e, struct tierset *ts, uint64_t npages,
               uint64_t spare, struct repair *repair, struct demote *demote)
{
  unsigned i;
  int err;

  if (!control.open)
    return 0;
  control.e = e;
  control.repair = repair;
  control.demote = demote;
  control.ts = ts;
  control.npages = npages;
  control.spare = spare;
  control.pid = getpid ();
  for (i = 0; i < CONTROL_CLIENTS; i++)
    control.client[i].fd = -1;
  err = pthread_create (&control.thread, NULL, control_thread, NULL);
  if (err) {
    nbdkit_error ("control=%s: starting its thread: %s",
                  control.path, strerror (err));
    return -1;
  }
  control.running = true;
  return 0;
}

void
control_close (void)
{
  unsigned i;

  if (!control.open)
    return;
  control.open = false;
  if (control.running) {
    while (write (control.wake[1], "", 1) == -1 && errno == EINTR)
      ;
    pthread_join (control.thread, NULL);
    control.running = false;
    for (i = 0; i < CONTROL_CLIENTS; i++) {
      struct control_client *c = &control.client[i];

      if (c->fd >= 0)
        control_drop (c, NULL);
      if (c->job)
        control_job_end (c, false);
    }
  }
  drain_destroy (control.drain);
  control.drain = NULL;
  close (control.listen_fd);
  close (control.wake[0]);
  close (control.wake[1]);
  close (control.done[0]);
  close (control.done[1]);
  /* Only the process serving the socket removes it, not one forked from
   * it that happens to exit through here.
   */
  if (getpid () == control.pid)
    unlink (control.path);
  free (control.path);
  control.path = NULL;
}
