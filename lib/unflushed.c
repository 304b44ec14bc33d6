/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the slots of one backend written since its last good flush
 * (see unflushed.h).
 */

#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "unflushed.h"

struct unflushed {
  uint64_t nwords;                     /* 64-bit words per bitmap */
  unsigned filling;                    /* bitmap taking new writes */
  uint64_t count[2];                   /* bits set in each bitmap */
  uint64_t lo[2], hi[2];               /* no bit set outside words
                                          [lo, hi) of each bitmap */
  uint64_t *bits[2];
};

struct unflushed *
unflushed_create (uint64_t nslots)
{
  struct unflushed *u = calloc (1, sizeof *u);

  if (u == NULL) {
    log_error ("unflushed slots: %m");
    return NULL;
  }
  u->nwords = (nslots + 63) / 64;
  u->bits[0] = calloc (u->nwords ? u->nwords : 1, sizeof (uint64_t));
  u->bits[1] = calloc (u->nwords ? u->nwords : 1, sizeof (uint64_t));
  if (u->bits[0] == NULL || u->bits[1] == NULL) {
    log_error ("unflushed slots: %m");
    unflushed_destroy (u);
    return NULL;
  }
  /* Touched now, so that with locked memory no write faults it in. */
  memset (u->bits[0], 0, u->nwords * sizeof (uint64_t));
  memset (u->bits[1], 0, u->nwords * sizeof (uint64_t));
  u->lo[0] = u->lo[1] = u->nwords;
  return u;
}

void
unflushed_destroy (struct unflushed *u)
{
  if (u) {
    free (u->bits[0]);
    free (u->bits[1]);
    free (u);
  }
}

/* The mask of the bits of [slot, slot + n) inside word w, n > 0. */
static uint64_t
unflushed_mask (uint64_t w, uint64_t slot, uint64_t n)
{
  uint64_t lo = w * 64, hi = lo + 64;
  uint64_t from = slot > lo ? slot - lo : 0;
  uint64_t to = slot + n < hi ? slot + n - lo : 64;
  uint64_t mask = to == 64 ? ~UINT64_C (0) : (UINT64_C (1) << to) - 1;

  return mask & ~((UINT64_C (1) << from) - 1);
}

void
unflushed_add (struct unflushed *u, uint64_t slot, uint64_t n)
{
  unsigned f = u->filling;
  uint64_t *bits = u->bits[f];
  uint64_t w;

  if (n == 0)
    return;
  if (slot / 64 < u->lo[f])
    u->lo[f] = slot / 64;
  if ((slot + n - 1) / 64 + 1 > u->hi[f])
    u->hi[f] = (slot + n - 1) / 64 + 1;
  for (w = slot / 64; w <= (slot + n - 1) / 64; w++) {
    uint64_t mask = unflushed_mask (w, slot, n);

    u->count[f] += __builtin_popcountll (mask & ~bits[w]);
    bits[w] |= mask;
  }
}

void
unflushed_forget (struct unflushed *u, uint64_t slot, uint64_t n)
{
  uint64_t w;
  unsigned i;

  if (u->count[0] + u->count[1] == 0)
    return;
  for (w = slot / 64; n > 0 && w <= (slot + n - 1) / 64; w++) {
    uint64_t mask = unflushed_mask (w, slot, n);

    for (i = 0; i < 2; i++) {
      u->count[i] -= __builtin_popcountll (mask & u->bits[i][w]);
      u->bits[i][w] &= ~mask;
    }
  }
}

uint64_t
unflushed_begin (struct unflushed *u)
{
  uint64_t covered = u->count[u->filling];

  u->filling ^= 1;
  return covered;
}

void
unflushed_end (struct unflushed *u, bool ok)
{
  unsigned covered = u->filling ^ 1, f = u->filling;
  uint64_t *from = u->bits[covered], *to = u->bits[f];
  uint64_t lo = u->lo[covered], hi = u->hi[covered], w;

  if (lo >= hi)
    return;
  if (!ok && u->count[covered] > 0) {
    /* The bitmaps are disjoint: the counts add up. */
    for (w = lo; w < hi; w++)
      to[w] |= from[w];
    u->count[f] += u->count[covered];
    if (lo < u->lo[f])
      u->lo[f] = lo;
    if (hi > u->hi[f])
      u->hi[f] = hi;
  }
  /* Only the words that may hold bits: a flush costs what it covered,
   * not the size of the backend.
   */
  memset (from + lo, 0, (hi - lo) * sizeof (uint64_t));
  u->count[covered] = 0;
  u->lo[covered] = u->nwords;
  u->hi[covered] = 0;
}

uint64_t
unflushed_count (const struct unflushed *u)
{
  return u->count[0] + u->count[1];
}
