/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: demotion, sending cold pages down a tier in the background
 * so that the fast tiers keep room for what is written now, and
 * promotion of the pages read again from a lower tier.
 *
 * Without it a tier fills and stays full: the pages written first hold
 * it for as long as they live, and every page written after them, the
 * ones most likely to be read back soon, lands lower.  The demoter is
 * one thread.  Every DEMOTE_CHECK_MS it looks at the priority levels
 * (tierset_levels) from the highest.  Each level but the lowest whose
 * free slots fell below low percent of its usable ones is demoted until
 * its free slots reach high percent:
 *
 *   1. the domains with free slots on the levels below are where its
 *      copies may go ("room"); a page whose copies that stay already
 *      hold every one of them cannot go down and is left out;
 *   2. a census counts the copies on the level, of the pages that can
 *      go down, by age (ticks since the last client access, agemap.h),
 *      and picks the age threshold that, oldest first, covers the slots
 *      to free; pages younger than DEMOTE_MIN_AGE ticks (touched in the
 *      last second or so) never go down.  A census is reused for a
 *      second;
 *   3. a walk, from where the last one stopped, has the mover (mover.h)
 *      move the copies on the level of the pages at least that old to
 *      the levels below, on domains that the pages' other copies are
 *      not in, at most rate bytes a second and yielding to client
 *      requests (background.h), until the slots are freed or the map
 *      was walked once.
 *
 * When no level could move anything, the demoter waits: DEMOTE_MIN_AGE
 * ticks when pages were only too young, else a tick, then twice as long
 * each time up to DEMOTE_RETRY_MAX_S, or until the levels change
 * (backends, priorities, domains with room).  The demoter also ticks
 * the age map, once every DEMOTE_TICK_MS, also in the middle of a walk.
 * Copies on failed and draining backends, and on servers being
 * reconnected to, are not its business (repair.h, drain.h).  A client
 * rewrite sends a page to the top again, as any write does.
 *
 * Promotion: a page that a client reads a second time since it was
 * written, from a backend below the highest priority, is queued
 * (rereadq.h: lossy, no lock).  Before each check the demoter takes the
 * queue and moves each such page's copies that lie below the highest
 * level whose free slots are at its low watermark or above up to that
 * level, on domains that its other copies are not in, under the same
 * pace; a level that falls below its low watermark takes no more.  For
 * swap this is a page the kernel read, dropped clean from its swap cache
 * and faulted in again: one that is likely to be read again.
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
#define DEMOTE_CHECK_MS 25
#define DEMOTE_TICK_MS 1000
#define DEMOTE_MIN_AGE 2               /* ticks: untouched for a second */
#define DEMOTE_RETRY_MAX_S 32          /* longest wait with no room */

enum demote_state {
  DEMOTE_OFF,                          /* demote=off */
  DEMOTE_IDLE,                         /* every level has room */
  DEMOTE_RUNNING,                      /* moving pages down */
  DEMOTE_WAITING,                      /* a level is short of room and
                                          nothing could go down */
};

struct demote_config {
  bool on;
  bool promote;                        /* pages re-read from below go up */
  unsigned low, high;                  /* percent: 1 <= low < high <= 50 */
  uint64_t rate;                       /* bytes a second, 0: no limit */
};

struct demote_status {
  enum demote_state state;
  uint64_t demoted;                    /* copies moved down, since start */
  uint64_t promoted;                   /* copies moved up, since start */
  uint64_t rate;                       /* copies moved (down and up)
                                          over the last second */
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

/* The process is stopping: tell it to stop after the move it is
 * making, without waiting (demote_stop waits).  NULL is accepted.
 */
extern void demote_halt (struct demote *d);

/* Stop it and free it.  NULL is accepted. */
extern void demote_stop (struct demote *d);

extern const char *demote_state_name (enum demote_state state);

#endif /* SWAPTIER_DEMOTE_H */
