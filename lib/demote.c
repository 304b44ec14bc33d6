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
  uint64_t tick;                       /* ns: when the last tick was due */
  uint64_t tick_demoted;               /* copies moved (down, up) then */
  struct pace pace;                    /* of demotion and promotion */

  /* The promotion under way: the page, the level it goes up to; the
   * entry of the re-read queue the next pass starts at.
   */
  uint64_t promote_page;
  int up;
  unsigned promote_next;

  /* The walk under way: its level, where its copies may go, its age
   * threshold, the copies it moved.
   */
  int level;
  domain_mask room;
  unsigned min_age;
  uint64_t walk_moved;

  /* The last census: copies by age of the pages of a level. */
  uint64_t hist[AGEMAP_AGE_MAX + 1];
  int census_level;
  domain_mask census_room;
  uint64_t census_ns, counted;

  /* Atomics. */
  enum demote_state state;
  uint64_t demoted, promoted, rate;
};

/* The mover's selection: copies on the level being demoted... */
static bool
demote_leaves (void *opaque, slot_t s)
{
  struct demote *d = opaque;
  int priority;

  return tierset_slot_level (d->ts, s, &priority) && priority == d->level;
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

/* Count the copies of page that would leave under its age; false (stop
 * the census) if the demoter was told to stop.
 */
static bool
demote_count_age (void *opaque, uint64_t page, unsigned leave)
{
  struct demote *d = opaque;

  d->hist[agemap_age (engine_ages (d->e), page)] += leave;
  return (++d->counted & 0xffff) != 0 || !background_stopped (&d->bg);
}

/* Set min_age to the youngest age that, counting the oldest pages of
 * the level first, covers need copies (never below DEMOTE_MIN_AGE),
 * after a census of the pages of the level whose copies could go down
 * (reused for a second on the same level).  Returns 1, 0 if no page of
 * the level is old enough, -1 if stopped.
 */
static int
demote_pick_age (struct demote *d, uint64_t need)
{
  const struct mover_select census = {
    .leaves = demote_leaves, .opaque = d, .within = true,
    .win = { TIERSET_PRIORITY_MIN, d->level },
    .room = d->room,
  };
  uint64_t sum = 0, now = background_now_ns ();
  unsigned age;

  if (d->census_level != d->level || d->census_room != d->room ||
      now - d->census_ns >= (uint64_t) DEMOTE_TICK_MS * 1000000) {
    for (age = 0; age <= AGEMAP_AGE_MAX; age++)
      d->hist[age] = 0;
    if (!mover_census (d->e, &census, demote_count_age, d))
      return -1;
    d->census_level = d->level;
    d->census_room = d->room;
    d->census_ns = now;
  }
  for (age = AGEMAP_AGE_MAX; age > DEMOTE_MIN_AGE; age--) {
    sum += d->hist[age];
    if (sum >= need)
      break;
  }
  sum += age == DEMOTE_MIN_AGE ? d->hist[age] : 0;
  d->min_age = age;
  if (swaptier_debug_demote)
    log_debug ("demote: priority %d: %" PRIu64 " slots to free, copies of "
               "pages of age %u and more: %" PRIu64, d->level, need, age,
               sum);
  return sum > 0;
}

/* Tick the age map for each tick due (once a second; after a long
 * stall at most AGEMAP_CLAMP_TICKS at once), and publish the copies
 * demoted since the last tick, per second, as the rate.
 */
static void
demote_tick (struct demote *d)
{
  const uint64_t period = (uint64_t) DEMOTE_TICK_MS * 1000000;
  uint64_t now = background_now_ns (), demoted, due, i;

  if (now - d->tick < period)
    return;
  due = (now - d->tick) / period;
  for (i = 0; i < due && i < AGEMAP_CLAMP_TICKS; i++)
    agemap_tick (engine_ages (d->e));
  demoted = __atomic_load_n (&d->demoted, __ATOMIC_RELAXED) +
    __atomic_load_n (&d->promoted, __ATOMIC_RELAXED);
  __atomic_store_n (&d->rate, (demoted - d->tick_demoted) * 1000000000
                    / (now - d->tick), __ATOMIC_RELAXED);
  d->tick_demoted = demoted;
  d->tick += due * period;
}

/* Move need copies of the level's pages of min_age and older down,
 * from the cursor on, once around the map at most.  Returns the copies
 * moved, or -1 if stopped.
 */
static int64_t
demote_walk (struct demote *d, uint64_t need)
{
  const struct mover_select sel = {
    .leaves = demote_leaves, .wants = demote_wants, .moved = demote_moved,
    .opaque = d, .keep = true, .within = true,
    .win = { TIERSET_PRIORITY_MIN, d->level }, .room = d->room,
  };
  uint64_t npages = engine_pages (d->e);
  uint64_t page = d->cursor, walked = 0;
  struct mover_result res;
  int m;

  d->walk_moved = 0;
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
    if (!pace_charge (&d->pace, &d->bg, d->e, res.copies + res.stuck,
                      res.copies))
      return -1;
    demote_tick (d);
  }
  d->cursor = page < npages ? page : 0;
  return d->walk_moved;
}

/* Demote level i of lv (n levels) if it needs it.  Returns the copies
 * moved, -1 if stopped, or DEMOTE_NOT_NEEDED, DEMOTE_NO_ROOM (nowhere
 * for its copies to go), DEMOTE_TOO_YOUNG (no page old enough).
 */
#define DEMOTE_NOT_NEEDED (-2)
#define DEMOTE_NO_ROOM (-3)
#define DEMOTE_TOO_YOUNG (-4)
static int64_t
demote_level (struct demote *d, const struct tier_level *lv, unsigned n,
              unsigned i)
{
  uint64_t target = (lv[i].usable * d->cfg.high + 99) / 100;
  int64_t moved;
  unsigned j;
  int r;

  if (lv[i].free * 100 >= lv[i].usable * d->cfg.low)
    return DEMOTE_NOT_NEEDED;
  d->level = lv[i].priority;
  d->room = 0;
  for (j = i + 1; j < n; j++)
    d->room |= lv[j].room;
  if (d->room == 0)
    return DEMOTE_NO_ROOM;
  r = demote_pick_age (d, target - lv[i].free);
  if (r <= 0)
    return r == -1 ? -1 : DEMOTE_TOO_YOUNG;
  __atomic_store_n (&d->state, DEMOTE_RUNNING, __ATOMIC_RELAXED);
  moved = demote_walk (d, target - lv[i].free);
  if (moved >= 0 && swaptier_debug_demote)
    log_debug ("demote: priority %d: %" PRId64 " copies moved down",
               d->level, moved);
  return moved == 0 ? DEMOTE_NO_ROOM : moved;
}

/* Look at every level but the lowest once and demote those that need
 * it.  Returns the state to show (DEMOTE_OFF if stopped) and sets
 * *young when a level waits only for its pages to age.
 */
static enum demote_state
demote_check (struct demote *d, bool *young)
{
  struct tier_level lv[TIERSET_MAX_TIERS];
  unsigned n = tierset_levels (d->ts, lv, TIERSET_MAX_TIERS), i;
  bool needed = false, moved = false;

  *young = false;
  for (i = 0; i + 1 < n; i++) {
    int64_t r = demote_level (d, lv, n, i);

    if (r == -1)
      return DEMOTE_OFF;
    if (r == DEMOTE_NOT_NEEDED)
      continue;
    needed = true;
    moved |= r > 0;
    *young |= r == DEMOTE_TOO_YOUNG;
  }
  return moved ? DEMOTE_RUNNING : needed ? DEMOTE_WAITING : DEMOTE_IDLE;
}

/* Promotion's selection: the page re-read... */
static bool
demote_promote_wants (void *opaque, uint64_t page)
{
  const struct demote *d = opaque;

  return page == d->promote_page;
}

/* ...its copies on levels below the one it goes up to... */
static bool
demote_promote_leaves (void *opaque, slot_t s)
{
  struct demote *d = opaque;
  int priority;

  return tierset_slot_level (d->ts, s, &priority) && priority < d->up;
}

/* ...counted as promoted. */
static void
demote_promoted (void *opaque, slot_t from, uint32_t n)
{
  struct demote *d = opaque;

  tierset_count_promoted (d->ts, from, n);
  __atomic_add_fetch (&d->promoted, n, __ATOMIC_RELAXED);
}

/* Move the pages re-read from below the highest priority (rereadq.h)
 * up to the highest level whose free slots are at its low watermark or
 * above, while it stays there, for at most DEMOTE_CHECK_MS (the entries
 * not reached wait for the next pass: demotion goes on meanwhile).
 * Returns false if stopped.
 */
static bool
demote_promote (struct demote *d)
{
  struct tier_level lv[TIERSET_MAX_TIERS];
  unsigned n = tierset_levels (d->ts, lv, TIERSET_MAX_TIERS), i, u;
  struct rereadq *q = engine_rereads (d->e);
  struct mover_result res;
  uint64_t page, until = background_now_ns ()
    + (uint64_t) DEMOTE_CHECK_MS * 1000000;

  for (u = 0; u < n; u++)
    if (lv[u].room != 0 && lv[u].free * 100 >= lv[u].usable * d->cfg.low)
      break;
  for (i = d->promote_next; i < REREADQ_SLOTS; i++) {
    struct mover_select sel = {
      .leaves = demote_promote_leaves, .wants = demote_promote_wants,
      .moved = demote_promoted, .opaque = d, .keep = true, .within = true,
    };

    /* Empty the queue even when no level has room. */
    if (!rereadq_take (q, i, &page) || u == n)
      continue;
    sel.win = (struct tier_window) { lv[u].priority, lv[u].priority + 1 };
    sel.room = lv[u].room;
    d->promote_page = page;
    d->up = lv[u].priority;
    if (mover_move_page (d->e, page, &sel, &res) != 1)
      continue;
    if (!pace_charge (&d->pace, &d->bg, d->e, res.copies + res.stuck,
                      res.copies))
      return false;
    demote_tick (d);
    lv[u].free -= res.copies < lv[u].free ? res.copies : lv[u].free;
    if (lv[u].free * 100 < lv[u].usable * d->cfg.low)
      u = n;
    if (background_now_ns () >= until) {
      d->promote_next = i + 1;
      return true;
    }
  }
  d->promote_next = 0;
  return true;
}

/* What the levels look like, to notice a change that may let a waiting
 * demotion go on: backends added or removed, priorities, which domains
 * have room.
 */
static uint64_t
demote_shape (struct demote *d)
{
  struct tier_level lv[TIERSET_MAX_TIERS];
  unsigned n = tierset_levels (d->ts, lv, TIERSET_MAX_TIERS), i;
  uint64_t h = tierset_count (d->ts);

  for (i = 0; i < n; i++)
    h = h * 1000003 ^ ((uint64_t) (lv[i].priority + 1) << 32 ^ lv[i].room);
  return h;
}

static void *
demote_thread (void *arg)
{
  struct demote *d = arg;
  const uint64_t tick = (uint64_t) DEMOTE_TICK_MS * 1000000;
  uint64_t retry = 0, backoff = 0, shape = 0;

  swapsafe_enter_io ();
  d->tick = background_now_ns ();
  pace_begin (&d->pace, d->cfg.rate, NULL);
  while (background_sleep (&d->bg, (uint64_t) DEMOTE_CHECK_MS * 1000000)) {
    enum demote_state state;
    bool young;

    demote_tick (d);
    if (d->cfg.promote && !demote_promote (d))
      break;
    if (!d->cfg.on)
      continue;
    /* After a check that could do nothing, wait, unless the levels
     * changed.
     */
    if (background_now_ns () < retry && demote_shape (d) == shape)
      continue;
    state = demote_check (d, &young);
    if (state == DEMOTE_OFF)
      break;
    if (state != DEMOTE_WAITING)
      backoff = retry = 0;
    else {
      /* Young pages are old enough after the minimum age; no room
       * comes back by itself: twice as long each time.
       */
      backoff = young ? DEMOTE_MIN_AGE * tick
        : backoff == 0 ? tick : backoff * 2;
      if (backoff > (uint64_t) DEMOTE_RETRY_MAX_S * 1000000000)
        backoff = (uint64_t) DEMOTE_RETRY_MAX_S * 1000000000;
      retry = background_now_ns () + backoff;
      shape = demote_shape (d);
    }
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
  if (cfg->on || cfg->promote) {
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
    .promoted = __atomic_load_n (&d->promoted, __ATOMIC_RELAXED),
    .rate = __atomic_load_n (&d->rate, __ATOMIC_RELAXED),
    .limit = d->cfg.rate,
    .low = d->cfg.low,
    .high = d->cfg.high,
  };
}

void
demote_halt (struct demote *d)
{
  if (d && d->running)
    background_halt (&d->bg);
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
