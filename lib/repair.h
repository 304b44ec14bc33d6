/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: re-creating copies, in the background.
 *
 * With copies=2 or 3 a page can lose a copy: its backend failed (too
 * many errors, or its server stayed away past grace=) or was drained
 * without another domain to take the copy, a read of the copy failed, or
 * a write found no other domain for it.  The repairer is one thread that
 * finds such pages and gives them their copies back through the mover
 * (mover.h): the copies on failed backends leave them, missing copies
 * are re-created, always on a domain that the page's other copies are
 * not in.  A copy on a failed backend that finds no new home stays: it
 * may still read.
 *
 * It wakes once a second; when engine_degraded or the copies held by
 * failed backends (tierset_failed_used) say there is work, it walks the
 * page map from the start, copying at most rate bytes a second (0: no
 * limit; pages read and left as they were count too), and sleeping a
 * millisecond before each move while client requests are in progress,
 * so that they go first.  A walk that could re-create nothing (no
 * domain has room) is tried again after REPAIR_RETRY_S seconds, each
 * next fruitless one after twice as long, up to REPAIR_RETRY_MAX_S, or
 * once a backend was added.  Only pages in use are read and written.
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_REPAIR_H
#define SWAPTIER_REPAIR_H

#include <stdint.h>

#include "engine.h"
#include "tierset.h"

#define REPAIR_RATE_DEFAULT (64 * 1024 * 1024) /* bytes a second */
#define REPAIR_RETRY_S 5                /* first wait after a fruitless walk */
#define REPAIR_RETRY_MAX_S 300

enum repair_state {
  REPAIR_IDLE,                         /* nothing to do */
  REPAIR_RUNNING,                      /* walking the map */
  REPAIR_WAITING,                      /* work left that no backend can
                                          take now */
};

struct repair_status {
  enum repair_state state;
  uint64_t degraded;                   /* copies to re-create now */
  uint64_t recreated;                  /* copies re-created, since start */
  uint64_t lost;                       /* pages found lost meanwhile */
  uint64_t rate;                       /* copies a second, lately */
  uint64_t limit;                      /* bytes a second, 0: none */
};

struct repair;

/* Start the repairer of engine e over tier set ts (the caller frees it
 * before both), copying at most rate bytes a second.  NULL after
 * log_error on failure.
 */
extern struct repair *repair_start (struct engine *e, struct tierset *ts,
                                    uint64_t rate);

/* Where it is.  NULL (no repairer: copies=1) reports idle, nothing to
 * do.
 */
extern void repair_status (struct repair *r, struct repair_status *st);

/* Copies that pages lack, to re-create: the pages the engine counts
 * degraded plus the copies held by failed backends (for copies=1,
 * none: a failed backend's pages have nowhere else to be).
 */
extern uint64_t repair_pending (struct engine *e, struct tierset *ts);

/* The process is stopping: tell it to stop after the move it is
 * making, without waiting (repair_stop waits).  NULL is accepted.
 */
extern void repair_halt (struct repair *r);

/* Stop it and free it.  NULL is accepted. */
extern void repair_stop (struct repair *r);

extern const char *repair_state_name (enum repair_state state);

#endif /* SWAPTIER_REPAIR_H */
