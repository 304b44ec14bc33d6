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

#include "backend.h"
#include "control.h"
#include "ctlproto.h"
#include "drain.h"
#include "log.h"
#include "page.h"

/* One connected client.  While replies wait to be sent, its further
 * lines wait too.
 */
struct control_client {
  int fd;                              /* -1: slot free */
  size_t len;                          /* bytes of lines in buf */
  int64_t deadline;                    /* ms: dropped without a line by then */
  char *out;                           /* replies not sent yet */
  size_t out_len;
  char buf[CTL_LINE_MAX];
};

/* I/O counters of one backend at one moment. */
struct control_sample {
  int64_t ms;                          /* 0: none yet */
  uint64_t reads, writes, read_slots, write_slots;
};

static struct {
  bool open;
  char *path;
  pid_t pid;                           /* process that serves the socket */
  int listen_fd;
  int wake[2];                         /* control_close -> thread */
  bool running;
  pthread_t thread;

  struct engine *e;
  struct tierset *ts;
  uint64_t npages;
  struct drain *drain;                 /* the last removal, NULL if none */

  /* Used by the thread only. */
  struct control_client client[CONTROL_CLIENTS];
  struct ctl_command cmd;
  char why[512];                       /* last error of a library call */
  int64_t next_tick;
  struct control_sample prev[TIERSET_MAX_IDS], cur[TIERSET_MAX_IDS];
} control = { .listen_fd = -1, .wake = { -1, -1 } };

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
      pipe2 (control.wake, O_CLOEXEC) == -1) {
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
  free (control.path);
  control.path = NULL;
  return -1;
}

/* Disconnect a client, first trying to send it what replies it has
 * pending and one error line (or none).
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

/* Write the status line "error MESSAGE", with the message made one line
 * of printable characters.
 */
static void
control_error (FILE *out, const char *message)
{
  const char *p;

  fputs ("error ", out);
  for (p = *message ? message : "failed"; *p; p++)
    fputc ((unsigned char) *p < ' ' || *p == 0x7f ? '?' : *p, out);
  fputc ('\n', out);
}

/* Write key=value with the value escaped. */
static void
control_string (FILE *out, const char *key, const char *value)
{
  char escaped[3 * CTL_LINE_MAX];

  fprintf (out, " %s=%s", key, ctl_escape (value, escaped, sizeof escaped));
}

/* The "drain" data line of the last removal, if there is one. */
static void
control_drain_line (FILE *out)
{
  struct drain_status st;

  if (control.drain == NULL)
    return;
  drain_status (control.drain, &st);
  fprintf (out, "drain id=%u state=%s total=%" PRIu64 " remaining=%" PRIu64
           " moved=%" PRIu64 " lost=%" PRIu64, st.id,
           drain_state_name (st.state), st.total, st.remaining, st.moved,
           st.lost);
  if (st.state == DRAIN_FAILED)
    control_string (out, "error", st.error);
  fputc ('\n', out);
}

/* list: a line per backend, the totals, the last removal. */
static void
control_list (FILE *out)
{
  struct tier_stats st, sum = { 0 };
  unsigned i, n = 0;

  for (i = 0; i < tierset_count (control.ts); i++) {
    if (!tierset_stats (control.ts, i, &st))
      continue;
    fprintf (out, "backend id=%u", st.id);
    control_string (out, "target", st.target);
    fprintf (out, " kind=%s priority=%d state=%s health=%s capacity=%" PRIu64
             " used=%" PRIu64 " free=%" PRIu64 " bad=%" PRIu64
             " reads=%" PRIu64 " writes=%" PRIu64 " errors=%" PRIu64 "\n",
             st.kind, st.priority, tier_state_name (st.state),
             st.health == BACKEND_UP ? "up"
             : st.health == BACKEND_DOWN ? "down" : "dead",
             st.capacity, st.used, st.free, st.bad,
             st.reads, st.writes, st.errors);
    n++;
    sum.capacity += st.capacity;
    sum.used += st.used;
    sum.free += st.free;
    sum.bad += st.bad;
    sum.reads += st.reads;
    sum.writes += st.writes;
    sum.errors += st.errors;
  }
  fprintf (out, "total backends=%u pages=%" PRIu64 " spare=%" PRIu64
           " capacity=%" PRIu64 " used=%" PRIu64 " free=%" PRIu64
           " bad=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
           " errors=%" PRIu64 "\n", n, control.npages,
           engine_spare (control.e), sum.capacity, sum.used, sum.free,
           sum.bad, sum.reads, sum.writes, sum.errors);
  control_drain_line (out);
  fprintf (out, "ok page_size=%" PRIu32 "\n", PAGE_SIZE);
}

/* Take a sample of every backend's counters, keeping the one before. */
static void
control_sample (int64_t now)
{
  struct tier_stats st;
  unsigned i;

  for (i = 0; i < tierset_count (control.ts); i++) {
    if (!tierset_stats (control.ts, i, &st))
      continue;
    control.prev[i] = control.cur[i];
    control.cur[i] = (struct control_sample) {
      .ms = now, .reads = st.reads, .writes = st.writes,
      .read_slots = st.read_slots, .write_slots = st.write_slots,
    };
  }
}

/* The counters and rates of one backend ("backend") or of all
 * ("total", id == UINT_MAX) over the last sampling interval.
 */
static void
control_stats_line (FILE *out, const char *record, unsigned id,
                    const struct tier_stats *st,
                    const struct control_sample *d, double seconds)
{
  fputs (record, out);
  if (id != UINT_MAX) {
    fprintf (out, " id=%u", id);
    control_string (out, "target", st->target);
  }
  fprintf (out, " reads=%" PRIu64 " writes=%" PRIu64 " errors=%" PRIu64
           " read_bytes=%" PRIu64 " write_bytes=%" PRIu64
           " reads_per_s=%.1f writes_per_s=%.1f read_bytes_per_s=%.0f"
           " write_bytes_per_s=%.0f\n", st->reads, st->writes, st->errors,
           st->read_slots * PAGE_SIZE, st->write_slots * PAGE_SIZE,
           d->reads / seconds, d->writes / seconds,
           d->read_slots * PAGE_SIZE / seconds,
           d->write_slots * PAGE_SIZE / seconds);
}

/* stats: I/O counters and rates per backend, and their totals. */
static void
control_stats (FILE *out)
{
  struct tier_stats st, sum = { 0 };
  struct control_sample total = { 0 };
  double seconds = CONTROL_TICK_MS / 1000.0;
  unsigned i;

  for (i = 0; i < tierset_count (control.ts); i++) {
    const struct control_sample *a = &control.prev[i], *b = &control.cur[i];
    struct control_sample d = { 0 };

    if (!tierset_stats (control.ts, i, &st))
      continue;
    /* Rates need two samples: zero for a backend just added. */
    if (a->ms > 0) {
      d = (struct control_sample) {
        .reads = b->reads - a->reads, .writes = b->writes - a->writes,
        .read_slots = b->read_slots - a->read_slots,
        .write_slots = b->write_slots - a->write_slots,
      };
      seconds = (b->ms - a->ms) / 1000.0;
    }
    control_stats_line (out, "backend", i, &st, &d, seconds);
    sum.reads += st.reads;
    sum.writes += st.writes;
    sum.errors += st.errors;
    sum.read_slots += st.read_slots;
    sum.write_slots += st.write_slots;
    total.reads += d.reads;
    total.writes += d.writes;
    total.read_slots += d.read_slots;
    total.write_slots += d.write_slots;
  }
  control_stats_line (out, "total", UINT_MAX, &sum, &total, seconds);
  fprintf (out, "ok interval=%.3f\n", seconds);
}

/* add: open a backend and put it in service. */
static void
control_add (FILE *out, const struct ctl_command *cmd)
{
  bool remote = backend_is_uri (cmd->target);
  struct tier_spec spec = {
    .target = cmd->target,
    .priority = cmd->priority,
    .capacity = cmd->capacity,
    .force = cmd->force,
    .connections = cmd->connections ? : TIER_CONNECTIONS_DEFAULT,
    .timeout_ms = (cmd->timeout ? : TIER_TIMEOUT_DEFAULT) * 1000,
    .grace_ms = (cmd->grace ? : TIER_GRACE_DEFAULT) * 1000,
  };
  int id;

  if (remote && cmd->capacity) {
    control_error (out, "capacity= applies to local files only; the size "
                   "of a remote export is probed");
    return;
  }
  if (remote && cmd->has_force) {
    control_error (out, "force= applies to local files and block devices "
                   "only");
    return;
  }
  if (!remote && (cmd->connections || cmd->timeout || cmd->grace)) {
    control_error (out, "connections=, timeout= and grace= apply to remote "
                   "backends (NBD URIs) only");
    return;
  }
  id = tierset_open (control.ts, &spec);
  if (id == -1) {
    control_error (out, control.why);
    return;
  }
  nbdkit_debug ("control: added backend %d %s priority %d",
                id, cmd->target, cmd->priority);
  fprintf (out, "ok id=%d\n", id);
}

/* priority: give a backend another priority. */
static void
control_priority (FILE *out, const struct ctl_command *cmd)
{
  if (tierset_set_priority (control.ts, cmd->id, cmd->priority) == -1) {
    control_error (out, control.why);
    return;
  }
  nbdkit_debug ("control: backend %u now has priority %d",
                cmd->id, cmd->priority);
  fprintf (out, "ok id=%u priority=%d\n", cmd->id, cmd->priority);
}

/* remove: start draining a backend, one at a time. */
static void
control_remove (FILE *out, const struct ctl_command *cmd)
{
  struct drain_status ds;
  struct tier_stats st;
  struct drain *d;
  uint64_t left;

  if (control.drain) {
    drain_status (control.drain, &ds);
    if (ds.state == DRAIN_RUNNING) {
      snprintf (control.why, sizeof control.why, "backend %u is being "
                "removed; one removal at a time", ds.id);
      control_error (out, control.why);
      return;
    }
  }
  if (!tierset_stats (control.ts, cmd->id, &st)) {
    snprintf (control.why, sizeof control.why, "no backend %u", cmd->id);
    control_error (out, control.why);
    return;
  }
  left = tierset_capacity (control.ts) - st.capacity;
  d = drain_start (control.e, control.ts, cmd->id);
  if (d == NULL) {
    control_error (out, control.why);
    return;
  }
  drain_destroy (control.drain);
  control.drain = d;
  drain_status (d, &ds);
  nbdkit_debug ("control: removing backend %u: %" PRIu64 " pages to move",
                cmd->id, ds.total);

  /* The device keeps its size: say so if the rest cannot hold all of it. */
  if (left < control.npages + engine_spare (control.e)) {
    snprintf (control.why, sizeof control.why, "the other backends hold "
              "%" PRIu64 " slots, fewer than the %" PRIu64 " pages of the "
              "device and %" PRIu64 " spare: writes fail with ENOSPC if it "
              "fills up", left, control.npages, engine_spare (control.e));
    fputs ("warning", out);
    control_string (out, "text", control.why);
    fputc ('\n', out);
  }
  fprintf (out, "ok id=%u total=%" PRIu64 "\n", cmd->id, ds.total);
}

/* help: the commands, for a human at a raw connection. */
static void
control_help (FILE *out)
{
  fputs ("help list: backends, totals and the last removal\n"
         "help stats: I/O counters and rates\n"
         "help add TARGET [priority=N] [capacity=SIZE] [connections=N] "
         "[timeout=SECONDS] [grace=SECONDS]\n"
         "help priority ID N: change the priority of backend ID\n"
         "help remove ID: move the pages of backend ID away, then close it\n"
         "help drain: where the last removal is\n"
         "ok\n", out);
}

/* Run one command line and queue its reply; false if the client was
 * dropped.
 */
static bool
control_command (struct control_client *c, const char *line, size_t len)
{
  struct ctl_command *cmd = &control.cmd;
  char err[256], *reply = NULL, *queue;
  size_t size = 0;
  FILE *out = open_memstream (&reply, &size);

  if (out == NULL) {
    control_drop (c, "out of memory");
    return false;
  }
  control.why[0] = '\0';
  if (ctl_parse (line, len, cmd, err, sizeof err) == -1)
    control_error (out, err);
  else {
    switch (cmd->verb) {
    case CTL_LIST: control_list (out); break;
    case CTL_STATS: control_stats (out); break;
    case CTL_ADD: control_add (out, cmd); break;
    case CTL_PRIORITY: control_priority (out, cmd); break;
    case CTL_REMOVE: control_remove (out, cmd); break;
    case CTL_DRAIN: control_drain_line (out); fputs ("ok\n", out); break;
    case CTL_HELP: control_help (out); break;
    }
  }
  fclose (out);
  queue = realloc (c->out, c->out_len + size);
  if (queue == NULL) {
    free (reply);
    control_drop (c, "out of memory");
    return false;
  }
  memcpy (queue + c->out_len, reply, size);
  c->out = queue;
  c->out_len += size;
  free (reply);
  return true;
}

/* Run the client's complete lines while its pending replies stay below
 * CONTROL_OUT_MAX, and send what it takes of them.
 */
static void
control_serve (struct control_client *c, int64_t now)
{
  char *nl;

  while (c->out_len < CONTROL_OUT_MAX &&
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
    if (control.client[i].fd == -1)
      break;
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
      (cred.uid != 0 && cred.uid != geteuid ())) {
    control_drop (&(struct control_client) { .fd = fd }, "not allowed");
    return;
  }
  if (i == CONTROL_CLIENTS) {
    control_drop (&(struct control_client) { .fd = fd },
                  "too many clients; try again later");
    return;
  }
  control.client[i] = (struct control_client) {
    .fd = fd, .deadline = now + CONTROL_IDLE_MS,
  };
}

/* The thread: serve the clients until control_close. */
static void *
control_thread (void *arg)
{
  struct pollfd pfd[2 + CONTROL_CLIENTS];
  unsigned who[CONTROL_CLIENTS];

  log_capture (control.why, sizeof control.why);
  for (;;) {
    int64_t now = control_now (), wait;
    unsigned i, n = 2;

    if (now >= control.next_tick) {
      control_sample (now);
      control.next_tick = now + CONTROL_TICK_MS;
    }
    wait = control.next_tick - now;
    pfd[0] = (struct pollfd) { .fd = control.wake[0], .events = POLLIN };
    pfd[1] = (struct pollfd) { .fd = control.listen_fd, .events = POLLIN };
    for (i = 0; i < CONTROL_CLIENTS; i++) {
      struct control_client *c = &control.client[i];

      if (c->fd == -1)
        continue;
      if (c->deadline <= now) {
        control_drop (c, "no command for a while; closing");
        continue;
      }
      if (c->deadline - now < wait)
        wait = c->deadline - now;
      who[n - 2] = i;
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
    for (i = 2; i < n; i++) {
      struct control_client *c = &control.client[who[i - 2]];

      if (pfd[i].revents == 0)
        continue;
      if (c->out_len == 0)
        control_read (c, now);
      else if (control_flush (c) && c->out_len == 0)
        control_serve (c, now);
    }
    if (pfd[1].revents & POLLIN)
      control_accept (now);
  }
  log_capture (NULL, 0);
  return NULL;
}

int
control_start (struct engine *e, struct tierset *ts, uint64_t npages)
{
  unsigned i;
  int err;

  if (!control.open)
    return 0;
  control.e = e;
  control.ts = ts;
  control.npages = npages;
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
    for (i = 0; i < CONTROL_CLIENTS; i++)
      if (control.client[i].fd >= 0)
        control_drop (&control.client[i], NULL);
  }
  drain_destroy (control.drain);
  control.drain = NULL;
  close (control.listen_fd);
  close (control.wake[0]);
  close (control.wake[1]);
  /* Only the process serving the socket removes it, not one forked from
   * it that happens to exit through here.
   */
  if (getpid () == control.pid)
    unlink (control.path);
  free (control.path);
  control.path = NULL;
}
