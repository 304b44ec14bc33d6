/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the engine's pages: reading a page from the best of its
 * copies, placing and writing new copies, publishing them, unmapping.
 *
 * A read takes the copy whose backend ranks best (tierset_read_rank:
 * reachable before reconnecting before failed, then priority).  When it
 * fails, the page's copies are tried one by one in that order; every
 * copy is read once without waiting for a lost server while a copy on a
 * backend that is not failed remains to be tried, else it is tried
 * ENGINE_READ_TRIES times.  A copy that fails with every try, or that
 * reads but does not match the page's checksum, is given up at once (its
 * slot bad, its entry SLOT_NONE: the page is degraded and the repairer
 * re-creates it); one that failed a quick read is given up only once
 * another copy read and matched, and if none does it is read again with
 * every try.  The last one to fail makes the page LOST.  A read cut
 * short by the process stopping (ESHUTDOWN) gives up nothing.
 *
 * A write places its copies with tierset_alloc_run, the first by the
 * priority rules, each next one outside the domains of those before, as
 * runs of the same length (shortening all of them to the shortest), and
 * writes them at once through the fanout.  A copy whose write fails is
 * placed again elsewhere; when no domain is left for it the page is
 * published with fewer copies (degraded).  Publishing points the entries
 * at the new slots and frees the old ones, so a page always has complete
 * copies.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "codec.h"
#include "engine-internal.h"
#include "log.h"
#include "page.h"

void
engine_count (struct engine *e, unsigned was, unsigned now)
{
  int mapped = (now > 0) - (was > 0);
  int degraded = (now > 0 && now < e->copies) - (was > 0 && was < e->copies);

  /* Adding a negative number converted to uint64_t subtracts. */
  if (mapped)
    __atomic_add_fetch (&e->mapped, (uint64_t) (int64_t) mapped,
                        __ATOMIC_RELAXED);
  if (degraded)
    __atomic_add_fetch (&e->degraded, (uint64_t) (int64_t) degraded,
                        __ATOMIC_RELAXED);
}

/* Add slot s to the run being collected, freeing the run first when s does
 * not extend it (trimming it before, with trim: once freed, the slots may
 * hold another page's data; a trim of unknown outcome leaves them bad).
 * SLOT_NONE flushes the run.  LOST entries have no slot to free: theirs
 * was marked bad when the page was lost.
 */
void
engine_free_slot (struct engine *e, struct engine_free_run *run, slot_t s)
{
  if (s == SLOT_LOST)
    return;
  if (run->n > 0 && (s == SLOT_NONE || s != run->first + run->n)) {
    if (run->trim)
      tierset_trim_free (e->ts, run->first, run->n);
    else
      tierset_free_run (e->ts, run->first, run->n);
    run->n = 0;
  }
  if (s == SLOT_NONE)
    return;
  if (run->n == 0)
    run->first = s;
  run->n++;
}

/* Repeated messages: one per read of a lost page, one per copy given
 * up, one per write that could not place every copy.
 */
static struct log_limit engine_lost_limit = LOG_LIMIT_INIT;
static struct log_limit engine_drop_limit = LOG_LIMIT_INIT;
static struct log_limit engine_degraded_limit = LOG_LIMIT_INIT;
static struct log_limit engine_corrupt_limit = LOG_LIMIT_INIT;

/* Give up copy c of page, in slot s, which failed to read: with another
 * live copy the entry becomes SLOT_NONE and the slot bad; as the last
 * one, the page becomes LOST and the loss is counted.  Without may_lose
 * (the copy was read once, quickly), a copy that is the last one on a
 * backend that works is kept: returns false, and the caller reads it
 * again with every try.  Otherwise returns true; nothing happens if
 * another reader gave the copy up first.
 */
static bool
engine_drop_copy (struct engine *e, uint64_t page, unsigned c, slot_t s,
                  bool may_lose)
{
  pthread_mutex_t *lock = &e->drop_lock[page % ENGINE_DROP_LOCKS];
  unsigned live, i, usable = 0;
  bool dropped = true;

  pthread_mutex_lock (lock);
  live = pagemap_live (e->map, page);
  for (i = 0; i < e->copies; i++) {
    slot_t t = pagemap_get (e->map, page, i);

    if (i != c && t != SLOT_NONE && t != SLOT_LOST &&
        !tierset_slot_failed (e->ts, t))
      usable++;
  }
  if (pagemap_get (e->map, page, c) != s)
    ;
  else if (usable == 0 && !may_lose)
    dropped = false;
  else {
    pagemap_set (e->map, page, c, live > 1 ? SLOT_NONE : SLOT_LOST);
    engine_count (e, live, live - 1);
    if (live > 1) {
      log_error_limited (&engine_drop_limit, "page %" PRIu64 ": a copy "
                         "failed to read; another is read and this one "
                         "will be re-created", page);
      tierset_mark_bad (e->ts, s, 1);
    }
    else {
      log_error ("page %" PRIu64 " is lost: %s", page,
                 e->copies > 1 ? "no copy of it can be read"
                 : "its only copy cannot be read");
      tierset_mark_lost (e->ts, s);
    }
  }
  pthread_mutex_unlock (lock);
  return dropped;
}

/* The live copy of page, among those not in tried (a bit per entry),
 * whose backend ranks best; sets *c and *others: how many of the other
 * live copies not tried are on backends that are not failed (those a
 * quick read may leave the page to).  SLOT_NONE if there is none.
 */
static slot_t
engine_best_copy (struct engine *e, uint64_t page, unsigned tried,
                  unsigned *c, unsigned *others)
{
  slot_t best = SLOT_NONE;
  unsigned i, rank, best_rank = 0, usable = 0;
  bool best_usable = false;

  for (i = 0; i < e->copies; i++) {
    slot_t s = pagemap_get (e->map, page, i);
    bool ok;

    if (s == SLOT_NONE || s == SLOT_LOST || (tried & (1u << i)))
      continue;
    ok = !tierset_slot_failed (e->ts, s);
    usable += ok;
    rank = tierset_read_rank (e->ts, s);
    if (best == SLOT_NONE || rank > best_rank) {
      best = s;
      best_rank = rank;
      best_usable = ok;
      *c = i;
    }
  }
  *others = usable - best_usable;
  return best;
}

void
engine_note_read (struct engine *e, uint64_t page, uint64_t n)
{
  uint64_t i;
  unsigned c, others;

  for (i = page; i < page + n; i++)
    if (agemap_read (e->ages, i)) {
      slot_t s = engine_best_copy (e, i, 0, &c, &others);

      if (s != SLOT_NONE && tierset_count_reread (e->ts, s))
        rereadq_push (&e->rereads, i);
    }
}

uint32_t
engine_check_sums (struct engine *e, uint64_t page, uint32_t n,
                   const char *buf)
{
  uint32_t i;

  if (e->unchecked)
    return n;
  for (i = 0; i < n; i++)
    if (codec_checksum (buf + (size_t) i * PAGE_SIZE)
        != engine_sum (e, page + i))
      break;
  return i;
}

/* Read copy s of page into dst (tries as tierset_read), decrypt it with
 * the context of range-lock entry idx and check it:
 * 0, or -1 with errno set (EILSEQ: it read, but not the page's bytes,
 * counted as corrupt on its backend).
 */
static int
engine_read_copy (struct engine *e, unsigned idx, uint64_t page, slot_t s,
                  char *dst, unsigned tries)
{
  if (tierset_read (e->ts, s, 1, dst, tries) == -1 ||
      engine_decrypt (e, idx, s, 1, dst) == -1)
    return -1;
  if (engine_check_sums (e, page, 1, dst) == 0) {
    tierset_count_corrupt (e->ts, s);
    log_error_limited (&engine_corrupt_limit, "page %" PRIu64 ": the copy "
                       "in backend slot %" PRIu32 " does not match its "
                       "checksum", page, s);
    errno = EILSEQ;
    return -1;
  }
  return 0;
}

/* Read one page into dst from its copies in turn (see the top of this
 * file); with keep, each copy once without waiting for a lost server,
 * and none given up but a corrupt one.  Returns 0, or -1 (EIO) when
 * none could be read.
 */
static int
engine_read_page (struct engine *e, unsigned idx, uint64_t page, char *dst,
                  bool keep)
{
  unsigned tried = 0, patient = 0, waiting = 0, c = 0, k, others;
  slot_t failed[PAGEMAP_COPIES_MAX], s;

  for (;;) {
    bool quick;

    s = engine_best_copy (e, page, tried, &c, &others);
    if (s == SLOT_NONE) {
      /* The copies that failed only a quick read get every try before
       * the page is given up.
       */
      if (waiting == 0 || keep)
        break;
      tried &= ~waiting;
      patient |= waiting;
      waiting = 0;
      continue;
    }
    quick = keep || (others > 0 && !(patient & (1u << c)));
    if (engine_read_copy (e, idx, page, s, dst, quick ? TIERSET_READ_QUICK
                          : ENGINE_READ_TRIES) == 0) {
      /* A copy read: those that failed a quick read are given up now,
       * to be re-created.
       */
      for (k = 0; k < e->copies && !keep; k++)
        if (waiting & (1u << k))
          engine_drop_copy (e, page, k, failed[k], false);
      return 0;
    }
    /* The process is stopping: the copy is not known to be gone. */
    if (errno == ESHUTDOWN)
      break;
    tried |= 1u << c;
    /* Wrong bytes read wrong again: that copy goes at once (the last
     * one only once no other can be read: the drop counts the others).
     * One that failed a quick read waits for another copy to read.
     */
    if (errno == EILSEQ || !quick)
      engine_drop_copy (e, page, c, s, true);
    else if (!keep) {
      waiting |= 1u << c;
      failed[c] = s;
    }
  }
  if (s == SLOT_NONE && pagemap_unmapped (e->map, page)) {
    memset (dst, 0, PAGE_SIZE);
    return 0;
  }
  if (s == SLOT_NONE && !keep)
    log_error_limited (&engine_lost_limit, "read of page %" PRIu64 ": the "
                       "page is lost (no copy of it could be read); it "
                       "reads again after a write or trim", page);
  errno = EIO;
  return -1;
}

/* engine_read_pages, or with keep engine_read_pages_keep. */
static int
engine_read_pages_how (struct engine *e, unsigned idx, uint64_t page,
                       uint64_t n, char *dst, bool keep)
{
  uint64_t i = 0;
  int r = 0;

  while (i < n) {
    char *p = dst + i * PAGE_SIZE;
    unsigned c = 0, others;
    uint32_t run = 1;
    slot_t s = engine_best_copy (e, page + i, 0, &c, &others);
    int read;

    /* Unmapped or lost. */
    if (s == SLOT_NONE) {
      if (engine_read_page (e, idx, page + i, p, keep) == -1)
        return -1;
      i++;
      continue;
    }
    /* Consecutive addresses are on one backend: there is a gap between
     * backends, and the address after a real slot is never SLOT_LOST.
     */
    while (i + run < n && run < UINT32_MAX &&
           pagemap_get (e->map, page + i + run, c) == s + run)
      run++;
    read = tierset_read (e->ts, s, run, p,
                         others > 0 || keep ? TIERSET_READ_QUICK : 1);
    if (read == 0)
      read = engine_decrypt (e, idx, s, run, p);
    /* A page that read but does not match is counted as each page is
     * read again below.
     */
    if (read == 0 && engine_check_sums (e, page + i, run, p) < run) {
      errno = EILSEQ;
      read = -1;
    }
    if (read == -1) {
      if (errno == ESHUTDOWN) {
        errno = EIO;
        return -1;
      }
      /* Every page of the run, so that each lost one is found now. */
      for (uint32_t j = 0; j < run; j++)
        if (engine_read_page (e, idx, page + i + j,
                              p + (size_t) j * PAGE_SIZE, keep) == -1)
          r = -1;
      /* A read that succeeded after a failed one may have set errno. */
      if (r == -1) {
        errno = EIO;
        return -1;
      }
    }
    i += run;
  }
  return r;
}

int
engine_read_pages (struct engine *e, unsigned idx, uint64_t page,
                   uint64_t n, char *dst)
{
  return engine_read_pages_how (e, idx, page, n, dst, false);
}

int
engine_read_pages_keep (struct engine *e, unsigned idx, uint64_t page,
                        uint64_t n, char *dst)
{
  return engine_read_pages_how (e, idx, page, n, dst, true);
}

/* One copy's write, run by the fanout. */
struct engine_write_job {
  struct tierset *ts;
  slot_t first;
  uint32_t n;
  const char *src;
  bool fua;
  struct codec *codec;                 /* NULL: written in clear */
  unsigned ctx;                        /* its context for this copy */
  char *cipher;                        /* where this copy is encrypted */
  int r, err;                          /* the result, and its errno */
  bool unwritten;                      /* failed before the backend */
};

static void
engine_write_job_run (void *arg)
{
  struct engine_write_job *job = arg;
  const char *src = job->src;

  /* Each copy its own ciphertext: the tweak is its slot. */
  if (job->codec) {
    if (codec_encrypt (job->codec, job->ctx, job->first, job->n, job->src,
                       job->cipher) == -1) {
      job->r = -1;
      job->err = errno;
      job->unwritten = true;
      return;
    }
    src = job->cipher;
  }
  job->r = tierset_write (job->ts, job->first, job->n, src, job->fua);
  job->err = job->r == 0 ? 0 : errno;
}

/* Shorten runs[0 .. k) of had slots each to n, freeing the rest. */
static void
engine_shorten (struct engine *e, const slot_t *runs, unsigned k,
                uint32_t had, uint32_t n)
{
  unsigned i;

  for (i = 0; i < k; i++)
    tierset_free_run (e->ts, runs[i] + n, had - n);
}

int
engine_place (struct engine *e, unsigned idx, const char *src, uint32_t *n,
              unsigned want, domain_mask exclude, struct tier_window win,
              bool fua,
              struct engine_placed *pl)
{
  struct engine_write_job job[PAGEMAP_COPIES_MAX];
  struct fanout_job fj[PAGEMAP_COPIES_MAX];
  slot_t cand[PAGEMAP_COPIES_MAX], avoid = SLOT_NONE;
  uint32_t len = *n;
  bool refused = false, stopping = false;
  unsigned i, k;

  pl->n = 0;
  while (pl->n < want) {
    domain_mask ex = exclude;

    for (i = 0; i < pl->n; i++)
      ex |= tierset_domain_of (e->ts, pl->first[i]);
    /* Allocate the copies still missing, one run each. */
    for (k = 0; pl->n + k < want; k++) {
      uint32_t got;
      slot_t s = tierset_alloc_run (e->ts, len, &got, avoid, ex, win);

      if (s == SLOT_NONE)
        break;
      if (got < len) {
        engine_shorten (e, pl->first, pl->n, len, got);
        engine_shorten (e, cand, k, len, got);
        len = got;
      }
      cand[k] = s;
      ex |= tierset_domain_of (e->ts, s);
    }
    if (k == 0)
      break;
    for (i = 0; i < k; i++) {
      job[i] = (struct engine_write_job) {
        .ts = e->ts, .first = cand[i], .n = len, .src = src, .fua = fua,
        .codec = e->codec && tierset_slot_encrypted (e->ts, cand[i])
                 ? e->codec : NULL,
        .ctx = idx * e->copies + i,
        .cipher = engine_cipher (e, idx, i),
      };
      fj[i] = (struct fanout_job) { .fn = engine_write_job_run,
                                    .arg = &job[i] };
    }
    fanout_run (e->fanout, idx, fj, k);
    for (i = 0; i < k; i++) {
      if (job[i].r == 0)
        pl->first[pl->n++] = cand[i];
      else if (job[i].unwritten) {
        /* The cipher failed, not the slot: it is free again, and no
         * other slot would do better.
         */
        tierset_free_run (e->ts, cand[i], len);
        refused = stopping = true;
      }
      else {
        tierset_mark_bad (e->ts, cand[i], len);
        avoid = cand[i];
        refused = true;
        stopping |= job[i].err == ESHUTDOWN;
      }
    }
    /* The process is stopping, or the cipher failed: no other slot
     * would do better.
     */
    if (stopping)
      break;
  }
  *n = len;
  if (pl->n == 0) {
    errno = refused ? EIO : ENOSPC;
    return -1;
  }
  return 0;
}

/* Point pages [page, page+n) at the runs of pl, their remaining entries
 * at nothing, freeing whatever they held before.
 */
static void
engine_publish (struct engine *e, uint64_t page, uint32_t n,
                const struct engine_placed *pl)
{
  struct engine_free_run run[PAGEMAP_COPIES_MAX] = { { 0 } };
  uint32_t i;
  unsigned c;

  for (i = 0; i < n; i++) {
    unsigned was = pagemap_live (e->map, page + i);

    for (c = 0; c < e->copies; c++)
      engine_free_slot (e, &run[c],
                        pagemap_set (e->map, page + i, c,
                                     c < pl->n ? pl->first[c] + i
                                     : SLOT_NONE));
    engine_count (e, was, pl->n);
  }
  for (c = 0; c < e->copies; c++)
    engine_free_slot (e, &run[c], SLOT_NONE);
  if (swaptier_debug_map)
    log_debug ("map: pages %" PRIu64 "+%" PRIu32 " -> slot %" PRIu32
               " (%u copies)", page, n, pl->first[0], pl->n);
}

int
engine_write_pages (struct engine *e, unsigned idx, uint64_t page,
                    uint32_t n, const char *src, bool fua)
{
  uint32_t done = 0;

  while (done < n) {
    struct engine_placed pl;
    uint32_t len = n - done;

    /* EIO if the data was refused by failing backends, ENOSPC if there
     * simply is no room (the reserve makes that a configuration error).
     */
    uint32_t i;

    if (engine_place (e, idx, src + (size_t) done * PAGE_SIZE, &len,
                      e->copies, 0, TIERSET_ANY_WINDOW, fua, &pl) == -1) {
      log_error ("write of page %" PRIu64 ": no backend %s", page + done,
                 errno == EIO ? "that works has a free slot"
                 : "has a free slot");
      return -1;
    }
    if (pl.n < e->copies)
      log_error_limited (&engine_degraded_limit, "write of page %" PRIu64
                         ": %u of %u copies written, no other failure "
                         "domain could take the others; the page is "
                         "degraded until they are re-created",
                         page + done, pl.n, e->copies);
    /* The range lock is held for writing: no read sees the new sums
     * before the new copies.
     */
    for (i = 0; i < len && !e->unchecked; i++)
      __atomic_store_n (&e->sums[page + done + i],
                        codec_checksum (src + (size_t) (done + i)
                                        * PAGE_SIZE), __ATOMIC_RELAXED);
    engine_publish (e, page + done, len, &pl);
    done += len;
  }
  return 0;
}

void
engine_unmap (struct engine *e, uint64_t page, uint64_t n)
{
  struct engine_free_run run[PAGEMAP_COPIES_MAX];
  uint64_t i;
  unsigned c;

  for (c = 0; c < e->copies; c++)
    run[c] = (struct engine_free_run) { .trim = true };
  for (i = 0; i < n; i++) {
    unsigned was = pagemap_live (e->map, page + i);

    for (c = 0; c < e->copies; c++)
      engine_free_slot (e, &run[c],
                        pagemap_set (e->map, page + i, c, SLOT_NONE));
    engine_count (e, was, 0);
  }
  for (c = 0; c < e->copies; c++)
    engine_free_slot (e, &run[c], SLOT_NONE);
  if (swaptier_debug_map && n > 0)
    log_debug ("map: pages %" PRIu64 "+%" PRIu64 " unmapped", page, n);
}
