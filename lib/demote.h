/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: demotion, sending cold pages down a tier in the background
 * so that the fast tiers keep room for what is written now.
 *
 * Without it a tier fills and stays full: the pages written first hold
 * it for as long as they live, and every page written after them, the
 * ones most likely to be read back soon, lands lower.  The demoter is
 * one thread.  Every DEMOTE_CHECK_MS it looks at the priority levels
 * (tierset_levels) from the highest; a level whose free slots fell below
 * low percent of its usable ones, with a lower level that has room, is
 * demoted until its free slots reach high percent:
 *
 *   1. a census counts the pages with a copy on the level by age (ticks
 *      since their last client access, agemap.h), and picks the age
 *      threshold that, oldest first, covers the slots to free; pages
 *      younger than DEMOTE_MIN_AGE ticks never go down;
 *   2. a walk, from where the last one stopped, has the mover (mover.h)
 *      move the copies on the level of the pages at least that old to
 *      levels below it, on domains that the pages' other copies are not
 *      in, at most rate bytes a second and yielding to client requests
 *      (background.h), until the slots are freed or the map was walked
 *      once.
 *
 * A level with nothing it can demote (no room below, every page young)
 * is looked at again after a tick.  The lowest level never demotes.
 * The demoter also ticks the age map, once every DEMOTE_TICK_MS.  Copies
 * on failed and draining backends are not its business (repair.h,
 * drain.h).  A client rewrite sends a page to the top again, as any
 * write does.
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_DEMOTE_H
#define SWAPTIER_DEMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "tierset.h"

#define DEMOTE_LOW_DEFAULT 5           /* percent free */
#define DEMOTE_HIGH_DEFAULT 10
#define DEMOTE_PERCENT_MAX 50          /* of high */
#define DEMOTE_RATE_DEFAULT (64 * 1024 * 1024) /* bytes a second */
#define DEMOTE_CHECK_MS 100
#define DEMOTE_TICK_MS 1000
#define DEMOTE_MIN_AGE 1               /* ticks */

enum demote_state {
  DEMOTE_OFF,                          /* demote=off */
  DEMOTE_IDLE,                         /* every level has room */
  DEMOTE_RUNNING,                      /* moving pages down */
  DEMOTE_WAITING,                      /* a level is short of room and
                                          nothing could go down */
};

struct demote_config {
  bool on;
  unsigned low, high;                  /* percent: 1 <= low < high <= 50 */
  uint64_t rate;                       /* bytes a second, 0: no limit */
};

struct demote_status {
  enum demote_state state;
  uint64_t demoted;                    /* copies moved down, since start */
  uint64_t rate;                       /* copies a second, lately */
  uint64_t limit;                      /* bytes a second, 0: none */
  unsigned low, high;
};

struct demote;

/* Start the demoter of engine e over tier set ts (the caller frees it
 * before both) with cfg; with cfg->on false, a demoter that is off and
 * only reports so.  NULL after log_error on failure.
 */
extern struct demote *demote_start (struct engine *e, struct tierset *ts,
                                    const struct demote_config *cfg);

/* Where it is.  NULL reports off. */
extern void demote_status (struct demote *d, struct demote_status *st);

/* Stop it and free it.  NULL is accepted. */
extern void demote_stop (struct demote *d);

extern const char *demote_state_name (enum demote_state state);

#endif /* SWAPTIER_DEMOTE_H */
