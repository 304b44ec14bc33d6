/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the commands of the control socket (see control-internal.h).
 *
 * Each command reads the tier set and the engine, or changes them
 * through their own thread-safe calls, and writes its reply: data lines,
 * then one status line (lib/ctlproto.h has the protocol).
 */

#include <config.h>

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "backend.h"
#include "control-internal.h"
#include "options.h"
#include "page.h"

/* Write the status line "error MESSAGE", with the message made one line
 * of printable characters.
 */
void
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
  /* Of the pages that were on it, those not moved, lost nor dropped
   * were rewritten or trimmed by clients meanwhile.
   */
  fprintf (out, "drain id=%u state=%s total=%" PRIu64 " remaining=%" PRIu64
           " moved=%" PRIu64 " lost=%" PRIu64 " dropped=%" PRIu64
           " freed=%" PRIu64 " rate=%" PRIu64 " limit=%" PRIu64
           " elapsed_ms=%" PRIu64, st.id,
           drain_state_name (st.state), st.total, st.remaining, st.moved,
           st.lost, st.dropped,
           st.total > st.remaining + st.moved + st.lost + st.dropped
           ? st.total - st.remaining - st.moved - st.lost - st.dropped : 0,
           st.rate, st.limit, st.elapsed_ms);
  if (st.state == DRAIN_FAILED)
    control_string (out, "error", st.error);
  fputc ('\n', out);
}

/* The "repair" data line, with copies. */
static void
control_repair_line (FILE *out)
{
  struct repair_status st;

  if (control.repair == NULL)
    return;
  repair_status (control.repair, &st);
  fprintf (out, "repair state=%s degraded=%" PRIu64 " recreated=%" PRIu64
           " lost=%" PRIu64 " rate=%" PRIu64 " limit=%" PRIu64 "\n",
           repair_state_name (st.state), st.degraded, st.recreated, st.lost,
           st.rate, st.limit);
}

/* The "demote" data line. */
static void
control_demote_line (FILE *out)
{
  struct demote_status st;

  demote_status (control.demote, &st);
  fprintf (out, "demote state=%s demoted=%" PRIu64 " promoted=%" PRIu64
           " rate=%" PRIu64 " limit=%" PRIu64 " low=%u high=%u\n",
           demote_state_name (st.state), st.demoted, st.promoted, st.rate,
           st.limit, st.low, st.high);
}

/* list: a line per backend, the totals, the last removal, the
 * re-creation of copies and demotion.
 */
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
    control_string (out, "domain", st.domain);
    fprintf (out, " kind=%s priority=%d state=%s health=%s capacity=%" PRIu64
             " used=%" PRIu64 " free=%" PRIu64 " bad=%" PRIu64
             " lost=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
             " errors=%" PRIu64 " demoted=%" PRIu64 " promoted=%" PRIu64
             " rereads=%" PRIu64 " corrupt=%" PRIu64 " encrypted=%s",
             st.kind, st.priority, tier_state_name (st.state),
             st.health == BACKEND_UP ? "up"
             : st.health == BACKEND_DOWN ? "down" : "dead",
             st.capacity, st.used, st.free, st.bad, st.lost,
             st.reads, st.writes, st.errors, st.demoted, st.promoted,
             st.rereads, st.corrupt, st.clear ? "no" : "yes");
    /* Why it failed, once it has. */
    if (st.failure)
      control_string (out, "failure", st.failure);
    fputc ('\n', out);
    n++;
    sum.capacity += st.capacity;
    sum.used += st.used;
    sum.free += st.free;
    sum.bad += st.bad;
    sum.reads += st.reads;
    sum.writes += st.writes;
    sum.errors += st.errors;
    sum.demoted += st.demoted;
    sum.promoted += st.promoted;
    sum.rereads += st.rereads;
    sum.corrupt += st.corrupt;
  }
  /* Lost pages count those of removed backends too. */
  fprintf (out, "total backends=%u pages=%" PRIu64 " spare=%" PRIu64
           " capacity=%" PRIu64 " used=%" PRIu64 " free=%" PRIu64
           " bad=%" PRIu64 " lost=%" PRIu64 " reads=%" PRIu64
           " writes=%" PRIu64 " errors=%" PRIu64 " copies=%u mapped=%" PRIu64
           " degraded=%" PRIu64 " demoted=%" PRIu64 " promoted=%" PRIu64
           " rereads=%" PRIu64 " corrupt=%" PRIu64 "\n", n, control.npages,
           control.spare, sum.capacity, sum.used, sum.free,
           sum.bad, tierset_lost (control.ts), sum.reads, sum.writes,
           sum.errors, engine_copies (control.e), engine_mapped (control.e),
           repair_pending (control.e, control.ts), sum.demoted, sum.promoted,
           sum.rereads, sum.corrupt);
  control_drain_line (out);
  control_repair_line (out);
  control_demote_line (out);
  /* pid: the process that serves (not the one that listened first, which
   * SO_PEERCRED would give, if nbdkit forked since).
   */
  fprintf (out, "ok page_size=%" PRIu32 " pid=%d clients=%u\n", PAGE_SIZE,
           (int) getpid (),
           __atomic_load_n (&control.nbd_clients, __ATOMIC_RELAXED));
}

void
control_sample (int64_t now)
{
  struct tier_stats st;
  unsigned i;

  tierset_tick (control.ts);
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

/* The latency fields of backend id: the percentiles of the last
 * interval (none when no request of that kind ended in it), and the
 * count and sum since the start.
 */
static void
control_latency_fields (FILE *out, unsigned id)
{
  static const char *const kind[2] = { "read", "write" };
  struct latency total[2], window[2];
  unsigned k;

  if (!tierset_latency (control.ts, id, total, window))
    return;
  for (k = 0; k < 2; k++) {
    if (latency_total (&window[k]) > 0)
      fprintf (out, " %s_p50_us=%.1f %s_p99_us=%.1f", kind[k],
               latency_percentile (&window[k], 0.5) / 1000.0, kind[k],
               latency_percentile (&window[k], 0.99) / 1000.0);
    fprintf (out, " %s_latency_count=%" PRIu64 " %s_latency_sum_us=%.1f",
             kind[k], latency_total (&total[k]), kind[k],
             total[k].sum_ns / 1000.0);
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
           " lost=%" PRIu64 " corrupt=%" PRIu64 " demoted=%" PRIu64
           " promoted=%" PRIu64 " rereads=%" PRIu64 " read_bytes=%" PRIu64
           " write_bytes=%" PRIu64
           " reads_per_s=%.1f writes_per_s=%.1f read_bytes_per_s=%.0f"
           " write_bytes_per_s=%.0f", st->reads, st->writes, st->errors,
           st->lost, st->corrupt, st->demoted, st->promoted, st->rereads,
           st->read_slots * PAGE_SIZE, st->write_slots * PAGE_SIZE,
           d->reads / seconds, d->writes / seconds,
           d->read_slots * PAGE_SIZE / seconds,
           d->write_slots * PAGE_SIZE / seconds);
  if (id != UINT_MAX)
    control_latency_fields (out, id);
  fputc ('\n', out);
}


/* stats: I/O counters and rates per backend, their totals, and the
 * demoter's rate.
 */
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
    sum.demoted += st.demoted;
    sum.promoted += st.promoted;
    sum.rereads += st.rereads;
    sum.corrupt += st.corrupt;
    total.reads += d.reads;
    total.writes += d.writes;
    total.read_slots += d.read_slots;
    total.write_slots += d.write_slots;
  }
  sum.lost = tierset_lost (control.ts);
  control_stats_line (out, "total", UINT_MAX, &sum, &total, seconds);
  control_demote_line (out);
  fprintf (out, "ok interval=%.3f\n", seconds);
}

/* add: open a backend and put it in service (one add at a time). */
static void
control_add (FILE *out, const struct ctl_command *cmd, const char *why)
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
    .domain = cmd->domain[0] ? cmd->domain : NULL,
    /* Like a backend= of the configuration: the device's encrypt=. */
    .clear = !(cmd->has_encrypt ? cmd->encrypt : options.encrypt),
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
  if (!spec.clear && !engine_encrypts (control.e)) {
    control_error (out, "encrypt=on: this device holds no key (it was "
                   "started with encrypt=off for every backend); restart "
                   "it with encrypt=on before the first backend= to add "
                   "encrypted backends");
    return;
  }
  if (!remote && (cmd->connections || cmd->timeout || cmd->grace)) {
    control_error (out, "connections=, timeout= and grace= apply to remote "
                   "backends (NBD URIs) only");
    return;
  }
  pthread_mutex_lock (&control.add_lock);
  id = tierset_open (control.ts, &spec);
  pthread_mutex_unlock (&control.add_lock);
  if (id == -1) {
    control_error (out, why);
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
  d = drain_start (control.e, control.ts, cmd->id, control.spare, cmd->rate,
                   cmd->force);
  if (d == NULL) {
    control_error (out, control.why);
    return;
  }
  /* What the others hold of the device's pages, with all their copies. */
  left = tierset_copies_capacity (control.ts, engine_copies (control.e));
  drain_destroy (control.drain);
  control.drain = d;
  drain_status (d, &ds);
  nbdkit_debug ("control: removing backend %u: %" PRIu64 " pages to move",
                cmd->id, ds.total);

  /* The device keeps its size: say so if the rest cannot hold all of it. */
  if (left < control.npages + control.spare) {
    snprintf (control.why, sizeof control.why, "the other backends hold "
              "%" PRIu64 " pages of %u copies, fewer than the %" PRIu64
              " pages of the device and %" PRIu64 " spare: writes fail "
              "with ENOSPC (or keep fewer copies) if it fills up", left,
              engine_copies (control.e), control.npages, control.spare);
    fputs ("warning", out);
    control_string (out, "text", control.why);
    fputc ('\n', out);
  }
  fprintf (out, "ok id=%u total=%" PRIu64 "\n", cmd->id, ds.total);
}

/* revive: put a failed backend back in service (tierset_revive), in a
 * job's thread (its errors captured into why).
 */
static void
control_revive (FILE *out, const struct ctl_command *cmd, const char *why)
{
  if (tierset_revive (control.ts, cmd->id) == -1) {
    control_error (out, why);
    return;
  }
  fprintf (out, "ok id=%u\n", cmd->id);
}

/* stop: stop the server, unless an NBD client is connected (the kernel
 * may still swap on the device: stopping would fail every swap-in).  The
 * shutdown follows the reply (control_serve).
 */
static void
control_stop (FILE *out)
{
  unsigned n = __atomic_load_n (&control.nbd_clients, __ATOMIC_RELAXED);

  if (n > 0) {
    snprintf (control.why, sizeof control.why, "%u NBD client%s still "
              "connected: the device may still be swapped on (swapoff it "
              "and detach it with nbd-client -d first); the server goes on",
              n, n == 1 ? " is" : "s are");
    control_error (out, control.why);
    return;
  }
  control.stop_asked = true;
  fprintf (out, "ok pid=%d\n", (int) getpid ());
}

/* cancel: stop the removal under way; the backend goes back in service. */
static void
control_cancel (FILE *out)
{
  struct drain_status ds;

  if (control.drain == NULL || !drain_cancel (control.drain)) {
    control_error (out, "no removal is under way");
    return;
  }
  drain_status (control.drain, &ds);
  fprintf (out, "ok id=%u\n", ds.id);
}

/* help: the commands, for a human at a raw connection. */
static void
control_help (FILE *out)
{
  fputs ("help list: backends, totals and the last removal\n"
         "help stats: I/O counters, rates and latencies\n"
         "help add TARGET [priority=N] [capacity=SIZE] [force=BOOL] "
         "[connections=N] [timeout=SECONDS] [grace=SECONDS] [domain=NAME] "
         "[encrypt=BOOL]: put a new backend in service\n"
         "help priority ID N: change the priority of backend ID\n"
         "help remove ID [rate=SIZE] [force=BOOL]: move the pages of "
         "backend ID away (at most SIZE a second), then close it; force: "
         "even if the others cannot hold the whole device\n"
         "help drain: where the last removal is\n"
         "help cancel: stop the removal under way\n"
         "help revive ID: put failed backend ID back in service, once its "
         "claim is checked again\n"
         "help stop: stop the server, unless an NBD client is connected\n"
         "help help: this list\n"
         "ok\n", out);
}

void
control_run (FILE *out, const struct ctl_command *cmd, const char *why)
{
  switch (cmd->verb) {
  case CTL_LIST: control_list (out); break;
  case CTL_STATS: control_stats (out); break;
  case CTL_ADD: control_add (out, cmd, why); break;
  case CTL_PRIORITY: control_priority (out, cmd); break;
  case CTL_REMOVE: control_remove (out, cmd); break;
  case CTL_DRAIN: control_drain_line (out); fputs ("ok\n", out); break;
  case CTL_CANCEL: control_cancel (out); break;
  case CTL_REVIVE: control_revive (out, cmd, why); break;
  case CTL_STOP: control_stop (out); break;
  case CTL_HELP: control_help (out); break;
  }
}
