/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: a memory workload that forces a machine to swap, and checks
 * that every page comes back intact.
 *
 * Usage: swap-workload MIB PASSES THREADS
 *
 * Fills MIB MiB of anonymous memory with a pattern unique to each page,
 * then PASSES times visits every page in a fresh random order and checks
 * all of its words, THREADS threads sharing each pass (so that several
 * swap-ins are in flight, as with a real multi-threaded program).  With
 * MIB well above the machine's memory, most pages go to swap and back.
 * Prints progress and a last line "swap-workload: PASS ..." or
 * "swap-workload: FAIL ..." (and exits 1) on the first wrong word.  Used
 * inside the test VMs of tests/test-kernel-swap-*.sh.
 */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define WORKLOAD_PAGE 4096
#define WORKLOAD_MAX_THREADS 64
#define WORKLOAD_WORDS (WORKLOAD_PAGE / sizeof (uint64_t))

/* The expected content of word w of page p in fill generation g. */
static inline uint64_t
workload_word (uint64_t p, uint64_t w, uint64_t g)
{
  uint64_t x = (p << 20) ^ (w << 4) ^ g ^ UINT64_C (0x9e3779b97f4a7c15);

  x ^= x >> 31;
  x *= UINT64_C (0xbf58476d1ce4e5b9);
  x ^= x >> 29;
  return x;
}

/* A small fast PRNG (xorshift64*), good enough to shuffle visits. */
static uint64_t
workload_random (uint64_t *state)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * UINT64_C (2685821657736338717);
}

/* Check every word of page p; report and return false on a mismatch. */
static int
workload_check (const uint64_t *page, uint64_t p, unsigned pass)
{
  uint64_t w;

  for (w = 0; w < WORKLOAD_WORDS; w++) {
    uint64_t want = workload_word (p, w, 1);

    if (page[w] != want) {
      printf ("swap-workload: FAIL pass %u page %" PRIu64 " word %" PRIu64
              ": got %016" PRIx64 " want %016" PRIx64 "\n",
              pass, p, w, page[w], want);
      return 0;
    }
  }
  return 1;
}

/* One thread's share of a pass: the pages order[first .. last). */
struct workload_share {
  const uint64_t *mem, *order;
  uint64_t first, last;
  unsigned pass;
  bool ok;
};

/* Check every page of a share; stop at the first wrong one. */
static void *
workload_verify_share (void *arg)
{
  struct workload_share *sh = arg;
  uint64_t i;

  sh->ok = true;
  for (i = sh->first; i < sh->last && sh->ok; i++) {
    uint64_t q = sh->order[i];

    sh->ok = workload_check (sh->mem + q * WORKLOAD_WORDS, q, sh->pass);
  }
  return NULL;
}

/* Verify all pages in the order given, split among nthreads threads.
 * Returns false if any page was wrong.
 */
static bool
workload_verify (const uint64_t *mem, const uint64_t *order, uint64_t npages,
                 unsigned pass, unsigned nthreads)
{
  struct workload_share share[WORKLOAD_MAX_THREADS];
  pthread_t thread[WORKLOAD_MAX_THREADS];
  bool ok = true;
  unsigned t;

  for (t = 0; t < nthreads; t++) {
    share[t] = (struct workload_share) {
      .mem = mem, .order = order, .pass = pass,
      .first = npages * t / nthreads, .last = npages * (t + 1) / nthreads,
    };
    if (pthread_create (&thread[t], NULL, workload_verify_share,
                        &share[t]) != 0) {
      perror ("swap-workload: pthread_create");
      exit (2);
    }
  }
  for (t = 0; t < nthreads; t++) {
    pthread_join (thread[t], NULL);
    ok = ok && share[t].ok;
  }
  return ok;
}

int
main (int argc, char *argv[])
{
  uint64_t npages, p, w, seed = UINT64_C (0x5eed5eed5eed5eed);
  uint64_t *mem, *order;
  unsigned passes, pass, nthreads;

  if (argc != 4) {
    fprintf (stderr, "usage: swap-workload MIB PASSES THREADS\n");
    return 2;
  }
  npages = strtoull (argv[1], NULL, 10) * 1024 * 1024 / WORKLOAD_PAGE;
  passes = strtoul (argv[2], NULL, 10);
  nthreads = strtoul (argv[3], NULL, 10);
  if (npages < 4 || nthreads < 1 || nthreads > WORKLOAD_MAX_THREADS) {
    fprintf (stderr, "swap-workload: MIB must be at least 1 and THREADS "
             "1 to 64\n");
    return 2;
  }
  mem = mmap (NULL, npages * WORKLOAD_PAGE, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  order = mmap (NULL, npages * sizeof *order, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || order == MAP_FAILED) {
    perror ("swap-workload: mmap");
    return 2;
  }

  printf ("swap-workload: filling %" PRIu64 " pages\n", npages);
  fflush (stdout);
  for (p = 0; p < npages; p++) {
    uint64_t *page = mem + p * WORKLOAD_WORDS;

    for (w = 0; w < WORKLOAD_WORDS; w++)
      page[w] = workload_word (p, w, 1);
    order[p] = p;
    if ((p + 1) % (npages / 4) == 0) {
      printf ("swap-workload: filled %" PRIu64 " pages\n", p + 1);
      fflush (stdout);
    }
  }

  for (pass = 1; pass <= passes; pass++) {
    /* A fresh random order each pass (Fisher-Yates). */
    for (p = npages - 1; p > 0; p--) {
      uint64_t j = workload_random (&seed) % (p + 1), t = order[p];

      order[p] = order[j];
      order[j] = t;
    }
    if (!workload_verify (mem, order, npages, pass, nthreads))
      return 1;
    printf ("swap-workload: pass %u: %" PRIu64 " pages verified\n",
            pass, npages);
    fflush (stdout);
  }
  printf ("swap-workload: PASS %" PRIu64 " pages x %u passes\n",
          npages, passes);
  return 0;
}
