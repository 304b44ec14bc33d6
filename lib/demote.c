/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: demotion of cold pages (see demote.h). */

#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "agemap.h"
#include "background.h"
#include "demote.h"
#include "log.h"
#include "mover.h"
#include "swapsafe.h"

struct demote {
  struct engine *e;
  struct tierset *ts;
  struct demote_config cfg;
  struct background bg;
  bool running;                        /* the thread was started */
  uint64_t cursor;                     /* where the next walk starts */

  /* The walk under way: its level, age threshold, copies moved. */
  int level;
  unsigned min_age;
  uint64_t walk_moved;
  uint64_t hist[AGEMAP_AGE_MAX + 1];

  /* Atomics. */
  enum demote_state state;
  uint64_t demoted, rate;
};

/* The mover's selection: copies on the level being demoted... */
static bool
demote_leaves (void *opaque, slot_t s)
{
  struct demote *d = opaque;

  return tierset_slot_on_level (d->ts, s, d->level);
}

/* ...of pages at least min_age ticks old. */
static bool
demote_wants (void *opaque, uint64_t page)
{
  struct demote *d = opaque;

  return agemap_age (engine_ages (d->e), page) >= d->min_age;
}

static void
demote_moved (void *opaque, slot_t from, uint32_t n)
{
  struct demote *d = opaque;

  tierset_count_demoted (d->ts, from, n);
  d->walk_moved += n;
  __atomic_add_fetch (&d->demoted, n, __ATOMIC_RELAXED);
}

static void
demote_count_age (void *opaque, uint64_t page)
{
  struct demote *d = opaque;

  d->hist[agemap_age (engine_ages (d->e), page)]++;
}

/* Set min_age to the youngest age that, counting the oldest pages of
 * the level first, covers need copies (never below DEMOTE_MIN_AGE).
 * Returns false if no page of the level is old enough.
 */
static bool
demote_pick_age (struct demote *d, uint64_t need)
{
  const struct mover_select census = {
    .leaves = demote_leaves, .opaque = d,
  };
  uint64_t sum = 0;
  unsigned age;

  for (age = 0; age <= AGEMAP_AGE_MAX; age++)
    d->hist[age] = 0;
  mover_census (d->e, &census, demote_count_age, d);
  for (age = AGEMAP_AGE_MAX; age > DEMOTE_MIN_AGE; age--) {
    sum += d->hist[age];
    if (sum >= need)
      break;
  }
  sum += age == DEMOTE_MIN_AGE ? d->hist[age] : 0;
  d->min_age = age;
  if (swaptier_debug_demote)
    log_debug ("demote: priority %d: %" PRIu64 " slots to free, pages of "
               "age %u and more: %" PRIu64, d->level, need, age, sum);
  return sum > 0;
}

/* Move need copies of level lv's pages of min_age and older down, from
 * the cursor on, once around the map at most.  Returns the copies
 * moved, or -1 if stopped.
 */
static int64_t
demote_walk (struct demote *d, uint64_t need)
{
  const struct mover_select sel = {
    .leaves = demote_leaves, .wants = demote_wants, .moved = demote_moved,
    .opaque = d, .down = true, .level = d->level,
  };
  uint64_t npages = engine_pages (d->e);
  uint64_t page = d->cursor, walked = 0;
  struct mover_result res;
  struct pace pace;
  int m;

  d->walk_moved = 0;
  pace_begin (&pace, d->cfg.rate, &d->rate);
  while (d->walk_moved < need && walked < npages) {
    if (page >= npages)
      page = 0;
    m = mover_move (d->e, page, &sel, &res);
    if (m == 0) {
      /* Nothing from page to the end: go on from the start. */
      walked += npages - page;
      page = npages;
      continue;
    }
    if (m == -1)
      res = (struct mover_result) { .next = page + 1 };
    walked += res.next - page;
    page = res.next;
    if (!pace_charge (&pace, &d->bg, d->e, res.copies + res.stuck,
                      res.copies))
      return -1;
  }
  d->cursor = page < npages ? page : 0;
  return d->walk_moved;
}

/* Look at the levels once and demote the first that needs it.  Returns
 * the state to show, or DEMOTE_OFF if stopped.
 */
static enum demote_state
demote_check (struct demote *d)
{
  struct tier_level lv[TIERSET_MAX_TIERS];
  unsigned n = tierset_levels (d->ts, lv, TIERSET_MAX_TIERS), i, j;

  for (i = 0; i + 1 < n; i++) {
    uint64_t below = 0;
    uint64_t target = (lv[i].usable * d->cfg.high + 99) / 100;
    int64_t moved;

    if (lv[i].free * 100 >= lv[i].usable * d->cfg.low)
      continue;
    for (j = i + 1; j < n; j++)
      below += lv[j].free;
    if (below == 0)
      return DEMOTE_WAITING;
    d->level = lv[i].priority;
    __atomic_store_n (&d->state, DEMOTE_RUNNING, __ATOMIC_RELAXED);
    if (!demote_pick_age (d, target - lv[i].free))
      return DEMOTE_WAITING;
    moved = demote_walk (d, target - lv[i].free);
    if (moved == -1)
      return DEMOTE_OFF;
    if (swaptier_debug_demote)
      log_debug ("demote: priority %d: %" PRId64 " copies moved down",
                 d->level, moved);
    return moved > 0 ? DEMOTE_RUNNING : DEMOTE_WAITING;
  }
  return DEMOTE_IDLE;
}

static void *
demote_thread (void *arg)
{
  struct demote *d = arg;
  uint64_t tick = background_now_ns (), retry = 0;

  swapsafe_enter_io ();
  while (background_sleep (&d->bg, (uint64_t) DEMOTE_CHECK_MS * 1000000)) {
    uint64_t now = background_now_ns ();
    enum demote_state state;

    if (now - tick >= (uint64_t) DEMOTE_TICK_MS * 1000000) {
      agemap_tick (engine_ages (d->e));
      tick += (uint64_t) DEMOTE_TICK_MS * 1000000;
      if (now - tick >= (uint64_t) DEMOTE_TICK_MS * 1000000)
        tick = now;
    }
    /* After a check that could do nothing, wait for the next tick. */
    if (now < retry)
      continue;
    state = demote_check (d);
    if (state == DEMOTE_OFF)
      break;
    if (state != DEMOTE_RUNNING)
      __atomic_store_n (&d->rate, 0, __ATOMIC_RELAXED);
    retry = state == DEMOTE_WAITING
      ? now + (uint64_t) DEMOTE_TICK_MS * 1000000 : 0;
    __atomic_store_n (&d->state, state, __ATOMIC_RELAXED);
  }
  return NULL;
}

struct demote *
demote_start (struct engine *e, struct tierset *ts,
              const struct demote_config *cfg)
{
  struct demote *d = calloc (1, sizeof *d);

  if (d == NULL) {
    log_error ("demote: %m");
    return NULL;
  }
  d->e = e;
  d->ts = ts;
  d->cfg = *cfg;
  d->state = cfg->on ? DEMOTE_IDLE : DEMOTE_OFF;
  if (cfg->on) {
    if (background_start (&d->bg, "demote", demote_thread, d) == -1) {
      free (d);
      return NULL;
    }
    d->running = true;
  }
  return d;
}

void
demote_status (struct demote *d, struct demote_status *st)
{
  *st = (struct demote_status) { .state = DEMOTE_OFF };
  if (d == NULL)
    return;
  *st = (struct demote_status) {
    .state = __atomic_load_n (&d->state, __ATOMIC_RELAXED),
    .demoted = __atomic_load_n (&d->demoted, __ATOMIC_RELAXED),
    .rate = __atomic_load_n (&d->rate, __ATOMIC_RELAXED),
    .limit = d->cfg.rate,
    .low = d->cfg.low,
    .high = d->cfg.high,
  };
}

void
demote_stop (struct demote *d)
{
  if (d == NULL)
    return;
  if (d->running)
    background_stop (&d->bg);
  free (d);
}

const char *
demote_state_name (enum demote_state state)
{
  switch (state) {
  case DEMOTE_OFF: return "off";
  case DEMOTE_IDLE: return "idle";
  case DEMOTE_RUNNING: return "running";
  case DEMOTE_WAITING: return "waiting";
  }
  return "unknown";
}
