/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: how many pages the backends hold with copies.
 *
 * With copies=N every page needs N slots on N domains, and the
 * allocator places them by priority (tierset.h): the first copy on the
 * highest priority backend with room, each further one on the highest
 * priority backend of another domain.  When the top priorities belong
 * to few domains they fill up together, and once fewer than N domains
 * have room no page gets all its copies, however much room the others
 * have left.  The capacity is therefore found by running the placement:
 * chunks of pages are placed as the allocator would place them (inside
 * a priority, on the backend with the most room, which is where the
 * rotation evens out) until a chunk no longer finds N domains; the
 * chunk then halves, down to one page.
 */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>

#include "tierset-internal.h"

/* The room of one backend during the run. */
struct capacity_tier {
  int priority;
  unsigned domain;
  uint64_t room;
};

/* The backend that would take a copy of chunk pages outside the domains
 * of used, or -1.
 */
static int
capacity_pick (const struct capacity_tier *t, unsigned n, domain_mask used,
               uint64_t chunk)
{
  int best = -1;
  unsigned i;

  for (i = 0; i < n; i++) {
    if (t[i].room < chunk || (used & ((domain_mask) 1 << t[i].domain)))
      continue;
    if (best == -1 || t[i].priority > t[best].priority ||
        (t[i].priority == t[best].priority && t[i].room > t[best].room))
      best = i;
  }
  return best;
}

uint64_t
tierset_copies_capacity (struct tierset *ts, unsigned copies)
{
  struct capacity_tier t[TIERSET_MAX_TIERS];
  unsigned i, k, n = 0;
  uint64_t total = 0, pages = 0, chunk;
  int pick[TIERSET_MAX_TIERS];

  pthread_rwlock_rdlock (&ts->lock);
  for (i = 0; i < ts->ntiers; i++) {
    const struct tier *tier = ts->tier[i];

    if (tier->removed || tier->draining)
      continue;
    t[n++] = (struct capacity_tier) {
      .priority = tier->priority, .domain = tier->domain,
      .room = tier->nslots,
    };
    total += tier->nslots;
  }
  pthread_rwlock_unlock (&ts->lock);
  if (copies <= 1)
    return total;

  chunk = total / copies / 4096 + 1;
  while (chunk > 0) {
    domain_mask used = 0;

    for (k = 0; k < copies; k++) {
      pick[k] = capacity_pick (t, n, used, chunk);
      if (pick[k] == -1)
        break;
      used |= (domain_mask) 1 << t[pick[k]].domain;
    }
    if (k < copies) {
      chunk /= 2;
      continue;
    }
    for (k = 0; k < copies; k++)
      t[pick[k]].room -= chunk;
    pages += chunk;
  }
  return pages;
}
