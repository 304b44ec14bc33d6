/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: removing a backend while the device is in use. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "drain.h"
#include "log.h"
#include "mover.h"
#include "swapsafe.h"

struct drain {
  struct engine *e;
  struct tierset *ts;
  unsigned id;
  slot_t lo, hi;                       /* the backend's slot addresses */
  uint64_t total;
  uint64_t limit;                      /* bytes a second, 0: none */
  uint64_t started;                    /* ns, monotonic */
  struct background bg;

  /* Atomics. */
  enum drain_state state;              /* error is set before FAILED */
  bool cancelled;                      /* by drain_cancel, before the halt */
  uint64_t moved, lost, dropped;
  uint64_t rate;                       /* pages moved a second */

  char error[sizeof ((struct drain_status *) 0)->error];
};

/* The mover's selection: the copies on the backend. */
static bool
drain_leaves (void *opaque, slot_t s)
{
  const struct drain *d = opaque;

  return s >= d->lo && s < d->hi;
}

/* Move every page off the backend, then close it. */
static void *
drain_thread (void *arg)
{
  struct drain *d = arg;
  const struct mover_select sel = {
    .leaves = drain_leaves, .opaque = d, .must_leave = true,
  };
  struct mover_result mv;
  enum drain_state state = DRAIN_DONE;
  struct pace pace;
  uint64_t page = 0;
  int r = 1;

  swapsafe_enter_io ();
  /* The reason of a failure is the last error this thread reports. */
  log_capture (d->error, sizeof d->error);
  engine_sync (d->e);
  pace_begin (&pace, d->limit, &d->rate);
  while (!background_stopped (&d->bg) &&
         (r = mover_move (d->e, page, &sel, &mv)) == 1) {
    page = mv.next;
    __atomic_add_fetch (&d->moved, mv.moved, __ATOMIC_RELAXED);
    __atomic_add_fetch (&d->lost, mv.lost, __ATOMIC_RELAXED);
    __atomic_add_fetch (&d->dropped, mv.dropped, __ATOMIC_RELAXED);
    /* Only the rate: a removal keeps going while clients work (they
     * wait at most for one move of their own pages).
     */
    if (d->limit && !pace_charge (&pace, &d->bg, d->e, mv.copies + mv.stuck,
                                  mv.moved))
      break;
  }
  if (r == 1)
    state = __atomic_load_n (&d->cancelled, __ATOMIC_RELAXED)
            ? DRAIN_CANCELLED : DRAIN_STOPPED;
  else if (r == -1)
    state = DRAIN_FAILED;
  else {
    /* Requests that looked up one of its slots before its pages moved
     * (a read failing there, a rewrite or trim still freeing its old
     * slots) are done once every request in progress now is: then none
     * uses the backend and none can.
     */
    engine_sync (d->e);
    if (tierset_remove (d->ts, d->id) == -1)
      state = DRAIN_FAILED;
  }
  if (state != DRAIN_DONE)
    tierset_drain_cancel (d->ts, d->id);
  if (swaptier_debug_alloc)
    log_debug ("drain of backend %u: %s, %" PRIu64 " pages moved, %" PRIu64
               " lost", d->id, drain_state_name (state),
               __atomic_load_n (&d->moved, __ATOMIC_RELAXED),
               __atomic_load_n (&d->lost, __ATOMIC_RELAXED));
  log_capture (NULL, 0);
  __atomic_store_n (&d->state, state, __ATOMIC_RELEASE);
  return NULL;
}

struct drain *
drain_start (struct engine *e, struct tierset *ts, unsigned id,
             uint64_t spare, uint64_t limit, bool force)
{
  uint64_t left;
  struct tier_stats st;
  struct drain *d;

  if (tierset_ndomains (ts, id) < engine_copies (e)) {
    log_error ("backend %u cannot be removed: the others are in fewer "
               "failure domains than copies=%u; add a backend in another "
               "domain first", id, engine_copies (e));
    return NULL;
  }
  d = calloc (1, sizeof *d);
  if (d == NULL) {
    log_error ("drain of backend %u: %m", id);
    return NULL;
  }
  if (tierset_drain_begin (ts, id, spare) == -1) {
    free (d);
    return NULL;
  }
  /* The device keeps its size: the others should hold all of it. */
  left = tierset_copies_capacity (ts, engine_copies (e));
  if (left < engine_pages (e) + spare && !force) {
    log_error ("backend %u: without it the others hold %" PRIu64 " pages "
               "of %u copies, fewer than the %" PRIu64 " pages of the "
               "device and %" PRIu64 " spare: writes would fail with "
               "ENOSPC (or keep fewer copies) once it fills up; give "
               "force=true (swaptierctl remove --force) to remove it all "
               "the same", id, left, engine_copies (e), engine_pages (e),
               spare);
    tierset_drain_cancel (ts, id);
    free (d);
    return NULL;
  }
  tierset_stats (ts, id, &st);
  *d = (struct drain) {
    .e = e, .ts = ts, .id = id,
    .lo = st.first, .hi = st.first + st.capacity,
    .total = st.used, .limit = limit,
    .started = background_now_ns (),
    .state = DRAIN_RUNNING,
  };
  if (background_start (&d->bg, "drain", drain_thread, d) == -1) {
    tierset_drain_cancel (ts, id);
    free (d);
    return NULL;
  }
  return d;
}

void
drain_status (struct drain *d, struct drain_status *st)
{
  struct tier_stats ts;

  *st = (struct drain_status) {
    .id = d->id,
    .state = __atomic_load_n (&d->state, __ATOMIC_ACQUIRE),
    .total = d->total,
    .moved = __atomic_load_n (&d->moved, __ATOMIC_RELAXED),
    .lost = __atomic_load_n (&d->lost, __ATOMIC_RELAXED),
    .dropped = __atomic_load_n (&d->dropped, __ATOMIC_RELAXED),
    .rate = __atomic_load_n (&d->rate, __ATOMIC_RELAXED),
    .limit = d->limit,
    .elapsed_ms = (background_now_ns () - d->started) / 1000000,
  };
  if (st->state == DRAIN_FAILED)
    memcpy (st->error, d->error, sizeof st->error);
  if (tierset_stats (d->ts, d->id, &ts))
    st->remaining = ts.used;
}

bool
drain_cancel (struct drain *d)
{
  if (__atomic_load_n (&d->state, __ATOMIC_ACQUIRE) != DRAIN_RUNNING)
    return false;
  __atomic_store_n (&d->cancelled, true, __ATOMIC_RELAXED);
  background_halt (&d->bg);
  return true;
}

void
drain_destroy (struct drain *d)
{
  if (d == NULL)
    return;
  background_stop (&d->bg);
  free (d);
}

const char *
drain_state_name (enum drain_state state)
{
  switch (state) {
  case DRAIN_RUNNING: return "running";
  case DRAIN_DONE: return "done";
  case DRAIN_FAILED: return "failed";
  case DRAIN_STOPPED: return "stopped";
  case DRAIN_CANCELLED: return "cancelled";
  }
  return "unknown";
}
