/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: control the tiers of a running swaptier plugin, as
 * swapctl(8) does the swap devices of a BSD kernel.
 *
 * It connects to the plugin's control socket (control=PATH), sends one
 * command line and formats the reply (lib/ctlproto.h has the protocol):
 * aligned columns with human-readable sizes, raw numbers, or JSON.  A
 * removal is followed with a progress bar on a terminal.
 *
 * This file holds the options, the connection and the commands: what
 * each one asks and which records of the reply it shows.  The human
 * views of list and stats are in sctl-views.c; the printing itself
 * (JSON, the text table, sizes and rates) and the reading of fields in
 * sctl-output.c.
 */

#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "sctl-doctor.h"
#include "sctl-monitor.h"
#include "sctl-output.h"
#include "sctl-views.h"

#define SCTL_DEFAULT_SOCKET "/run/swaptier/control.sock"
#define SCTL_REPLY_TIMEOUT 120         /* seconds: add may connect afar */
#define SCTL_POLL_MS 200               /* progress polling period */
#define SCTL_BAR_WIDTH 30
#define SCTL_STOP_WAIT 120             /* seconds for the server to exit */
#define SCTL_STOP_CLIENTS 30           /* seconds for its clients to go */

static const char *sctl_socket;
static bool sctl_json, sctl_wait, sctl_force;

/* A connection to the control socket, a stream each way. */
struct sctl_conn {
  FILE *in, *out;
};

/* Print the usage summary on fp. */
static void
sctl_usage (FILE *fp)
{
  fprintf (fp,
"Usage: swaptierctl [OPTIONS] COMMAND [ARGUMENTS]\n"
"Control the backends of a running swaptier plugin (nbdkit control=PATH).\n"
"\n"
"Commands:\n"
"  list                         one row per backend, and the totals\n"
"  stats                        I/O counters and rates\n"
"  add TARGET [priority=N] [capacity=SIZE] [force=true]\n"
"      [connections=N] [timeout=SECONDS] [grace=SECONDS] [domain=NAME]\n"
"      [encrypt=off]\n"
"                               put a new backend in service\n"
"  priority ID N                change the priority of backend ID\n"
"  remove ID [rate=SIZE]        move the pages of backend ID elsewhere\n"
"                               (at most SIZE a second), then close it\n"
"  drain                        where the last removal is\n"
"  cancel                       stop the removal under way\n"
"  revive ID                    put failed backend ID back in service\n"
"  check                        one line and the exit code of a Nagios\n"
"                               check: 0 OK, 1 degraded, 2 pages lost\n"
"  metrics                      the counters as OpenMetrics text\n"
"  doctor                       what swapping on this host needs\n"
"  stop                         stop the server and wait until it is gone;\n"
"                               refused while an NBD client is connected\n"
"\n"
"Options:\n"
"  -s, --socket=PATH  the control socket (default: $SWAPTIER_SOCKET,\n"
"                     else " SCTL_DEFAULT_SOCKET ")\n"
"  -j, --json         list, stats, drain: print JSON (sizes in bytes)\n"
"  -b, --bytes        list: sizes in bytes, not human-readable\n"
"  -w, --wait         remove, drain: wait until the removal ends\n"
"  -f, --force        remove: even if the others cannot hold the device\n"
"  -h, --help         print this help\n"
"  -V, --version      print the version\n");
}

/* Connect to the control socket: 0, else an exit code after a message
 * (SCTL_EXIT_NO_SERVER if no server listens there).
 */
static int
sctl_connect (struct sctl_conn *c)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = SCTL_REPLY_TIMEOUT };
  int fd, fd2;

  if (strlen (sctl_socket) >= sizeof addr.sun_path) {
    sctl_message ("%s: the socket path is too long", sctl_socket);
    return SCTL_EXIT_FAILED;
  }
  strcpy (addr.sun_path, sctl_socket);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 ||
      connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    int err = errno;

    sctl_message ("%s: %m (is nbdkit swaptier running with control=%s?)",
                  sctl_socket, sctl_socket);
    if (fd >= 0)
      close (fd);
    return fd >= 0 && (err == ENOENT || err == ECONNREFUSED)
      ? SCTL_EXIT_NO_SERVER : SCTL_EXIT_FAILED;
  }
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  fd2 = dup (fd);
  c->in = fdopen (fd, "r");
  c->out = fd2 >= 0 ? fdopen (fd2, "w") : NULL;
  if (c->in == NULL || c->out == NULL) {
    sctl_message ("%m");
    exit (SCTL_EXIT_FAILED);
  }
  return 0;
}

/* Free a reply's lines and empty it. */
static void
sctl_reply_free (struct sctl_reply *r)
{
  size_t i;

  for (i = 0; i < r->n; i++)
    free (r->line[i]);
  free (r->line);
  free (r->status);
  *r = (struct sctl_reply) { 0 };
}

/* Send the command made of verb and the n words of arg, each escaped,
 * and read the whole reply into *r.  Returns 0 on "ok", 1 on "error"
 * (after printing its message), -1 after a message if the exchange
 * failed.
 */
static int
sctl_request (struct sctl_conn *c, const char *verb, char **arg, int n,
              struct sctl_reply *r)
{
  char escaped[3 * CTL_LINE_MAX];
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  bool sent;
  int i, send_errno;

  sctl_reply_free (r);
  fputs (verb, c->out);
  for (i = 0; i < n; i++)
    fprintf (c->out, " %s", ctl_escape (arg[i], escaped, sizeof escaped));
  fputc ('\n', c->out);
  /* A server that refused this client said why before it closed: that
   * is read below, and a failed send reported only without it.
   */
  sent = fflush (c->out) != EOF;
  send_errno = errno;
  while ((len = getline (&line, &cap, c->in)) > 0) {
    if (line[len - 1] == '\n')
      line[--len] = '\0';
    if (strncmp (line, "ok", 2) == 0 &&
        (line[2] == '\0' || line[2] == ' ')) {
      r->status = line;
      return 0;
    }
    if (strncmp (line, "error ", 6) == 0) {
      sctl_message ("%s", line + 6);
      r->status = line;
      return 1;
    }
    r->line = sctl_check (realloc (r->line, (r->n + 1) * sizeof *r->line));
    r->line[r->n++] = sctl_strdup (line);
  }
  free (line);
  if (!sent) {
    errno = send_errno;
    sctl_message ("%s: sending the command: %m", sctl_socket);
    return -1;
  }
  /* An NBD server (nbdkit -U) drops a client that is not one. */
  if (ferror (c->in) && errno == EAGAIN)
    sctl_message ("%s: no reply in %d seconds", sctl_socket,
                  SCTL_REPLY_TIMEOUT);
  else
    sctl_message ("%s: %s (is it the socket of the plugin's control=?)",
                  sctl_socket, ferror (c->in) ? strerror (errno)
                  : "the server closed the connection");
  return -1;
}

/* "at R pages/s, about M:SS left" of a running drain record (rate: its
 * pages moved over the last second), allocated; "" before it has a rate.
 */
static char *
sctl_drain_pace (const char *d)
{
  uint64_t rate = sctl_number (d, "rate");
  uint64_t remaining = sctl_number (d, "remaining");
  char *s;

  if (rate == 0)
    return sctl_strdup ("");
  if (asprintf (&s, ", %" PRIu64 " pages/s, about %" PRIu64 ":%02" PRIu64
                " left", rate, remaining / rate / 60,
                remaining / rate % 60) == -1)
    s = sctl_check (NULL);
  return s;
}

/* Show the progress of a removal on a terminal: a bar redrawn in place. */
static void
sctl_bar (unsigned id, uint64_t done, uint64_t total, const char *pace)
{
  unsigned percent = total ? done * 100 / total : 100;
  unsigned fill = total ? done * SCTL_BAR_WIDTH / total : SCTL_BAR_WIDTH;
  char bar[SCTL_BAR_WIDTH + 1];

  memset (bar, '#', fill);
  memset (bar + fill, '-', SCTL_BAR_WIDTH - fill);
  bar[SCTL_BAR_WIDTH] = '\0';
  printf ("\rremoving backend %u [%s] %3u%% %" PRIu64 "/%" PRIu64 " pages%s"
          "\033[K", id, bar, percent, done, total, pace);
  fflush (stdout);
}

/* Follow the removal of backend id until it ends, with a bar on a
 * terminal or a line per second otherwise.  Returns the exit code: 0
 * only if the backend was removed and no page was lost.
 */
static int
sctl_follow (struct sctl_conn *c, unsigned id)
{
  bool tty = isatty (STDOUT_FILENO);
  struct sctl_reply r = { 0 };
  uint64_t last_done = UINT64_MAX;
  time_t last_line = 0;
  int code = SCTL_EXIT_FAILED;

  for (;;) {
    const char *d;
    uint64_t total, remaining, done;
    char *state, *pace;

    if (sctl_request (c, "drain", NULL, 0, &r) != 0)
      break;
    d = sctl_record (&r, "drain");
    if (d == NULL || sctl_number (d, "id") != id) {
      sctl_message ("backend %u: no removal of it is known", id);
      break;
    }
    /* Progress: the pages no longer on it, whatever became of them. */
    total = sctl_number (d, "total");
    remaining = sctl_number (d, "remaining");
    done = remaining < total ? total - remaining : 0;
    state = sctl_value (d, "state");
    if (strcmp (state, "running") == 0) {
      pace = sctl_drain_pace (d);
      if (tty)
        sctl_bar (id, done, total, pace);
      else if (done != last_done && time (NULL) != last_line) {
        printf ("removing backend %u: %" PRIu64 " of %" PRIu64 " pages off "
                "it%s\n", id, done, total, pace);
        fflush (stdout);
        last_line = time (NULL);
      }
      free (pace);
      last_done = done;
      free (state);
      nanosleep (&(struct timespec) { .tv_nsec = SCTL_POLL_MS * 1000000L },
                 NULL);
      continue;
    }
    if (tty)
      putchar ('\n');
    if (strcmp (state, "done") == 0) {
      printf ("backend %u removed: ", id);
      sctl_drain_counts (d);
      putchar ('\n');
      code = 0;
      if (sctl_number (d, "lost") > 0) {
        sctl_message ("backend %u: %" PRIu64 " pages were lost (every copy "
                      "failed to read)", id, sctl_number (d, "lost"));
        code = SCTL_EXIT_FAILED;
      }
    }
    else {
      char *error = sctl_value (d, "error");

      sctl_message ("removing backend %u %s%s%s", id, state,
                    error[0] ? ": " : "", error);
      free (error);
    }
    free (state);
    break;
  }
  sctl_reply_free (&r);
  return code;
}

/* Print the "warning" records of a reply on stderr. */
static void
sctl_warnings (const struct sctl_reply *r)
{
  size_t i;

  for (i = 0; i < r->n; i++) {
    if (sctl_is (r->line[i], "warning")) {
      char *text = sctl_value (r->line[i], "text");

      sctl_message ("warning: %s", text);
      free (text);
    }
  }
}

/* Print the data lines of a reply as they are ("help" and commands this
 * program does not know), without the record word of help lines.
 */
static void
sctl_raw (const struct sctl_reply *r)
{
  size_t i;

  for (i = 0; i < r->n; i++)
    puts (sctl_is (r->line[i], "help") ? r->line[i] + 5 : r->line[i]);
}

/* doctor, with n arguments (none are taken): 0 if it found no
 * problem, else 1.
 */
static int
sctl_run_doctor (struct sctl_conn *c, int n)
{
  struct sctl_reply list = { 0 };
  int code;

  if (n > 0) {
    sctl_message ("doctor takes no arguments");
    return SCTL_EXIT_USAGE;
  }
  /* The plugin answers, and says which process serves. */
  if (sctl_request (c, "list", NULL, 0, &list) != 0)
    code = SCTL_EXIT_FAILED;
  else if (sctl_number (list.status, "pid") == 0) {
    sctl_message ("%s: the plugin does not say its pid", sctl_socket);
    code = SCTL_EXIT_FAILED;
  }
  else
    code = sctl_doctor (sctl_number (list.status, "pid")) ? SCTL_EXIT_FAILED
           : 0;
  sctl_reply_free (&list);
  return code;
}

/* check or metrics (verb), with n arguments (none are taken): the
 * exit code.
 */
static int
sctl_monitor (struct sctl_conn *c, const char *verb, int n)
{
  struct sctl_reply list = { 0 }, stats = { 0 };
  bool check = strcmp (verb, "check") == 0;
  int code;

  if (n > 0) {
    if (check) {
      printf ("SWAPTIER UNKNOWN: check takes no arguments\n");
      return SCTL_CHECK_UNKNOWN;
    }
    sctl_message ("%s takes no arguments", verb);
    return SCTL_EXIT_USAGE;
  }
  if (sctl_request (c, "list", NULL, 0, &list) != 0 ||
      (!check && sctl_request (c, "stats", NULL, 0, &stats) != 0)) {
    if (check)
      printf ("SWAPTIER UNKNOWN: no answer from %s\n", sctl_socket);
    code = check ? SCTL_CHECK_UNKNOWN : SCTL_EXIT_FAILED;
  }
  else if (check)
    code = sctl_check_print (&list);
  else {
    sctl_metrics_print (&list, &stats);
    code = 0;
  }
  sctl_reply_free (&list);
  sctl_reply_free (&stats);
  return code;
}

/* Whether the command verb with its n arguments parses as the plugin
 * will parse it; if not, says why.
 */
static bool
sctl_valid (const char *verb, char **arg, int n)
{
  char line[CTL_LINE_MAX], escaped[3 * CTL_LINE_MAX], err[256];
  struct ctl_command cmd;
  size_t len;
  int i;

  len = snprintf (line, sizeof line, "%s", verb);
  for (i = 0; i < n && len < sizeof line; i++)
    len += snprintf (line + len, sizeof line - len, " %s",
                     ctl_escape (arg[i], escaped, sizeof escaped));
  if (len >= sizeof line) {
    sctl_message ("the command is longer than %d bytes", CTL_LINE_MAX - 1);
    return false;
  }
  if (ctl_parse (line, len, &cmd, err, sizeof err) == -1) {
    sctl_message ("%s", err);
    return false;
  }
  return true;
}

/* Whether process pid is gone: no such process, or a zombie (exited,
 * not yet reaped by its parent).  A process of another user, which
 * kill cannot probe, is taken to be gone once the control socket no
 * longer accepts.
 */
static bool
sctl_process_gone (pid_t pid)
{
  char path[64], state = 0;
  FILE *fp;

  if (kill (pid, 0) == -1 && errno == ESRCH)
    return true;
  if (kill (pid, 0) == -1 && errno == EPERM) {
    int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    bool gone;

    strncpy (addr.sun_path, sctl_socket, sizeof addr.sun_path - 1);
    gone = fd >= 0 && connect (fd, (struct sockaddr *) &addr,
                               sizeof addr) == -1;
    if (fd >= 0)
      close (fd);
    return gone;
  }
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  fp = fopen (path, "r");
  if (fp == NULL)
    return true;
  if (fscanf (fp, "%*d (%*[^)]) %c", &state) != 1)
    state = 0;
  fclose (fp);
  return state == 'Z' || state == 'X';
}

/* Before stop: wait at most SCTL_STOP_CLIENTS seconds for the NBD
 * clients to be gone (list's status says clients=), since nbdkit counts
 * a client out only once its requests in flight are done, a moment
 * after it disconnected (nbd-client -d just before).  The stop that
 * follows is refused if one is still there.
 */
static void
sctl_stop_wait_clients (struct sctl_conn *c)
{
  struct sctl_reply r = { 0 };
  int i;

  for (i = 0; i < SCTL_STOP_CLIENTS * 10; i++) {
    if (sctl_request (c, "list", NULL, 0, &r) != 0 ||
        sctl_number (r.status, "clients") == 0)
      break;
    usleep (100 * 1000);
  }
  sctl_reply_free (&r);
}

/* After stop was accepted: wait until the server's process (pid, from
 * the reply) has exited, at most SCTL_STOP_WAIT seconds.
 */
static int
sctl_stop_wait (pid_t pid)
{
  int i;

  for (i = 0; i < SCTL_STOP_WAIT * 10; i++) {
    if (sctl_process_gone (pid)) {
      printf ("swaptier server stopped (pid %d)\n", (int) pid);
      return 0;
    }
    usleep (100 * 1000);
  }
  sctl_message ("the server (pid %d) still runs %d seconds after it was "
                "asked to stop", (int) pid, SCTL_STOP_WAIT);
  return SCTL_EXIT_FAILED;
}

/* The target of add as the plugin should see it: a relative path made
 * absolute from this process's directory (the plugin's is another);
 * paths, and URIs (with "://"), as they are.  Allocated.
 */
static char *
sctl_add_target (const char *target)
{
  char *cwd, *abs;

  if (target[0] == '/' || strstr (target, "://") || target[0] == '\0')
    return sctl_strdup (target);
  cwd = getcwd (NULL, 0);
  if (cwd == NULL) {
    sctl_message ("%s: the current directory: %m", target);
    return NULL;
  }
  if (asprintf (&abs, "%s/%s", cwd, target) == -1)
    abs = sctl_check (NULL);
  free (cwd);
  return abs;
}

/* Run the command verb with its n arguments; returns the exit code. */
static int
sctl_run (struct sctl_conn *c, const char *verb, char **arg, int n)
{
  struct sctl_reply r = { 0 };
  char *target = NULL, *given = NULL;
  int code = 0;
  const char *d;

  /* check and metrics are made of list and stats. */
  if (strcmp (verb, "check") == 0 || strcmp (verb, "metrics") == 0)
    return sctl_monitor (c, verb, n);
  if (strcmp (verb, "doctor") == 0)
    return sctl_run_doctor (c, n);
  /* A usage error is found here, so that it exits with its own code. */
  if (!sctl_valid (verb, arg, n))
    return SCTL_EXIT_USAGE;
  if (strcmp (verb, "add") == 0) {
    if ((target = sctl_add_target (arg[0])) == NULL)
      return SCTL_EXIT_FAILED;
    given = arg[0];
    arg[0] = target;
  }
  if (strcmp (verb, "stop") == 0)
    sctl_stop_wait_clients (c);
  code = sctl_request (c, verb, arg, n, &r);
  if (given)
    arg[0] = given;
  if (code != 0) {
    sctl_reply_free (&r);
    free (target);
    return SCTL_EXIT_FAILED;
  }
  if (strcmp (verb, "list") == 0 && sctl_json)
    sctl_json_reply (&r, sctl_backend_fields, sctl_total_fields, true);
  else if (strcmp (verb, "list") == 0)
    sctl_list (&r);
  else if (strcmp (verb, "stats") == 0 && sctl_json)
    sctl_json_reply (&r, sctl_stats_fields, sctl_stats_fields, false);
  else if (strcmp (verb, "stats") == 0)
    sctl_stats (&r);
  else if (strcmp (verb, "add") == 0)
    printf ("backend %" PRIu64 " added: %s\n", sctl_number (r.status, "id"),
            target);
  else if (strcmp (verb, "priority") == 0) {
    char *priority = sctl_value (r.status, "priority");

    printf ("backend %" PRIu64 ": priority %s\n",
            sctl_number (r.status, "id"), priority);
    free (priority);
  }
  else if (strcmp (verb, "remove") == 0) {
    unsigned id = sctl_number (r.status, "id");

    sctl_warnings (&r);
    if (sctl_wait || isatty (STDOUT_FILENO))
      code = sctl_follow (c, id);
    else
      printf ("removing backend %u: %" PRIu64 " pages to move (follow with "
              "swaptierctl drain --wait)\n", id,
              sctl_number (r.status, "total"));
  }
  else if (strcmp (verb, "stop") == 0)
    code = sctl_stop_wait (sctl_number (r.status, "pid"));
  else if (strcmp (verb, "revive") == 0)
    printf ("backend %" PRIu64 " revived: new pages go there again\n",
            sctl_number (r.status, "id"));
  else if (strcmp (verb, "cancel") == 0)
    printf ("removal of backend %" PRIu64 " cancelled: it is back in "
            "service\n", sctl_number (r.status, "id"));
  else if (strcmp (verb, "drain") == 0) {
    d = sctl_record (&r, "drain");
    if (sctl_json) {
      /* No removal yet: an empty object, like a record without fields. */
      if (d)
        sctl_json_record (d, sctl_drain_fields, sctl_page_size (&r));
      else
        fputs ("{}", stdout);
      putchar ('\n');
    }
    else if (d == NULL)
      puts ("no backend has been removed");
    else if (sctl_wait && strstr (d, " state=running"))
      code = sctl_follow (c, sctl_number (d, "id"));
    else {
      sctl_drain_sentence (d);
      /* Waiting for one that ended: whether it removed the backend,
       * losing nothing.
       */
      if (sctl_wait && (!strstr (d, " state=done") ||
                        sctl_number (d, "lost") > 0))
        code = SCTL_EXIT_FAILED;
    }
  }
  else {
    sctl_raw (&r);
    /* The commands that swaptierctl makes of the others. */
    if (strcmp (verb, "help") == 0)
      puts ("check: one line and a Nagios exit code (swaptierctl)\n"
            "metrics: the counters as OpenMetrics text (swaptierctl)");
  }
  sctl_reply_free (&r);
  free (target);
  return code;
}

int
main (int argc, char *argv[])
{
  static const struct option long_options[] = {
    { "socket", required_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "bytes", no_argument, NULL, 'b' },
    { "wait", no_argument, NULL, 'w' },
    { "force", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL },
  };
  struct sctl_conn conn;
  char **arg;
  int c, i, n = 0, code;

  /* Options stop at the command ("+"): a priority may be negative. */
  while ((c = getopt_long (argc, argv, "+s:jbwfhV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 's': sctl_socket = optarg; break;
    case 'j': sctl_json = true; break;
    case 'b': sctl_bytes = true; break;
    case 'w': sctl_wait = true; break;
    case 'f': sctl_force = true; break;
    case 'h': sctl_usage (stdout); return 0;
    case 'V': printf ("swaptierctl %s\n", PACKAGE_VERSION); return 0;
    default: sctl_usage (stderr); return SCTL_EXIT_USAGE;
    }
  }
  if (optind == argc) {
    sctl_usage (stderr);
    return SCTL_EXIT_USAGE;
  }
  /* The same flags after the command, so "remove 2 --wait" works too. */
  arg = sctl_check (calloc (argc, sizeof *arg));
  for (i = optind + 1; i < argc; i++) {
    const char *a = argv[i];

    if (strcmp (a, "-j") == 0 || strcmp (a, "--json") == 0)
      sctl_json = true;
    else if (strcmp (a, "-b") == 0 || strcmp (a, "--bytes") == 0)
      sctl_bytes = true;
    else if (strcmp (a, "-w") == 0 || strcmp (a, "--wait") == 0)
      sctl_wait = true;
    else if (strcmp (a, "-f") == 0 || strcmp (a, "--force") == 0)
      sctl_force = true;
    else if (a[0] == '-' && (a[1] < '0' || a[1] > '9')) {
      sctl_message ("unknown option %s", a);
      sctl_usage (stderr);
      free (arg);
      return SCTL_EXIT_USAGE;
    }
    else
      arg[n++] = argv[i];
  }
  /* --force is remove's force=true. */
  if (sctl_force) {
    if (strcmp (argv[optind], "remove") != 0) {
      sctl_message ("--force applies to remove only");
      free (arg);
      return SCTL_EXIT_USAGE;
    }
    arg[n++] = (char *) "force=true";
  }
  if (sctl_socket == NULL)
    sctl_socket = getenv ("SWAPTIER_SOCKET");
  if (sctl_socket == NULL || *sctl_socket == '\0')
    sctl_socket = SCTL_DEFAULT_SOCKET;

  /* A server gone mid-command is reported, not a silent death. */
  signal (SIGPIPE, SIG_IGN);
  if ((code = sctl_connect (&conn)) != 0) {
    if (strcmp (argv[optind], "check") == 0) {
      printf ("SWAPTIER UNKNOWN: cannot connect to %s\n", sctl_socket);
      code = SCTL_CHECK_UNKNOWN;
    }
    /* Nothing to stop: a manual stop came first, or the server died. */
    else if (strcmp (argv[optind], "stop") == 0 &&
             code == SCTL_EXIT_NO_SERVER) {
      printf ("no swaptier server on %s: nothing to stop\n", sctl_socket);
      code = 0;
    }
  }
  else {
    code = sctl_run (&conn, argv[optind], arg, n);
    fclose (conn.in);
    fclose (conn.out);
  }
  free (arg);
  if (fflush (stdout) == EOF) {
    sctl_message ("writing the output: %m");
    code = SCTL_EXIT_FAILED;
  }
  return code;
}
