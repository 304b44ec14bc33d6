/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: removing a backend while the device is in use.
 *
 * A drain empties one backend, then removes it.  tierset_drain_begin
 * stops allocations there, refusing when the other backends lack room
 * for its pages.  A thread then waits for the requests that may have
 * allocated there before (engine_sync), moves every copy off it with the
 * mover (mover.h), one stripe unit at most at a time, waits again for
 * the requests in progress (one may still be using a slot it looked up
 * before), and closes it with tierset_remove.  A page whose only copy
 * moves is written with FUA, so it is as durable where it goes as it
 * was where it came from before its old slot is freed.  Client requests
 * go on meanwhile: a request waits at most for one move of its own
 * pages.  A page whose copies all fail to read becomes LOST, as on any
 * read; bad slots stay behind and vanish with the backend.  With
 * copies, a page's copy on the backend moves to a domain none of its
 * other copies is in; when none has room the copy is dropped (the page
 * is degraded until the repairer re-creates it).  A removal that would
 * leave fewer domains than copies is refused, and so is one that would
 * leave the others unable to hold the whole device, unless forced.  A
 * drain may be paced (a limit in bytes a second, lib/background.h's
 * pace) and cancelled, which puts the backend back in service.
 *
 * All functions are thread safe.
 */

#ifndef SWAPTIER_DRAIN_H
#define SWAPTIER_DRAIN_H

#include <stdint.h>

#include "engine.h"
#include "tierset.h"

enum drain_state {
  DRAIN_RUNNING,
  DRAIN_DONE,                          /* backend removed */
  DRAIN_FAILED,                        /* backend back in service */
  DRAIN_STOPPED,                       /* by drain_destroy: likewise */
  DRAIN_CANCELLED,                     /* by drain_cancel: likewise */
};

struct drain_status {
  unsigned id;                         /* the backend */
  enum drain_state state;
  uint64_t total;                      /* its slots in use at the start */
  uint64_t remaining;                  /* its slots in use now */
  uint64_t moved, lost;                /* pages moved, pages lost */
  uint64_t dropped;                    /* pages that kept fewer copies:
                                          no other domain took one */
  uint64_t rate;                       /* pages moved a second, lately */
  uint64_t limit;                      /* bytes a second, 0: none */
  uint64_t elapsed_ms;                 /* since it started */
  char error[256];                     /* DRAIN_FAILED: why */
};

struct drain;

/* Start draining backend id of ts, the tier set under engine e, keeping
 * spare slots free on the others (the reserve: at least engine_spare),
 * moving at most limit bytes a second (0: as fast as it goes).  NULL
 * after log_error if it is refused (see tierset_drain_begin), and,
 * unless force, when the others would hold fewer than the device's
 * pages and the spare.
 */
extern struct drain *drain_start (struct engine *e, struct tierset *ts,
                                  unsigned id, uint64_t spare,
                                  uint64_t limit, bool force);

/* Stop a running drain after the move it is making: the backend goes
 * back in service (the pages moved stay where they went) and the state
 * becomes DRAIN_CANCELLED.  False if it was not running.
 */
extern bool drain_cancel (struct drain *d);

/* Where the drain is. */
extern void drain_status (struct drain *d, struct drain_status *st);

/* Stop the drain if it is still running, wait for its thread and free
 * it.  NULL is accepted.
 */
extern void drain_destroy (struct drain *d);

/* Name of a state, as shown to users. */
extern const char *drain_state_name (enum drain_state state);

#endif /* SWAPTIER_DRAIN_H */
