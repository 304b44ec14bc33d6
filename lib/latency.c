/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: latency histograms (see latency.h for the buckets). */

#include <config.h>

#include <time.h>

#include "latency.h"

/* The bucket of a time of ns nanoseconds. */
static unsigned
latency_bucket (uint64_t ns)
{
  unsigned h, b;

  if (ns < 1024)
    return 0;
  h = 63 - __builtin_clzll (ns);
  b = 1 + 4 * (h - 10) + ((ns >> (h - 2)) & 3);
  return b < LATENCY_BUCKETS ? b : LATENCY_BUCKETS - 1;
}

/* The lower and upper bounds of bucket b (b >= 1), in nanoseconds. */
static void
latency_bounds (unsigned b, uint64_t *lo, uint64_t *hi)
{
  unsigned h = 10 + (b - 1) / 4, s = (b - 1) % 4;

  *lo = (uint64_t) (4 + s) << (h - 2);
  *hi = (uint64_t) (5 + s) << (h - 2);
}

uint64_t
latency_now_ns (void)
{
  struct timespec t;

  clock_gettime (CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec * 1000000000 + t.tv_nsec;
}

void
latency_add (struct latency *l, uint64_t ns)
{
  __atomic_add_fetch (&l->count[latency_bucket (ns)], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&l->sum_ns, ns, __ATOMIC_RELAXED);
}

void
latency_snapshot (const struct latency *l, struct latency *out)
{
  unsigned b;

  for (b = 0; b < LATENCY_BUCKETS; b++)
    out->count[b] = __atomic_load_n (&l->count[b], __ATOMIC_RELAXED);
  out->sum_ns = __atomic_load_n (&l->sum_ns, __ATOMIC_RELAXED);
}

void
latency_window (const struct latency *later, const struct latency *earlier,
                struct latency *out)
{
  unsigned b;

  for (b = 0; b < LATENCY_BUCKETS; b++)
    out->count[b] = later->count[b] - earlier->count[b];
  out->sum_ns = later->sum_ns - earlier->sum_ns;
}

uint64_t
latency_total (const struct latency *l)
{
  uint64_t n = 0;
  unsigned b;

  for (b = 0; b < LATENCY_BUCKETS; b++)
    n += l->count[b];
  return n;
}

uint64_t
latency_percentile (const struct latency *l, double q)
{
  uint64_t total = latency_total (l), seen = 0, lo, hi;
  double want = q * total;
  unsigned b;

  if (total == 0)
    return 0;
  for (b = 0; b < LATENCY_BUCKETS - 1; b++) {
    seen += l->count[b];
    if (seen >= want && seen > 0)
      break;
  }
  if (b == 0)
    return 512;
  latency_bounds (b, &lo, &hi);
  return (lo + hi) / 2;
}
