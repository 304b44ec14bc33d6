/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the mover.
 *
 * A run is a set of pages of one stripe unit whose entries have one
 * shape: for every copy index c, entry c of each page is entry c of the
 * first page plus its distance (a slot), or the same SLOT_NONE.  Their
 * copies are then on the same backends, so the selection says the same
 * for all of them, and one plan (what becomes of each entry) applies to
 * the whole run.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "engine-internal.h"
#include "log.h"
#include "mover.h"

/* What becomes of entry c of every page of a run. */
enum mover_action {
  MOVER_KEEP,                          /* stays (or stays SLOT_NONE) */
  MOVER_REPLACE,                       /* gets new copy plan.to[c] */
  MOVER_DROP,                          /* leaves, no new home: SLOT_NONE */
};

/* What the selection says of a page's entries, asked once: leaves()
 * of a demotion may change its mind meanwhile (a priority changed, a
 * backend failed), and the copies placed were placed for this answer.
 */
struct mover_plan {
  enum mover_action action[PAGEMAP_COPIES_MAX];
  unsigned to[PAGEMAP_COPIES_MAX];     /* index into the placed copies */
  unsigned keep, leave, missing;       /* live copies that stay, leave;
                                          entries without a copy */
  unsigned leaving;                    /* a bit per entry that leaves */
  unsigned sound;                      /* copies that stay on backends
                                          that are not failed */
  domain_mask kept_domains;
};

/* Classify the entries of page under the selection. */
static void
mover_classify (struct engine *e, uint64_t page,
                const struct mover_select *sel, struct mover_plan *plan)
{
  unsigned c;

  *plan = (struct mover_plan) { .keep = 0 };
  for (c = 0; c < e->copies; c++) {
    slot_t s = pagemap_get (e->map, page, c);

    if (s == SLOT_NONE || s == SLOT_LOST)
      plan->missing++;
    else if (sel->leaves (sel->opaque, s)) {
      plan->leave++;
      plan->leaving |= 1u << c;
    }
    else {
      plan->keep++;
      plan->kept_domains |= tierset_domain_of (e->ts, s);
      plan->sound += !tierset_slot_failed (e->ts, s);
    }
  }
}

/* Whether page needs work under the selection (looked at without the
 * lock to find pages; checked again under it).
 */
static bool
mover_needs (struct engine *e, uint64_t page, const struct mover_select *sel)
{
  struct mover_plan plan;

  if (sel->wants && !sel->wants (sel->opaque, page))
    return false;
  mover_classify (e, page, sel, &plan);
  if (plan.keep + plan.leave == 0)
    return false;                      /* unmapped or lost */
  /* Nowhere a leaving copy could go: the copies that stay hold every
   * domain that has room.
   */
  if (sel->within && (sel->room & ~plan.kept_domains) == 0)
    return false;
  return plan.leave > 0 || (sel->fill && plan.missing > 0);
}

/* The number of pages from page, before end, that have its shape and
 * that the selection wants.
 */
static uint32_t
mover_run_length (struct engine *e, uint64_t page, uint64_t end,
                  const struct mover_select *sel)
{
  uint32_t n;
  unsigned c;

  for (n = 1; page + n < end; n++) {
    if (sel->wants && !sel->wants (sel->opaque, page + n))
      break;
    for (c = 0; c < e->copies; c++) {
      slot_t s = pagemap_get (e->map, page, c);
      slot_t t = pagemap_get (e->map, page + n, c);

      if (s == SLOT_NONE || s == SLOT_LOST ? t != s : t != s + n)
        break;
    }
    if (c < e->copies)
      break;
  }
  return n;
}

/* Decide what becomes of each entry of page once pl is placed: a new
 * copy in the domain of a leaving copy replaces that one (so that a
 * leaving copy that stays never shares a domain with a new one), the
 * other new copies replace the other leaving copies, then fill the
 * entries without a copy (with fill); a leaving copy left without a
 * new home is dropped with must_leave, else it stays.
 */
static void
mover_assign (struct engine *e, uint64_t page, const struct mover_select *sel,
              const struct engine_placed *pl, bool *used,
              struct mover_plan *plan)
{
  unsigned c, k, pass;

  for (c = 0; c < e->copies; c++)
    plan->action[c] = MOVER_KEEP;
  for (pass = 0; pass < 3; pass++)
    for (c = 0; c < e->copies; c++) {
      slot_t s = pagemap_get (e->map, page, c);
      bool live = s != SLOT_NONE && s != SLOT_LOST;
      bool leaving = (plan->leaving & (1u << c)) != 0;

      if (plan->action[c] != MOVER_KEEP ||
          (pass < 2 ? !leaving : live || !sel->fill))
        continue;
      for (k = 0; k < pl->n; k++)
        if (!used[k] &&
            (pass > 0 || tierset_domain_of (e->ts, pl->first[k])
             == tierset_domain_of (e->ts, s)))
          break;
      if (k < pl->n) {
        used[k] = true;
        plan->action[c] = MOVER_REPLACE;
        plan->to[c] = k;
      }
    }
  for (c = 0; c < e->copies; c++)
    if (plan->action[c] == MOVER_KEEP && sel->must_leave &&
        (plan->leaving & (1u << c)))
      plan->action[c] = MOVER_DROP;
}

/* Give the n pages from page, read into buf and of one shape, their new
 * copies: place, write, publish, free.  Sets res->next past the pages
 * done (the allocator may give shorter runs).
 */
static int
mover_rehome (struct engine *e, unsigned idx, uint64_t page, uint32_t n,
              const char *buf, const struct mover_select *sel,
              struct mover_result *res)
{
  struct engine_free_run run[PAGEMAP_COPIES_MAX] = { { 0 } };
  struct engine_placed pl = { .n = 0 };
  struct mover_plan plan;
  bool used[PAGEMAP_COPIES_MAX] = { false };
  unsigned c, k, want, sound, dropped = 0;
  uint32_t i, len = n;

  mover_classify (e, page, sel, &plan);
  sound = plan.sound;
  want = plan.leave + (sel->fill ? plan.missing : 0);
  /* A sound copy that stays keeps the page as durable as it was, so the
   * new ones can wait for the next flush; without one, they are written
   * with FUA: the old slots are freed at once.
   */
  if (engine_place (e, idx, buf, &len, want, plan.kept_domains,
                    sel->within ? sel->win : TIERSET_ANY_WINDOW, sound == 0,
                    &pl) == -1) {
    pl.n = 0;
    len = n;
  }
  /* Only a sound copy may be the one a leaving copy is dropped for. */
  if (sel->must_leave && sound == 0 && pl.n < plan.leave) {
    for (c = 0; c < pl.n; c++)
      tierset_free_run (e->ts, pl.first[c], len);
    log_error ("moving page %" PRIu64 ": no other backend %s", page,
               pl.n == 0 && errno == EIO ? "that works has a free slot"
               : "has a free slot");
    errno = ENOSPC;
    return -1;
  }
  mover_assign (e, page, sel, &pl, used, &plan);
  /* A copy placed for no entry (cannot happen while the plan holds) is
   * not kept hostage.
   */
  for (k = 0; k < pl.n; k++)
    if (!used[k])
      tierset_free_run (e->ts, pl.first[k], len);
  for (c = 0; c < e->copies; c++) {
    slot_t from = pagemap_get (e->map, page, c);

    dropped += plan.action[c] == MOVER_DROP;
    if (plan.action[c] == MOVER_REPLACE && sel->moved &&
        from != SLOT_NONE && from != SLOT_LOST)
      sel->moved (sel->opaque, from, len);
  }
  for (i = 0; i < len; i++) {
    unsigned was = pagemap_live (e->map, page + i);

    for (c = 0; c < e->copies; c++) {
      slot_t to;

      if (plan.action[c] == MOVER_KEEP)
        continue;
      to = plan.action[c] == MOVER_REPLACE ? pl.first[plan.to[c]] + i
        : SLOT_NONE;
      engine_free_slot (e, &run[c], pagemap_set (e->map, page + i, c, to));
    }
    engine_count (e, was, pagemap_live (e->map, page + i));
  }
  for (c = 0; c < e->copies; c++)
    engine_free_slot (e, &run[c], SLOT_NONE);
  if (pl.n > 0)
    res->moved += len;
  else
    res->stuck += len;
  res->copies += pl.n * len;
  if (dropped > 0)
    res->dropped += len;
  res->next = page + len;
  if (swaptier_debug_map)
    log_debug ("map: pages %" PRIu64 "+%" PRIu32 " moved, %u new copies",
               page, len, pl.n);
  return 0;
}

/* Move the n pages from page (locked, of one shape, each needing work).
 * Pages that turn out lost when read are counted and left LOST.
 */
static int
mover_move_run (struct engine *e, unsigned idx, uint64_t page, uint32_t n,
                const struct mover_select *sel, struct mover_result *res)
{
  char *buf = engine_bounce (e, idx);
  uint32_t j, m;

  res->next = page + n;
  if ((sel->keep ? engine_read_pages_keep : engine_read_pages)
      (e, idx, page, n, buf) == 0) {
    /* A copy given up while reading changes a page's shape. */
    m = mover_run_length (e, page, page + n, sel);
    if (mover_needs (e, page, sel))
      return mover_rehome (e, idx, page, m, buf, sel, res);
    res->next = page + m;
    return 0;
  }
  if (n == 1) {
    /* Lost, or the process is stopping, or (keep) unreadable for now:
     * nothing to move.
     */
    if (pagemap_live (e->map, page) == 0)
      res->lost++;
    else if (sel->keep)
      res->stuck++;
    return 0;
  }
  /* One page at a time, to move what can be read. */
  for (j = 0; j < n; j++) {
    struct mover_result one = { 0 };

    if (pagemap_live (e->map, page + j) == 0) {
      res->lost++;
      continue;
    }
    if (!mover_needs (e, page + j, sel))
      continue;
    if (mover_move_run (e, idx, page + j, 1, sel, &one) == -1)
      return -1;
    res->moved += one.moved;
    res->copies += one.copies;
    res->dropped += one.dropped;
    res->lost += one.lost;
    res->stuck += one.stuck;
  }
  res->next = page + n;
  return 0;
}

/* mover_move, looking for a page that needs work only before limit. */
static int
mover_move_before (struct engine *e, uint64_t page, uint64_t limit,
                   const struct mover_select *sel, struct mover_result *res)
{
  uint64_t end;
  unsigned idx;
  int r = 0;

  while (page < limit && !mover_needs (e, page, sel))
    page++;
  if (page >= limit)
    return 0;

  end = engine_unit_end (e, page, e->npages);
  idx = rangelock_acquire (e->rl, page, end, true);
  *res = (struct mover_result) { .next = page + 1 };
  /* A request may have rewritten, trimmed or lost the page meanwhile. */
  if (mover_needs (e, page, sel))
    r = mover_move_run (e, idx, page, mover_run_length (e, page, end, sel),
                        sel, res);
  rangelock_release (e->rl, idx);
  return r == -1 ? -1 : 1;
}

int
mover_move (struct engine *e, uint64_t page, const struct mover_select *sel,
            struct mover_result *res)
{
  return mover_move_before (e, page, e->npages, sel, res);
}

int
mover_move_page (struct engine *e, uint64_t page,
                 const struct mover_select *sel, struct mover_result *res)
{
  if (page >= e->npages)
    return 0;
  return mover_move_before (e, page, page + 1, sel, res);
}

bool
mover_census (struct engine *e, const struct mover_select *sel,
              bool (*fn) (void *opaque, uint64_t page, unsigned leave),
              void *opaque)
{
  struct mover_plan plan;
  uint64_t page;

  for (page = 0; page < e->npages; page++)
    if (mover_needs (e, page, sel)) {
      mover_classify (e, page, sel, &plan);
      if (!fn (opaque, page, plan.leave))
        return false;
    }
  return true;
}
