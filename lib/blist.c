/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: radix bitmap slot allocator.
 *
 * Layout.  Level 0 is an array of 64-bit words, one bit per slot, set when
 * the slot is free.  A node of level k >= 1 covers 64^(k+1) slots and has 64
 * children of level k-1; for each child it keeps one bit in "anyfree" (the
 * child has a free slot) and one in "allfree" (every slot of the child is
 * free), and for itself a "bighint", an upper bound on the longest free run
 * lying wholly inside the node.  The root is the single node of the top
 * level.  Slots past nslots (padding in the last word and the missing
 * children of the last nodes) count as used, so no free run ever reaches
 * past the end and nothing walks into storage that does not exist.
 *
 * The anyfree/allfree bits are exact at all times.  A bighint only has to
 * stay an upper bound: allocation never raises a run length, a free raises
 * the hint of each node it touches to the clipped length of the merged run,
 * and a search that examined a whole node without finding a run of length
 * min lowers that node's hint to min-1.
 */

#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "blist.h"

#define BLIST_SHIFT 6                  /* log2 of the radix */
#define BLIST_RADIX 64                 /* children per node, slots per word */
#define BLIST_MAX_HEIGHT 5             /* 64^6 = 2^36 >= BLIST_MAX_SLOTS */
#define BLIST_ALL UINT64_MAX           /* a word or bitmap with every bit set */

struct blist_meta {
  uint64_t anyfree;                    /* bit i: child i has a free slot */
  uint64_t allfree;                    /* bit i: child i is entirely free */
  uint64_t bighint;                    /* >= longest free run inside node */
};

struct blist {
  uint64_t nslots;
  uint64_t nfree;
  uint64_t cursor;                     /* next-fit: where searches begin */
  unsigned height;                     /* meta levels, 1 .. BLIST_MAX_HEIGHT */
  size_t memsize;                      /* bytes held, this struct included */
  uint64_t *word;                      /* level 0 */
  struct blist_meta *meta[BLIST_MAX_HEIGHT + 1]; /* meta[k], k >= 1 */
};

/* Parameters and progress of one next-fit search. */
struct blist_search {
  uint64_t min;                        /* run length wanted */
  uint64_t lo, hi;                     /* candidate slots: [lo, hi) */
  uint64_t carry;                      /* free slots just before the scan
                                          position, none below lo */
};

/* Number of slot-index bits one node of level k covers (k = 0: a word). */
static inline unsigned
blist_shift (unsigned k)
{
  return BLIST_SHIFT * (k + 1);
}

/* Number of nodes at level k (k = 0: words) for nslots slots. */
static inline uint64_t
blist_level_count (uint64_t nslots, unsigned k)
{
  return ((nslots - 1) >> blist_shift (k)) + 1;
}

/* Bit i (0 .. 63) alone. */
static inline uint64_t
blist_bit (unsigned i)
{
  return UINT64_C (1) << i;
}

/* Bits at positions >= i (i = 0 .. 64). */
static inline uint64_t
blist_bits_from (unsigned i)
{
  return i >= 64 ? 0 : BLIST_ALL << i;
}

/* Bits at positions < i (i = 0 .. 64). */
static inline uint64_t
blist_bits_below (unsigned i)
{
  return i >= 64 ? BLIST_ALL : blist_bit (i) - 1;
}

/* Starts of the runs of at least min (1 .. 64) set bits lying wholly inside
 * the word: bit i of the result is set iff bits i .. i+min-1 are all set.
 */
static inline uint64_t
blist_word_runs (uint64_t bits, uint64_t min)
{
  uint64_t have = 1;

  while (have < min && bits) {
    uint64_t step = have < min - have ? have : min - have;

    bits &= bits >> step;
    have += step;
  }
  return bits;
}

/* Free slots at the low end of a word (0 .. 64). */
static inline unsigned
blist_word_prefix (uint64_t w)
{
  return w == BLIST_ALL ? 64 : __builtin_ctzll (~w);
}

/* Free slots at the high end of a word (0 .. 64). */
static inline unsigned
blist_word_suffix (uint64_t w)
{
  return w == BLIST_ALL ? 64 : __builtin_clzll (~w);
}

/* After word w changed, make the anyfree/allfree bits of its ancestors
 * agree with it again.  Stops at the first ancestor whose own summary did
 * not change, so the cost is O(1) amortized and O(height) at worst.
 */
static void
blist_propagate (struct blist *bl, uint64_t w)
{
  bool any = bl->word[w] != 0;
  bool all = bl->word[w] == BLIST_ALL;
  uint64_t idx = w;
  unsigned k;

  for (k = 1; k <= bl->height; k++) {
    struct blist_meta *node = &bl->meta[k][idx >> BLIST_SHIFT];
    uint64_t bit = blist_bit (idx & (BLIST_RADIX - 1));
    bool old_any = node->anyfree != 0;
    bool old_all = node->allfree == BLIST_ALL;

    node->anyfree = any ? node->anyfree | bit : node->anyfree & ~bit;
    node->allfree = all ? node->allfree | bit : node->allfree & ~bit;
    any = node->anyfree != 0;
    all = node->allfree == BLIST_ALL;
    if (any == old_any && all == old_all)
      return;
    idx >>= BLIST_SHIFT;
  }
}

/* The bits of the slots [start, start+n) when they lie in one word. */
static inline uint64_t
blist_word_mask (uint64_t start, uint64_t n)
{
  return blist_bits_below (n) << (start & (BLIST_RADIX - 1));
}

/* Store a new value in word w and, if it became or stopped being empty
 * or full, make the summaries above it agree.
 */
static inline void
blist_store_word (struct blist *bl, uint64_t w, uint64_t value)
{
  uint64_t old = bl->word[w];

  bl->word[w] = value;
  if ((old == 0) != (value == 0) || (old == BLIST_ALL) != (value == BLIST_ALL))
    blist_propagate (bl, w);
}

/* Set every slot of [start, start+n) free (to_free) or used.  The range
 * must be inside the blist.  Keeps the anyfree/allfree bits exact; the
 * caller adjusts nfree and the hints.
 */
static void __attribute__ ((noinline))
blist_set_words (struct blist *bl, uint64_t start, uint64_t n, bool to_free)
{
  uint64_t end = start + n;
  uint64_t w;

  for (w = start >> BLIST_SHIFT; w <= (end - 1) >> BLIST_SHIFT; w++) {
    uint64_t ws = w << BLIST_SHIFT;
    uint64_t mask = BLIST_ALL;

    if (ws < start)
      mask &= blist_bits_from (start - ws);
    if (end - ws < 64)
      mask &= blist_bits_below (end - ws);
    blist_store_word (bl, w, to_free ? bl->word[w] | mask
                      : bl->word[w] & ~mask);
  }
}

/* blist_set_words, with the common case of a range inside one word
 * inline.
 */
static inline void
blist_set_range (struct blist *bl, uint64_t start, uint64_t n, bool to_free)
{
  uint64_t w = start >> BLIST_SHIFT;

  if ((start + n - 1) >> BLIST_SHIFT == w) {
    uint64_t mask = blist_word_mask (start, n);

    blist_store_word (bl, w, to_free ? bl->word[w] | mask
                      : bl->word[w] & ~mask);
  }
  else
    blist_set_words (bl, start, n, to_free);
}

/* Number of free slots in [start, start+n), a range inside the blist;
 * with any_only, just 0 or 1 for none or some.
 */
static uint64_t __attribute__ ((noinline))
blist_count_free (const struct blist *bl, uint64_t start, uint64_t n,
                  bool any_only)
{
  uint64_t end = start + n;
  uint64_t w, count = 0;

  for (w = start >> BLIST_SHIFT; w <= (end - 1) >> BLIST_SHIFT; w++) {
    uint64_t ws = w << BLIST_SHIFT;
    uint64_t mask = BLIST_ALL;

    if (ws < start)
      mask &= blist_bits_from (start - ws);
    if (end - ws < 64)
      mask &= blist_bits_below (end - ws);
    if (any_only) {
      if (bl->word[w] & mask)
        return 1;
    }
    else
      count += __builtin_popcountll (bl->word[w] & mask);
  }
  return count;
}

/* Whether [start, start+n), inside the blist, holds a free slot; the
 * common case of one word inline.
 */
static inline bool
blist_any_free (const struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t w = start >> BLIST_SHIFT;

  if ((start + n - 1) >> BLIST_SHIFT == w)
    return (bl->word[w] & blist_word_mask (start, n)) != 0;
  return blist_count_free (bl, start, n, true) != 0;
}

/* The first slot in [p, limit) that is free (want_free) or used, or limit
 * if there is none.  Slots past nslots count as used.  O(height).
 */
static uint64_t
blist_find_next (const struct blist *bl, uint64_t p, uint64_t limit,
                 bool want_free)
{
  uint64_t idx, bits, found;
  unsigned k;

  if (p >= limit)
    return limit;
  if (p >= bl->nslots)
    return want_free ? limit : p;

  /* The word holding p. */
  idx = p >> BLIST_SHIFT;
  bits = want_free ? bl->word[idx] : ~bl->word[idx];
  bits &= blist_bits_from (p & (BLIST_RADIX - 1));
  if (bits) {
    found = (idx << BLIST_SHIFT) + __builtin_ctzll (bits);
    return found < limit ? found : limit;
  }

  /* Climb until a later sibling has what we want. */
  for (k = 1; k <= bl->height; k++) {
    const struct blist_meta *node = &bl->meta[k][idx >> BLIST_SHIFT];
    unsigned i = idx & (BLIST_RADIX - 1);

    if (((idx + 1) << blist_shift (k - 1)) >= limit)
      return limit;
    bits = want_free ? node->anyfree : ~node->allfree;
    bits &= blist_bits_from (i + 1);
    if (bits) {
      idx = (idx & ~(uint64_t) (BLIST_RADIX - 1)) + __builtin_ctzll (bits);
      break;
    }
    idx >>= BLIST_SHIFT;
  }
  if (k > bl->height)
    return want_free ? limit : (bl->nslots < limit ? bl->nslots : limit);

  /* Descend into the first child that has it; a missing child (only
   * reachable when looking for a used slot) starts at or past nslots.
   */
  for (;;) {
    uint64_t start = idx << blist_shift (k - 1);

    if (start >= limit)
      return limit;
    if (start >= bl->nslots)
      return bl->nslots;
    if (--k == 0)
      break;
    bits = want_free ? bl->meta[k][idx].anyfree : ~bl->meta[k][idx].allfree;
    idx = (idx << BLIST_SHIFT) + __builtin_ctzll (bits);
  }
  bits = want_free ? bl->word[idx] : ~bl->word[idx];
  found = (idx << BLIST_SHIFT) + __builtin_ctzll (bits);
  return found < limit ? found : limit;
}

/* The start of the free run that ends just before p: the least a <= p
 * such that [a, p) is all free.  O(height).
 */
static uint64_t
blist_run_start (const struct blist *bl, uint64_t p)
{
  uint64_t idx, bits;
  unsigned k;

  if (p == 0)
    return 0;
  idx = (p - 1) >> BLIST_SHIFT;
  bits = ~bl->word[idx] & blist_bits_below (((p - 1) & (BLIST_RADIX - 1)) + 1);
  if (bits)
    return (idx << BLIST_SHIFT) + 64 - __builtin_clzll (bits);

  /* Climb until an earlier sibling is not entirely free. */
  for (k = 1; k <= bl->height; k++) {
    const struct blist_meta *node = &bl->meta[k][idx >> BLIST_SHIFT];

    bits = ~node->allfree & blist_bits_below (idx & (BLIST_RADIX - 1));
    if (bits) {
      idx = (idx & ~(uint64_t) (BLIST_RADIX - 1)) + 63 - __builtin_clzll (bits);
      break;
    }
    idx >>= BLIST_SHIFT;
  }
  if (k > bl->height)
    return 0;

  /* Descend into the last child that has a used slot.  Every node left
   * of an existing node exists, so no bounds check is needed here.
   */
  while (--k > 0)
    idx = (idx << BLIST_SHIFT) + 63 - __builtin_clzll (~bl->meta[k][idx].allfree);
  return (idx << BLIST_SHIFT) + 64 - __builtin_clzll (~bl->word[idx]);
}

/* Free slots at the start of node j of level k >= 1. */
static uint64_t
blist_node_prefix (const struct blist *bl, unsigned k, uint64_t j)
{
  uint64_t total = 0;

  for (;;) {
    const struct blist_meta *node = &bl->meta[k][j];
    unsigned i;

    if (node->allfree == BLIST_ALL)
      return total + (UINT64_C (1) << blist_shift (k));
    i = __builtin_ctzll (~node->allfree);
    total += (uint64_t) i << blist_shift (k - 1);
    if (!(node->anyfree & blist_bit (i)))
      return total;
    j = (j << BLIST_SHIFT) + i;
    if (--k == 0)
      return total + blist_word_prefix (bl->word[j]);
  }
}

/* Free slots at the end of node j of level k >= 1. */
static uint64_t
blist_node_suffix (const struct blist *bl, unsigned k, uint64_t j)
{
  uint64_t total = 0;

  for (;;) {
    const struct blist_meta *node = &bl->meta[k][j];
    unsigned i;

    if (node->allfree == BLIST_ALL)
      return total + (UINT64_C (1) << blist_shift (k));
    i = 63 - __builtin_clzll (~node->allfree);
    total += (uint64_t) (63 - i) << blist_shift (k - 1);
    if (!(node->anyfree & blist_bit (i)))
      return total;
    j = (j << BLIST_SHIFT) + i;
    if (--k == 0)
      return total + blist_word_suffix (bl->word[j]);
  }
}

/* Search the words of node j of level 1 for the first start s in the
 * window with [s, s+min) free, continuing the carried run.  Returns s, or
 * BLIST_NONE with sr->carry set to the free run reaching the node's end.
 */
static uint64_t
blist_search_words (const struct blist *bl, uint64_t j, struct blist_search *sr)
{
  const struct blist_meta *node = &bl->meta[1][j];
  uint64_t base = j << blist_shift (1);
  uint64_t from = sr->lo > base ? sr->lo : base;
  uint64_t to = sr->hi < base + (UINT64_C (1) << blist_shift (1))
    ? sr->hi : base + (UINT64_C (1) << blist_shift (1));
  unsigned i;

  for (i = (from - base) >> BLIST_SHIFT; i <= (to - 1 - base) >> BLIST_SHIFT;
       i++) {
    uint64_t ws = base + ((uint64_t) i << BLIST_SHIFT);
    uint64_t bits;
    unsigned prefix;

    if (!(node->anyfree & blist_bit (i))) {
      sr->carry = 0;
      continue;
    }
    bits = bl->word[(j << BLIST_SHIFT) + i];
    if (ws < sr->lo)
      bits &= blist_bits_from (sr->lo - ws);
    if (sr->hi - ws < 64)
      bits &= blist_bits_below (sr->hi - ws);

    prefix = blist_word_prefix (bits);
    if (sr->carry + prefix >= sr->min)
      return ws - sr->carry;
    if (sr->min <= 64) {
      uint64_t starts = blist_word_runs (bits, sr->min);

      if (starts)
        return ws + __builtin_ctzll (starts);
    }
    sr->carry = prefix == 64 ? sr->carry + 64 : blist_word_suffix (bits);
  }
  return BLIST_NONE;
}

/* Search node j of level k >= 1 (its part inside the window) for the first
 * start s >= sr->lo with [s, s+min) free, continuing the carried run.
 * Returns s, or BLIST_NONE with sr->carry set to the free run reaching the
 * end of the part searched.  Children examined in full without success get
 * their hint lowered below min.
 */
static uint64_t
blist_search_node (struct blist *bl, unsigned k, uint64_t j,
                   struct blist_search *sr)
{
  const struct blist_meta *node = &bl->meta[k][j];
  unsigned cshift = blist_shift (k - 1);
  uint64_t csize = UINT64_C (1) << cshift;
  uint64_t base = j << blist_shift (k);
  uint64_t from = sr->lo > base ? sr->lo : base;
  uint64_t to = sr->hi - base < (csize << BLIST_SHIFT) ? sr->hi
    : base + (csize << BLIST_SHIFT);
  unsigned i;

  if (k == 1)
    return blist_search_words (bl, j, sr);

  for (i = (from - base) >> cshift; i <= (to - 1 - base) >> cshift; i++) {
    uint64_t cs = base + ((uint64_t) i << cshift);
    uint64_t c = (j << BLIST_SHIFT) + i;
    bool whole = cs >= sr->lo && cs + csize <= sr->hi;
    struct blist_meta *child = &bl->meta[k - 1][c];
    uint64_t s;

    if (!(node->anyfree & blist_bit (i))) {
      sr->carry = 0;
      continue;
    }
    if (whole && (node->allfree & blist_bit (i))) {
      sr->carry += csize;
      if (sr->carry >= sr->min)
        return cs + csize - sr->carry;
      continue;
    }
    if (whole && child->bighint < sr->min) {
      /* Only runs crossing the child's edges can be long enough. */
      if (sr->carry > 0 && sr->carry + blist_node_prefix (bl, k - 1, c) >= sr->min)
        return cs - sr->carry;
      sr->carry = blist_node_suffix (bl, k - 1, c);
      continue;
    }
    s = blist_search_node (bl, k - 1, c, sr);
    if (s != BLIST_NONE)
      return s;
    if (whole)
      child->bighint = sr->min - 1;
  }
  return BLIST_NONE;
}

/* The first start s in [lo, hi) with [s, s+min) free and inside [lo, hi),
 * or BLIST_NONE.  hi <= nslots.
 */
static uint64_t
blist_search (struct blist *bl, uint64_t min, uint64_t lo, uint64_t hi)
{
  struct blist_search sr = { .min = min, .lo = lo, .hi = hi, .carry = 0 };

  if (lo >= hi || hi - lo < min)
    return BLIST_NONE;
  return blist_search_node (bl, bl->height, 0, &sr);
}

/* The lowest s >= cursor with [s, s+min) free inside the cursor's word,
 * or BLIST_NONE.  The common case of a small allocation costs one word.
 */
static uint64_t
blist_search_cursor_word (const struct blist *bl, uint64_t min)
{
  uint64_t w = bl->cursor >> BLIST_SHIFT;
  uint64_t bits, starts;

  if (min > 64)
    return BLIST_NONE;
  bits = bl->word[w] & blist_bits_from (bl->cursor & (BLIST_RADIX - 1));
  starts = blist_word_runs (bits, min);
  if (!starts)
    return BLIST_NONE;
  return (w << BLIST_SHIFT) + __builtin_ctzll (starts);
}

/* The common case of blist_raise_hints: the merged free run lies strictly
 * inside one word, so it has the same length in every node holding it.
 * Returns false, doing nothing, in every other case.
 */
static inline bool
blist_raise_hints_in_word (struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t w = start >> BLIST_SHIFT;
  unsigned lo = start & (BLIST_RADIX - 1);
  unsigned hi = lo + n;
  uint64_t word = bl->word[w], len;
  unsigned below, above, k;

  if (lo == 0 || hi >= 64)
    return false;
  below = __builtin_clzll (~(word << (64 - lo)));
  above = __builtin_ctzll (~(word >> hi));
  if (below == lo || hi + above == 64)
    return false;
  len = below + n + above;
  for (k = 1; k <= bl->height; k++) {
    w >>= BLIST_SHIFT;
    if (bl->meta[k][w].bighint < len)
      bl->meta[k][w].bighint = len;
  }
  return true;
}

/* After [start, start+n) became free, raise the hint of every node holding
 * one of those slots to the length of the merged free run inside it.
 */
static void __attribute__ ((noinline))
blist_raise_hints (struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t a, b;
  unsigned k;

  a = blist_run_start (bl, start);
  b = blist_find_next (bl, start + n, bl->nslots, false);

  for (k = 1; k <= bl->height; k++) {
    unsigned shift = blist_shift (k);
    uint64_t j;

    for (j = start >> shift; j <= (start + n - 1) >> shift; j++) {
      uint64_t ns = j << shift;
      uint64_t ne = ns + (UINT64_C (1) << shift);
      uint64_t len = (b < ne ? b : ne) - (a > ns ? a : ns);

      if (bl->meta[k][j].bighint < len)
        bl->meta[k][j].bighint = len;
    }
  }
}

struct blist *
blist_create (uint64_t nslots)
{
  struct blist *bl;
  size_t size, nwords;
  unsigned k, height;
  char *p;

  if (nslots == 0 || nslots > BLIST_MAX_SLOTS) {
    errno = EINVAL;
    return NULL;
  }
  height = 1;
  while (blist_level_count (nslots, height) > 1)
    height++;

  nwords = blist_level_count (nslots, 0);
  size = sizeof *bl + nwords * sizeof (uint64_t);
  for (k = 1; k <= height; k++)
    size += blist_level_count (nslots, k) * sizeof (struct blist_meta);
  p = malloc (size);
  if (p == NULL)
    return NULL;

  bl = (struct blist *) p;
  *bl = (struct blist) { .nslots = nslots, .height = height, .memsize = size };
  p += sizeof *bl;
  bl->word = (uint64_t *) p;
  p += nwords * sizeof (uint64_t);
  for (k = 1; k <= height; k++) {
    bl->meta[k] = (struct blist_meta *) p;
    p += blist_level_count (nslots, k) * sizeof (struct blist_meta);
  }

  /* Start with every slot used, then free them all: one code path builds
   * the bits and hints.
   */
  for (size_t w = 0; w < nwords; w++)
    bl->word[w] = 0;
  for (k = 1; k <= height; k++) {
    for (uint64_t j = 0; j < blist_level_count (nslots, k); j++)
      bl->meta[k][j] = (struct blist_meta) { 0 };
  }
  blist_set_range (bl, 0, nslots, true);
  bl->nfree = nslots;
  blist_raise_hints (bl, 0, nslots);
  return bl;
}

void
blist_destroy (struct blist *bl)
{
  free (bl);
}

uint64_t
blist_alloc (struct blist *bl, uint64_t min, uint64_t max, uint64_t *len)
{
  struct blist_meta *root = &bl->meta[bl->height][0];
  uint64_t s, limit, end;

  if (min == 0 || min > max) {
    errno = EINVAL;
    return BLIST_NONE;
  }
  if (min > bl->nfree || min > root->bighint) {
    errno = ENOSPC;
    return BLIST_NONE;
  }

  s = blist_search_cursor_word (bl, min);
  if (s == BLIST_NONE)
    s = blist_search (bl, min, bl->cursor, bl->nslots);
  if (s == BLIST_NONE && bl->cursor > 0) {
    uint64_t hi = bl->cursor + min - 1;

    s = blist_search (bl, min, 0, hi < bl->nslots ? hi : bl->nslots);
  }
  if (s == BLIST_NONE) {
    /* Both passes together tried every start. */
    root->bighint = min - 1;
    errno = ENOSPC;
    return BLIST_NONE;
  }

  limit = max < bl->nslots - s ? s + max : bl->nslots;
  end = blist_find_next (bl, s + min, limit, false);
  blist_set_range (bl, s, end - s, false);
  bl->nfree -= end - s;
  bl->cursor = end < bl->nslots ? end : 0;
  *len = end - s;
  return s;
}

int
blist_free (struct blist *bl, uint64_t start, uint64_t n)
{
  if (n == 0 || start >= bl->nslots || n > bl->nslots - start) {
    errno = ERANGE;
    return -1;
  }
  if (blist_any_free (bl, start, n)) {
    errno = EINVAL;
    return -1;
  }
  blist_set_range (bl, start, n, true);
  bl->nfree += n;
  if (!blist_raise_hints_in_word (bl, start, n))
    blist_raise_hints (bl, start, n);
  return 0;
}

int64_t
blist_fill (struct blist *bl, uint64_t start, uint64_t n)
{
  uint64_t filled;

  if (n == 0 || start >= bl->nslots || n > bl->nslots - start) {
    errno = ERANGE;
    return -1;
  }
  filled = blist_count_free (bl, start, n, false);
  blist_set_range (bl, start, n, false);
  bl->nfree -= filled;
  return filled;
}

uint64_t
blist_size (const struct blist *bl)
{
  return bl->nslots;
}

uint64_t
blist_free_count (const struct blist *bl)
{
  return bl->nfree;
}

/* Each search for a run longer than the best so far starts where the last
 * one found ended: every start before that point has a shorter run, so the
 * searches together make one pass, pruned by the hints.
 */
uint64_t
blist_largest_run (struct blist *bl)
{
  struct blist_meta *root = &bl->meta[bl->height][0];
  uint64_t best = 0, pos = 0;

  while (best < bl->nfree && best < root->bighint) {
    uint64_t s = blist_search (bl, best + 1, pos, bl->nslots);

    if (s == BLIST_NONE) {
      root->bighint = best;
      break;
    }
    pos = blist_find_next (bl, s, bl->nslots, false);
    best = pos - s;
  }
  return best;
}

/* Record one maximal free run of len slots in the summary. */
static void
blist_frag_add (struct blist_frag *frag, uint64_t len)
{
  frag->nruns++;
  frag->nfree += len;
  if (len > frag->largest)
    frag->largest = len;
  frag->hist[63 - __builtin_clzll (len)]++;
}

void
blist_frag (const struct blist *bl, struct blist_frag *frag)
{
  uint64_t nwords = blist_level_count (bl->nslots, 0);
  uint64_t w, carry = 0;

  *frag = (struct blist_frag) { 0 };
  for (w = 0; w < nwords; w++) {
    uint64_t bits = bl->word[w];
    unsigned pos = 0;

    if (bits == BLIST_ALL) {
      carry += 64;
      continue;
    }
    /* Walk alternating used and free stretches of this word. */
    while (pos < 64) {
      uint64_t rest = bits >> pos;
      unsigned ones;

      if (rest == 0)
        break;
      if (!(rest & 1)) {
        pos += __builtin_ctzll (rest);
        if (carry > 0)
          blist_frag_add (frag, carry);
        carry = 0;
        rest = bits >> pos;
      }
      ones = __builtin_ctzll (~rest);
      carry += ones;
      pos += ones;
      if (pos < 64) {
        blist_frag_add (frag, carry);
        carry = 0;
      }
    }
    if (pos < 64 && carry > 0) {
      blist_frag_add (frag, carry);
      carry = 0;
    }
  }
  if (carry > 0)
    blist_frag_add (frag, carry);
}

size_t
blist_memory (const struct blist *bl)
{
  return bl->memsize;
}
