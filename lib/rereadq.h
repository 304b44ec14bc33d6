/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the re-read queue, pages that clients read again from a
 * backend below the highest priority: the candidates for promotion.
 *
 * A fixed ring of REREADQ_SLOTS entries, each 0 (empty) or page + 1.
 * Producers (the request path, any number of threads) take the next
 * entry with one atomic add and store into it, overwriting whatever it
 * held: the queue is lossy by design, a hint that costs no lock and no
 * memory beyond the ring, and a page lost from it is only a page not
 * promoted.  The one consumer (the demoter's thread) empties each entry
 * with an atomic exchange.
 */

#ifndef SWAPTIER_REREADQ_H
#define SWAPTIER_REREADQ_H

#include <stdbool.h>
#include <stdint.h>

#define REREADQ_SLOTS 1024

struct rereadq {
  uint64_t entry[REREADQ_SLOTS];       /* atomics: 0 or page + 1 */
  unsigned head;                       /* atomic: next entry to fill */
};

/* Queue page (lossy: may overwrite an older page not taken yet). */
static inline void
rereadq_push (struct rereadq *q, uint64_t page)
{
  unsigned i = __atomic_fetch_add (&q->head, 1, __ATOMIC_RELAXED);

  __atomic_store_n (&q->entry[i % REREADQ_SLOTS], page + 1,
                    __ATOMIC_RELAXED);
}

/* Take the page of entry i, if any, leaving it empty. */
static inline bool
rereadq_take (struct rereadq *q, unsigned i, uint64_t *page)
{
  uint64_t v = __atomic_exchange_n (&q->entry[i], 0, __ATOMIC_RELAXED);

  *page = v - 1;
  return v != 0;
}

#endif /* SWAPTIER_REREADQ_H */
