/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the mover, the one way a page's data changes slots in the
 * background.
 *
 * Draining a backend, re-creating the copies that pages lost, and (next)
 * sending cold pages down a tier are one operation: under the range lock
 * held for writing, read a run of pages (from their best copy, falling
 * back to the others as any read does), write new copies where the
 * placement rules say (with FUA unless a copy of the page stays where
 * it is), publish them and free the slots they
 * replace.  Client requests go on meanwhile and wait at most for the one
 * run (at most a stripe unit) being moved.  What differs between the
 * users is only the selection: which copies leave (mover_select.leaves),
 * whether a copy that leaves and finds no new home is dropped anyway
 * (a drain: the backend goes away) or stays (a repair: a failed
 * backend's copy may still read), whether a copy that fails to read is
 * given up as a client read would (drain, repair) or the page left as
 * it is (keep: demotion and promotion, which must not cost a page), and whether missing copies are
 * re-created (fill), which pages take part at all (wants, e.g. the
 * cold ones), and where new copies may go (below a priority for a
 * demotion, on a higher one for a promotion).  New copies go outside the domains of the copies that
 * stay.
 */

#ifndef SWAPTIER_MOVER_H
#define SWAPTIER_MOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "page.h"

struct mover_select {
  /* Whether the copy in slot s (in use) must leave it. */
  bool (*leaves) (void *opaque, slot_t s);
  /* Whether page takes part (NULL: every page). */
  bool (*wants) (void *opaque, uint64_t page);
  /* Told of each run of n copies moved from slot from (NULL: no one). */
  void (*moved) (void *opaque, slot_t from, uint32_t n);
  void *opaque;
  bool must_leave;                     /* drop a copy that finds no home */
  bool keep;                           /* a page that does not read now
                                          stays as it is: no copy given
                                          up, none lost (a move only
                                          worth making) */
  bool fill;                           /* re-create missing copies */
  bool within;                         /* new copies only on priorities of
                                          win, in domains room */
  struct tier_window win;
  domain_mask room;
};

/* What one mover_move did. */
struct mover_result {
  uint64_t next;                       /* first page not examined */
  uint32_t moved;                      /* pages given new copies */
  uint32_t copies;                     /* new copies written (pages) */
  uint32_t dropped;                    /* pages that lost a copy for want
                                          of another domain */
  uint32_t lost;                       /* pages whose every copy failed
                                          to read */
  uint32_t stuck;                      /* pages left as they were: no
                                          backend could take a copy */
};

/* Find the first page at or after page that the selection says needs
 * work, and do it for that page and the pages after it in its stripe
 * unit whose copies lie in the same places.  Returns 1 and fills *res,
 * 0 if no page from page on needs work, or -1 with errno set when a copy
 * had to leave, no backend could take it, and the page had no other
 * (the pages not moved yet stay where they were).
 */
extern int mover_move (struct engine *e, uint64_t page,
                       const struct mover_select *sel,
                       struct mover_result *res);

/* mover_move for page alone (and the pages after it in its stripe
 * unit of its shape that the selection wants): 0 if it needs no work.
 */
extern int mover_move_page (struct engine *e, uint64_t page,
                            const struct mover_select *sel,
                            struct mover_result *res);

/* Call fn (opaque) for each page that needs work under the selection,
 * with the number of its copies that would leave, looked at without the
 * lock (a census, not a promise).  Stops and returns false as soon as
 * fn does; else returns true.
 */
extern bool mover_census (struct engine *e, const struct mover_select *sel,
                          bool (*fn) (void *opaque, uint64_t page,
                                      unsigned leave),
                          void *opaque);

#endif /* SWAPTIER_MOVER_H */
