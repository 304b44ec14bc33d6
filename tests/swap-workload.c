/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: a memory workload that forces a machine to swap, and checks
 * that every page comes back intact.
 *
 * Usage: swap-workload MIB PASSES THREADS
 *        swap-workload --hot-cold COLD_MIB HOT_MIB SECONDS THREADS [FILL_RATE]
 *
 * Fills MIB MiB of anonymous memory with a pattern unique to each page,
 * then PASSES times visits every page in a fresh random order and checks
 * all of its words, THREADS threads sharing each pass (so that several
 * swap-ins are in flight, as with a real multi-threaded program).  With
 * MIB well above the machine's memory, most pages go to swap and back.
 * Prints progress and a last line "swap-workload: PASS ..." or
 * "swap-workload: FAIL ..." (and exits 1) on the first wrong word.  Used
 * inside the test VMs of tests/test-kernel-swap-*.sh.
 *
 * --hot-cold: a program with a large cold allocation and a smaller hot
 * loop.  Fills COLD_MIB MiB with per-page patterns and leaves them alone,
 * then fills HOT_MIB MiB (at most FILL_RATE MiB a second if given and not
 * 0, so that the swap-outs it causes keep a given pace) and for SECONDS
 * seconds visits hot pages at
 * random, THREADS threads sharing all of them: every visit checks the
 * whole page against its current generation, and every 4th visit of a
 * thread then rewrites the page with its next generation (the generation
 * of each page is kept apart, and a page is visited by one thread at a
 * time, so the checks stay exact).  With
 * HOT_MIB above the memory left to the program, the hot set keeps
 * swapping out and in while the cold set stays in swap.  The hot phase is
 * framed by the lines "swap-workload: hot phase start ..." and
 * "swap-workload: hot phase end ...", each with the kernel's pswpin and
 * pswpout counters, and each followed by a pause of WORKLOAD_PAUSE
 * seconds without memory access, so that whoever watches the console
 * can sample other counters between the phases.  Then every cold page
 * and every hot page is checked, and the last line says PASS or FAIL.
 */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define WORKLOAD_PAGE 4096
#define WORKLOAD_MAX_THREADS 64
#define WORKLOAD_WORDS (WORKLOAD_PAGE / sizeof (uint64_t))
/* --hot-cold: seconds of idleness after each hot phase line. */
#define WORKLOAD_PAUSE 2
/* --hot-cold: every WORKLOAD_REWRITE-th visit of a thread rewrites. */
#define WORKLOAD_REWRITE 4

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

/* Check every word of page p against generation g; report and return
 * false on a mismatch.
 */
static int
workload_check_gen (const uint64_t *page, uint64_t p, uint64_t g,
                    unsigned pass)
{
  uint64_t w;

  for (w = 0; w < WORKLOAD_WORDS; w++) {
    uint64_t want = workload_word (p, w, g);

    if (page[w] != want) {
      printf ("swap-workload: FAIL pass %u page %" PRIu64 " generation %"
              PRIu64 " word %" PRIu64 ": got %016" PRIx64 " want %016"
              PRIx64 "\n", pass, p, g, w, page[w], want);
      fflush (stdout);
      return 0;
    }
  }
  return 1;
}

/* Check every word of page p in the first generation. */
static int
workload_check (const uint64_t *page, uint64_t p, unsigned pass)
{
  return workload_check_gen (page, p, 1, pass);
}

/* Fill page p with generation g. */
static void
workload_fill (uint64_t *page, uint64_t p, uint64_t g)
{
  uint64_t w;

  for (w = 0; w < WORKLOAD_WORDS; w++)
    page[w] = workload_word (p, w, g);
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

/* --- --hot-cold ------------------------------------------------------------ */

/* The kernel's swap counters pswpin and pswpout from /proc/vmstat, or -1
 * each where it cannot be read (outside a test VM, say).
 */
static void
workload_vmstat (long long *in, long long *out)
{
  char name[64];
  long long v;
  FILE *f = fopen ("/proc/vmstat", "r");

  *in = *out = -1;
  if (f == NULL)
    return;
  while (fscanf (f, "%63s %lld", name, &v) == 2) {
    if (strcmp (name, "pswpin") == 0)
      *in = v;
    else if (strcmp (name, "pswpout") == 0)
      *out = v;
  }
  fclose (f);
}

/* This process's resident and swapped memory (kB) from /proc, or -1. */
static void
workload_rss (long long *rss, long long *swap)
{
  char line[256];
  FILE *f = fopen ("/proc/self/status", "r");

  *rss = *swap = -1;
  if (f == NULL)
    return;
  while (fgets (line, sizeof line, f)) {
    sscanf (line, "VmRSS: %lld", rss);
    sscanf (line, "VmSwap: %lld", swap);
  }
  fclose (f);
}

static double
workload_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One thread of the hot loop, or of a final check: the pages
 * [first, last) of mem, whose page numbers start at base; gen holds the
 * current generation of each of them (NULL: all in generation 1).
 */
struct workload_range {
  uint64_t *mem;
  uint32_t *gen;
  uint64_t base, first, last, seed;
  double deadline;
  uint64_t visits, rewrites;    /* read by the main thread meanwhile */
  bool ok;
};

static inline uint64_t
workload_range_gen (const struct workload_range *r, uint64_t i)
{
  return r->gen ? r->gen[i] : 1;
}

/* Check every page of a range in order; stop at the first wrong one. */
static void *
workload_check_range (void *arg)
{
  struct workload_range *r = arg;
  uint64_t i;

  r->ok = true;
  for (i = r->first; i < r->last && r->ok; i++)
    r->ok = workload_check_gen (r->mem + i * WORKLOAD_WORDS, r->base + i,
                                workload_range_gen (r, i), 0);
  return NULL;
}

/* The bit of a hot page's generation that a thread visiting it holds. */
#define WORKLOAD_BUSY UINT32_C (0x80000000)

/* Visit random pages of the whole hot set (first and last are 0 and its
 * size: the threads share it, so that each page is as hot as any other)
 * until the deadline: check each, and rewrite every WORKLOAD_REWRITE-th
 * one in its next generation.  A thread holds the page it visits by the
 * busy bit of its generation; a page held by another is skipped.
 */
static void *
workload_hot_range (void *arg)
{
  struct workload_range *r = arg;
  uint64_t n = r->last - r->first, visits = 0, rewrites = 0;

  r->ok = true;
  while (r->ok) {
    uint64_t i = r->first + workload_random (&r->seed) % n;
    uint64_t *page = r->mem + i * WORKLOAD_WORDS;
    uint32_t g = __atomic_load_n (&r->gen[i], __ATOMIC_ACQUIRE);

    if ((g & WORKLOAD_BUSY) ||
        !__atomic_compare_exchange_n (&r->gen[i], &g, g | WORKLOAD_BUSY,
                                      false, __ATOMIC_ACQUIRE,
                                      __ATOMIC_RELAXED))
      continue;
    r->ok = workload_check_gen (page, r->base + i, g, 0);
    visits++;
    if (visits % WORKLOAD_REWRITE == 0) {
      g = (g + 1) & ~WORKLOAD_BUSY;
      workload_fill (page, r->base + i, g);
      rewrites++;
    }
    __atomic_store_n (&r->gen[i], g, __ATOMIC_RELEASE);
    if (visits % 64 == 0) {
      __atomic_store_n (&r->visits, visits, __ATOMIC_RELAXED);
      __atomic_store_n (&r->rewrites, rewrites, __ATOMIC_RELAXED);
      if (workload_now () >= r->deadline)
        break;
    }
  }
  __atomic_store_n (&r->visits, visits, __ATOMIC_RELAXED);
  __atomic_store_n (&r->rewrites, rewrites, __ATOMIC_RELAXED);
  return NULL;
}

/* Run fn on npages pages of mem split among nthreads threads (contiguous
 * shares), page numbers from base, generations in gen (or NULL).  With
 * seconds > 0, the hot loop: every thread gets all the pages, and it
 * prints its progress every 10 s and the totals in *visits and
 * *rewrites.  Returns false if a page was wrong.
 */
static bool
workload_run_ranges (void *(*fn) (void *), uint64_t *mem, uint32_t *gen,
                     uint64_t base, uint64_t npages, unsigned nthreads,
                     double seconds, uint64_t *visits, uint64_t *rewrites)
{
  struct workload_range range[WORKLOAD_MAX_THREADS];
  pthread_t thread[WORKLOAD_MAX_THREADS];
  double start = workload_now (), next = start + 10;
  bool ok = true;
  unsigned t;

  for (t = 0; t < nthreads; t++) {
    range[t] = (struct workload_range) {
      .mem = mem, .gen = gen, .base = base,
      .first = seconds > 0 ? 0 : npages * t / nthreads,
      .last = seconds > 0 ? npages : npages * (t + 1) / nthreads,
      .seed = UINT64_C (0x5eed5eed5eed5eed) + t * UINT64_C (0x9e3779b9),
      .deadline = start + seconds,
    };
    if (pthread_create (&thread[t], NULL, fn, &range[t]) != 0) {
      perror ("swap-workload: pthread_create");
      exit (2);
    }
  }
  while (seconds > 0 && workload_now () + 1 < start + seconds) {
    sleep (1);
    if (workload_now () >= next) {
      uint64_t v = 0;

      for (t = 0; t < nthreads; t++)
        v += __atomic_load_n (&range[t].visits, __ATOMIC_RELAXED);
      long long rss, swap;

      workload_rss (&rss, &swap);
      printf ("swap-workload: hot phase: %.0f s, %" PRIu64 " visits, "
              "VmRSS %lld kB, VmSwap %lld kB\n",
              workload_now () - start, v, rss, swap);
      fflush (stdout);
      next += 10;
    }
  }
  if (visits)
    *visits = *rewrites = 0;
  for (t = 0; t < nthreads; t++) {
    pthread_join (thread[t], NULL);
    ok = ok && range[t].ok;
    if (visits) {
      *visits += range[t].visits;
      *rewrites += range[t].rewrites;
    }
  }
  return ok;
}

/* Map n pages of anonymous memory, or exit. */
static uint64_t *
workload_map (uint64_t n, size_t size)
{
  void *p = mmap (NULL, n * size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (p == MAP_FAILED) {
    perror ("swap-workload: mmap");
    exit (2);
  }
  return p;
}

/* Fill n pages of mem, numbered from base, in generation 1, at most
 * rate MiB a second (0: no limit).
 */
static void
workload_fill_all (uint64_t *mem, uint64_t base, uint64_t n, const char *what,
                   unsigned rate)
{
  double start = workload_now ();
  uint64_t i;

  printf ("swap-workload: filling %" PRIu64 " %s pages\n", n, what);
  fflush (stdout);
  for (i = 0; i < n; i++) {
    workload_fill (mem + i * WORKLOAD_WORDS, base + i, 1);
    if (rate > 0 && (i + 1) % 64 == 0) {
      double due = start + (i + 1) * (double) WORKLOAD_PAGE
        / (rate * 1048576.0), ahead = due - workload_now ();

      if (ahead > 0)
        usleep (ahead * 1e6);
    }
  }
  printf ("swap-workload: filled %" PRIu64 " %s pages in %.1f s\n", n, what,
          workload_now () - start);
  fflush (stdout);
}


static int
workload_hot_cold (int argc, char *argv[])
{
  uint64_t ncold, nhot, i, visits, rewrites;
  uint64_t *cold, *hot;
  uint32_t *gen;
  unsigned seconds, nthreads, rate = 0;
  long long in0, out0, in1, out1;
  double t0, t1;

  if (argc != 6 && argc != 7) {
    fprintf (stderr, "usage: swap-workload --hot-cold COLD_MIB HOT_MIB "
             "SECONDS THREADS [FILL_RATE]\n");
    return 2;
  }
  if (argc == 7)
    rate = strtoul (argv[6], NULL, 10);
  ncold = strtoull (argv[2], NULL, 10) * 1024 * 1024 / WORKLOAD_PAGE;
  nhot = strtoull (argv[3], NULL, 10) * 1024 * 1024 / WORKLOAD_PAGE;
  seconds = strtoul (argv[4], NULL, 10);
  nthreads = strtoul (argv[5], NULL, 10);
  if (ncold < 1 || nhot < 256 || seconds < 1 || nthreads < 1 ||
      nthreads > WORKLOAD_MAX_THREADS) {
    fprintf (stderr, "swap-workload: COLD_MIB and HOT_MIB must be at least "
             "1, SECONDS at least 1 and THREADS 1 to 64\n");
    return 2;
  }
  cold = workload_map (ncold, WORKLOAD_PAGE);
  hot = workload_map (nhot, WORKLOAD_PAGE);
  gen = (uint32_t *) workload_map (nhot, sizeof *gen);

  workload_fill_all (cold, 0, ncold, "cold", 0);
  for (i = 0; i < nhot; i++)
    gen[i] = 1;
  workload_fill_all (hot, ncold, nhot, "hot", rate);

  workload_vmstat (&in0, &out0);
  printf ("swap-workload: hot phase start: %" PRIu64 " pages, %u s, "
          "%u threads, pswpin=%lld pswpout=%lld\n",
          nhot, seconds, nthreads, in0, out0);
  fflush (stdout);
  sleep (WORKLOAD_PAUSE);
  t0 = workload_now ();
  if (!workload_run_ranges (workload_hot_range, hot, gen, ncold, nhot,
                            nthreads, seconds, &visits, &rewrites))
    return 1;
  t1 = workload_now ();
  workload_vmstat (&in1, &out1);
  printf ("swap-workload: hot phase end: %" PRIu64 " visits, %" PRIu64
          " rewrites in %.1f s, pswpin=%lld pswpout=%lld (+%lld +%lld)\n",
          visits, rewrites, t1 - t0, in1, out1, in1 - in0, out1 - out0);
  fflush (stdout);
  sleep (WORKLOAD_PAUSE);

  if (!workload_run_ranges (workload_check_range, cold, NULL, 0, ncold,
                            nthreads, 0, NULL, NULL))
    return 1;
  printf ("swap-workload: %" PRIu64 " cold pages verified\n", ncold);
  fflush (stdout);
  if (!workload_run_ranges (workload_check_range, hot, gen, ncold, nhot,
                            nthreads, 0, NULL, NULL))
    return 1;
  printf ("swap-workload: PASS hot-cold: %" PRIu64 " cold and %" PRIu64
          " hot pages verified, %" PRIu64 " hot visits, %" PRIu64
          " rewrites\n", ncold, nhot, visits, rewrites);
  return 0;
}

int
main (int argc, char *argv[])
{
  uint64_t npages, p, w, seed = UINT64_C (0x5eed5eed5eed5eed);
  uint64_t *mem, *order;
  unsigned passes, pass, nthreads;

  if (argc > 1 && strcmp (argv[1], "--hot-cold") == 0)
    return workload_hot_cold (argc, argv);
  if (argc != 4) {
    fprintf (stderr, "usage: swap-workload MIB PASSES THREADS\n"
             "       swap-workload --hot-cold COLD_MIB HOT_MIB SECONDS "
             "THREADS [FILL_RATE]\n");
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
