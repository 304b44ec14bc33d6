/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: re-creating copies, in the background. */

#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "background.h"
#include "log.h"
#include "mover.h"
#include "page.h"
#include "repair.h"
#include "swapsafe.h"

struct repair {
  struct engine *e;
  struct tierset *ts;
  uint64_t limit;                      /* bytes a second, 0: none */
  struct background bg;

  /* Atomics. */
  enum repair_state state;
  uint64_t recreated, lost, rate;
};

/* The mover's selection: copies on failed backends. */
static bool
repair_leaves (void *opaque, slot_t s)
{
  const struct repair *r = opaque;

  return tierset_slot_failed_unlocked (r->ts, s);
}

uint64_t
repair_pending (struct engine *e, struct tierset *ts)
{
  if (engine_copies (e) < 2)
    return 0;
  return engine_degraded (e) + tierset_failed_used (ts);
}

/* One walk over the page map.  Returns the copies re-created, or -1 if
 * stopped.
 */
static int64_t
repair_walk (struct repair *r)
{
  const struct mover_select sel = {
    .leaves = repair_leaves, .opaque = r, .fill = true,
  };
  struct mover_result res;
  struct pace pace;
  uint64_t page = 0, done = 0;
  int m;

  pace_begin (&pace, r->limit, &r->rate);
  while ((m = mover_move (r->e, page, &sel, &res)) != 0) {
    if (m == -1)
      res = (struct mover_result) { .next = page + 1 };
    page = res.next;
    done += res.copies;
    __atomic_add_fetch (&r->recreated, res.copies, __ATOMIC_RELAXED);
    __atomic_add_fetch (&r->lost, res.lost, __ATOMIC_RELAXED);
    /* Pages read but left as they were (no room) cost the rate too. */
    if (!pace_charge (&pace, &r->bg, r->e, res.copies + res.stuck,
                      res.copies))
      return -1;
  }
  return done;
}

static void *
repair_thread (void *arg)
{
  struct repair *r = arg;
  uint64_t retry_ns = 0, backoff_ns = 0;
  unsigned backends = tierset_count (r->ts);

  swapsafe_enter_io ();
  /* One second at a time (retry_ns == 1: at once). */
  while (background_sleep (&r->bg, retry_ns == 1 ? 1 : 1000000000)) {
    int64_t done;

    /* A new backend may have the room that was missing. */
    if (retry_ns > 1000000000 && tierset_count (r->ts) == backends) {
      retry_ns -= 1000000000;
      continue;
    }
    backends = tierset_count (r->ts);
    retry_ns = 0;
    __atomic_store_n (&r->rate, 0, __ATOMIC_RELAXED);
    if (repair_pending (r->e, r->ts) == 0) {
      __atomic_store_n (&r->state, REPAIR_IDLE, __ATOMIC_RELAXED);
      continue;
    }
    __atomic_store_n (&r->state, REPAIR_RUNNING, __ATOMIC_RELAXED);
    if (swaptier_debug_alloc)
      log_debug ("repair: %" PRIu64 " copies to re-create",
                 repair_pending (r->e, r->ts));
    done = repair_walk (r);
    if (done == -1)
      break;
    if (swaptier_debug_alloc)
      log_debug ("repair: walk done, %" PRId64 " copies re-created", done);
    if (repair_pending (r->e, r->ts) == 0)
      __atomic_store_n (&r->state, REPAIR_IDLE, __ATOMIC_RELAXED);
    /* Pages changed behind the walk are found by the next one, at once;
     * a walk that could do nothing waits for room.
     */
    if (repair_pending (r->e, r->ts) > 0) {
      if (done == 0) {
        /* Each walk that could do nothing waits twice as long. */
        backoff_ns = backoff_ns == 0 ? (uint64_t) REPAIR_RETRY_S * 1000000000
          : backoff_ns * 2;
        if (backoff_ns > (uint64_t) REPAIR_RETRY_MAX_S * 1000000000)
          backoff_ns = (uint64_t) REPAIR_RETRY_MAX_S * 1000000000;
        __atomic_store_n (&r->state, REPAIR_WAITING, __ATOMIC_RELAXED);
        retry_ns = backoff_ns;
      }
      else {
        backoff_ns = 0;
        retry_ns = 1;
      }
    }
  }
  return NULL;
}

struct repair *
repair_start (struct engine *e, struct tierset *ts, uint64_t rate)
{
  struct repair *r = calloc (1, sizeof *r);

  if (r == NULL) {
    log_error ("repair: %m");
    return NULL;
  }
  r->e = e;
  r->ts = ts;
  r->limit = rate;
  if (background_start (&r->bg, "repair", repair_thread, r) == -1) {
    free (r);
    return NULL;
  }
  return r;
}

void
repair_status (struct repair *r, struct repair_status *st)
{
  *st = (struct repair_status) { .state = REPAIR_IDLE };
  if (r == NULL)
    return;
  *st = (struct repair_status) {
    .state = __atomic_load_n (&r->state, __ATOMIC_RELAXED),
    .degraded = repair_pending (r->e, r->ts),
    .recreated = __atomic_load_n (&r->recreated, __ATOMIC_RELAXED),
    .lost = __atomic_load_n (&r->lost, __ATOMIC_RELAXED),
    .rate = __atomic_load_n (&r->rate, __ATOMIC_RELAXED),
    .limit = r->limit,
  };
}

void
repair_stop (struct repair *r)
{
  if (r == NULL)
    return;
  background_stop (&r->bg);
  free (r);
}

const char *
repair_state_name (enum repair_state state)
{
  switch (state) {
  case REPAIR_IDLE: return "idle";
  case REPAIR_RUNNING: return "running";
  case REPAIR_WAITING: return "waiting";
  }
  return "unknown";
}
