/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: throughput of the radix bitmap slot allocator (lib/blist).
 *
 * For each map size: fill the map to about 44% with random runs of 1 to
 * 64 slots, add a pool of live runs that brings it to 50%, then time
 * alloc+free pairs, each allocating one run and freeing a random live run
 * of the pool in its place, so that the use stays at 50%.  It prints the
 * figures and asserts nothing about speed.
 *
 * Usage: blist-bench [SCALE]   (SCALE, 0.001 to 1000, multiplies the
 * number of iterations; default 1)
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blist.h"

/* Map sizes measured. */
static const uint64_t bench_sizes[] = {
  UINT64_C (1) << 20, UINT64_C (1) << 26,
};
#define BENCH_NSIZES (sizeof bench_sizes / sizeof bench_sizes[0])

/* Alloc+free pairs per size at SCALE 1. */
#define BENCH_SINGLE_ITERS 10000000
#define BENCH_RUN16_ITERS 2000000

/* The pool of live runs holds this fraction of the map. */
#define BENCH_POOL_SHARE 16

/* Figures of one timed loop. */
struct bench_result {
  double mpairs;                        /* million alloc+free pairs per s */
  uint64_t failed;                      /* allocations that found no run */
  struct blist_frag frag;               /* free runs at the end, at 50% */
};

/* Return the next number of a splitmix64 sequence kept in *state. */
static inline uint64_t
bench_rand (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Return a pseudo-random number in [0, n), by a multiply, not a divide. */
static inline uint64_t
bench_below (uint64_t *state, uint64_t n)
{
  return (uint64_t) (((unsigned __int128) bench_rand (state) * n) >> 64);
}

/* Seconds on the monotonic clock. */
static double
bench_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Print an error about what and exit: the allocator broke its contract. */
static void __attribute__ ((noreturn))
bench_die (const char *what, uint64_t a, uint64_t b)
{
  fprintf (stderr, "blist-bench: %s (%" PRIu64 ", %" PRIu64 ") failed: %s\n",
           what, a, b, strerror (errno));
  exit (EXIT_FAILURE);
}

/* Mark random runs of 1 to 64 slots used until at least target slots of
 * bl are in use.
 */
static void
bench_fill (struct blist *bl, uint64_t target, uint64_t *rng)
{
  const uint64_t nslots = blist_size (bl);

  while (nslots - blist_free_count (bl) < target) {
    uint64_t start = bench_below (rng, nslots);
    uint64_t len = 1 + bench_below (rng, 64);

    if (len > nslots - start)
      len = nslots - start;
    if (blist_fill (bl, start, len) < 0)
      bench_die ("fill", start, len);
  }
}

/* Allocate a pool of nslots / BENCH_POOL_SHARE slots in runs of runlen,
 * time iters pairs of alloc (runlen, runlen) and free of a random pool
 * run, summarize the free runs, and free the pool again, leaving bl with
 * as many used slots as it found.
 */
static struct bench_result
bench_pairs (struct blist *bl, uint64_t runlen, uint64_t iters,
             uint64_t *rng)
{
  const uint64_t npool = blist_size (bl) / BENCH_POOL_SHARE / runlen;
  struct bench_result result = { .failed = 0 };
  uint64_t *pool, i, len, next;
  double t;

  pool = malloc (npool * sizeof *pool);
  if (pool == NULL) {
    perror ("blist-bench: malloc");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < npool; i++) {
    pool[i] = blist_alloc (bl, runlen, runlen, &len);
    if (pool[i] == BLIST_NONE)
      bench_die ("alloc", runlen, runlen);
  }

  /* The pool entry to free is chosen one pair ahead and prefetched, so
   * that its cache miss is not counted as allocator time.
   */
  next = bench_below (rng, npool);
  t = bench_now ();
  for (i = 0; i < iters; i++) {
    uint64_t s = blist_alloc (bl, runlen, runlen, &len);
    uint64_t k = next;

    if (s == BLIST_NONE) {
      result.failed++;
      continue;
    }
    next = bench_below (rng, npool);
    __builtin_prefetch (&pool[next]);
    if (blist_free (bl, pool[k], runlen) == -1)
      bench_die ("free", pool[k], runlen);
    pool[k] = s;
  }
  t = bench_now () - t;
  result.mpairs = (iters - result.failed) / t / 1e6;
  blist_frag (bl, &result.frag);

  for (i = 0; i < npool; i++) {
    if (blist_free (bl, pool[i], runlen) == -1)
      bench_die ("free", pool[i], runlen);
  }
  free (pool);
  return result;
}

/* Measure one map size and print its figures. */
static void
bench_size (uint64_t nslots, double scale, uint64_t *rng)
{
  const uint64_t single_iters = BENCH_SINGLE_ITERS * scale;
  const uint64_t run16_iters = BENCH_RUN16_ITERS * scale;
  struct bench_result single, run16;
  struct blist *bl;

  bl = blist_create (nslots);
  if (bl == NULL) {
    perror ("blist-bench: blist_create");
    exit (EXIT_FAILURE);
  }
  bench_fill (bl, nslots / 2 - nslots / BENCH_POOL_SHARE, rng);
  single = bench_pairs (bl, 1, single_iters, rng);
  run16 = bench_pairs (bl, 16, run16_iters, rng);

  printf ("blist-bench: slots=%" PRIu64 " fill=50%%"
          " single: %.1f M pairs/s (%" PRIu64 " failed)"
          "  run16: %.1f M pairs/s (%" PRIu64 " failed)"
          "  memory: %.2f bits/slot\n"
          "blist-bench: slots=%" PRIu64 " free runs after single: %" PRIu64
          " (largest %" PRIu64 ")  after run16: %" PRIu64
          " (largest %" PRIu64 ")\n",
          nslots, single.mpairs, single.failed, run16.mpairs, run16.failed,
          blist_memory (bl) * 8.0 / nslots,
          nslots, single.frag.nruns, single.frag.largest,
          run16.frag.nruns, run16.frag.largest);
  blist_destroy (bl);
}

int
main (int argc, char *argv[])
{
  uint64_t rng = UINT64_C (0xb115b3ac4);
  double scale = 1;
  size_t i;

  if (argc > 2) {
    fprintf (stderr, "usage: blist-bench [SCALE]\n");
    return EXIT_FAILURE;
  }
  if (argc == 2) {
    char *end;

    scale = strtod (argv[1], &end);
    if (end == argv[1] || *end != '\0'
        || !(scale >= 0.001 && scale <= 1000)) {
      fprintf (stderr,
               "blist-bench: SCALE must be a number from 0.001 to 1000\n");
      return EXIT_FAILURE;
    }
  }

  for (i = 0; i < BENCH_NSIZES; i++)
    bench_size (bench_sizes[i], scale, &rng);
  return EXIT_SUCCESS;
}
