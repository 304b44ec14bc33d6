/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: removing a backend while the device is in use. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
  pthread_t thread;

  /* Atomics. */
  enum drain_state state;              /* error is set before FAILED */
  bool stop;
  uint64_t moved, lost, dropped;

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
  uint64_t page = 0;
  int r = 1;

  swapsafe_enter_io ();
  /* The reason of a failure is the last error this thread reports. */
  log_capture (d->error, sizeof d->error);
  engine_sync (d->e);
  while (!__atomic_load_n (&d->stop, __ATOMIC_RELAXED) &&
         (r = mover_move (d->e, page, &sel, &mv)) == 1) {
    page = mv.next;
    __atomic_add_fetch (&d->moved, mv.moved, __ATOMIC_RELAXED);
    __atomic_add_fetch (&d->lost, mv.lost, __ATOMIC_RELAXED);
    __atomic_add_fetch (&d->dropped, mv.dropped, __ATOMIC_RELAXED);
  }
  if (r == 1)
    state = DRAIN_STOPPED;
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
             uint64_t spare)
{
  struct tier_stats st;
  struct drain *d;
  int err;

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
  tierset_stats (ts, id, &st);
  *d = (struct drain) {
    .e = e, .ts = ts, .id = id,
    .lo = st.first, .hi = st.first + st.capacity,
    .total = st.used,
    .state = DRAIN_RUNNING,
  };
  err = pthread_create (&d->thread, NULL, drain_thread, d);
  if (err) {
    log_error ("drain of backend %u: starting its thread: %s",
               id, strerror (err));
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
  };
  if (st->state == DRAIN_FAILED)
    memcpy (st->error, d->error, sizeof st->error);
  if (tierset_stats (d->ts, d->id, &ts))
    st->remaining = ts.used;
}

void
drain_destroy (struct drain *d)
{
  if (d == NULL)
    return;
  __atomic_store_n (&d->stop, true, __ATOMIC_RELAXED);
  pthread_join (d->thread, NULL);
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
  }
  return "unknown";
}
