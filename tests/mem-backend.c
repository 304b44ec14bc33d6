/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: an in-memory backend. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem-backend.h"
#include "page.h"

/* A range of slots whose requests of some kinds fail. */
struct mem_fail_range {
  uint64_t slot, n;
  unsigned kinds;
};

struct mem_backend {
  struct backend be;                   /* must be first */
  pthread_mutex_t lock;                /* guards the rest but atomics */
  char *data;                          /* nslots slots; NULL: all zeroes */
  unsigned fail_kinds;                 /* kinds that always fail */
  unsigned nranges;
  struct mem_fail_range range[MEM_FAIL_RANGES];
  unsigned every;                      /* fail one request out of every */
  unsigned every_left;                 /* requests until the next failure */
  unsigned next_kinds, next_left;      /* fail the next next_left of these */
  unsigned hold_kinds;                 /* requests of these wait */
  pthread_cond_t released;             /* hold_kinds changed */
  bool yield;                          /* atomic */
  enum backend_health health;          /* atomic */
  struct mem_counters count;
  bool (*read_hook) (void *arg, uint64_t slot, uint64_t n);
  void *read_hook_arg;
};

static const struct backend_ops mem_ops;

/* The in-memory backend behind be; aborts if be is another kind. */
static struct mem_backend *
mem_backend (struct backend *be)
{
  if (be->ops != &mem_ops) {
    log_error ("%s: not an in-memory backend", be->target);
    abort ();
  }
  return (struct mem_backend *) be;
}

/* Abort unless [slot, slot+n) is a non-empty range of the backend and buf
 * (NULL for a request without data) is PAGE_SIZE aligned, as backend.h
 * promises every backend.
 */
static void
mem_check_request (const struct mem_backend *mb, const char *what,
                   const void *buf, uint64_t slot, uint64_t n)
{
  if (n == 0 || slot >= mb->be.nslots || n > mb->be.nslots - slot ||
      ((uintptr_t) buf & (PAGE_SIZE - 1)) != 0) {
    log_error ("%s: %s of %" PRIu64 " slots at slot %" PRIu64 " into %p "
               "breaks the backend contract (%" PRIu64 " slots)",
               mb->be.target, what, n, slot, buf, mb->be.nslots);
    abort ();
  }
}

/* Whether a request of kind on [slot, slot+n) fails now (with the lock),
 * and with which errno.  Counts the request towards fail_every when it is
 * a read or write.
 */
static bool
mem_should_fail (struct mem_backend *mb, unsigned kind, uint64_t slot,
                 uint64_t n, int *err)
{
  enum backend_health health = __atomic_load_n (&mb->health,
                                                __ATOMIC_RELAXED);
  bool fail = (mb->fail_kinds & kind) != 0 || health == BACKEND_DEAD;
  unsigned i;

  *err = EIO;
  if (!fail && health == BACKEND_DOWN &&
      (kind == MEM_FAIL_WRITE || kind == MEM_FAIL_TRIM)) {
    *err = ENOTCONN;
    fail = true;
  }
  if (mb->next_left > 0 && (mb->next_kinds & kind)) {
    mb->next_left--;
    fail = true;
  }
  for (i = 0; i < mb->nranges; i++) {
    const struct mem_fail_range *r = &mb->range[i];

    if ((r->kinds & kind) && slot < r->slot + r->n && r->slot < slot + n)
      fail = true;
  }
  if ((kind == MEM_FAIL_READ || kind == MEM_FAIL_WRITE) && mb->every > 0 &&
      --mb->every_left == 0) {
    mb->every_left = mb->every;
    fail = true;
  }
  if (fail)
    mb->count.failures++;
  return fail;
}

/* Wait while requests of kind are held (with the lock, which it drops
 * meanwhile).  The request was counted already, so a test can tell that
 * it arrived.
 */
static void
mem_wait_held (struct mem_backend *mb, unsigned kind)
{
  while (mb->hold_kinds & kind)
    pthread_cond_wait (&mb->released, &mb->lock);
}

/* Report a failed request the way a real backend does: log_error, then
 * errno err.  Always returns -1.
 */
static int
mem_fail (const struct mem_backend *mb, const char *what, uint64_t slot,
          uint64_t n, int err)
{
  errno = err;
  log_error ("%s: %s of %" PRIu64 " slots at slot %" PRIu64 ": "
             "injected error: %m", mb->be.target, what, n, slot);
  return -1;
}

/* The data of the backend, allocated (all zeroes) at the first call
 * (with the lock).  Aborts if memory runs out.
 */
static char *
mem_data (struct mem_backend *mb)
{
  if (mb->data == NULL) {
    mb->data = calloc (mb->be.nslots, PAGE_SIZE);
    if (mb->data == NULL) {
      log_error ("%s: no memory for %" PRIu64 " slots", mb->be.target,
                 mb->be.nslots);
      abort ();
    }
  }
  return mb->data;
}

/* Fill buf with the n slots from slot, or fail as told. */
static int
mem_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct mem_backend *mb = mem_backend (be);
  int r = 0, err;

  mem_check_request (mb, "read", buf, slot, n);
  if (__atomic_load_n (&mb->yield, __ATOMIC_RELAXED))
    sched_yield ();
  if (mb->read_hook && mb->read_hook (mb->read_hook_arg, slot, n)) {
    pthread_mutex_lock (&mb->lock);
    mb->count.reads++;
    mb->count.failures++;
    pthread_mutex_unlock (&mb->lock);
    return mem_fail (mb, "read", slot, n, EIO);
  }
  pthread_mutex_lock (&mb->lock);
  mb->count.reads++;
  mem_wait_held (mb, MEM_FAIL_READ);
  if (mem_should_fail (mb, MEM_FAIL_READ, slot, n, &err))
    r = mem_fail (mb, "read", slot, n, err);
  else {
    if (mb->data)
      memcpy (buf, mb->data + slot * PAGE_SIZE, n * PAGE_SIZE);
    else
      memset (buf, 0, n * PAGE_SIZE);
    mb->count.read_slots += n;
  }
  pthread_mutex_unlock (&mb->lock);
  return r;
}

/* Store the n slots of buf from slot, or fail as told and store nothing. */
static int
mem_write (struct backend *be, const void *buf, uint64_t slot, uint64_t n,
           bool fua)
{
  struct mem_backend *mb = mem_backend (be);
  int r = 0, err;

  mem_check_request (mb, "write", buf, slot, n);
  if (__atomic_load_n (&mb->yield, __ATOMIC_RELAXED))
    sched_yield ();
  pthread_mutex_lock (&mb->lock);
  mb->count.writes++;
  if (fua)
    mb->count.fua_writes++;
  mem_wait_held (mb, MEM_FAIL_WRITE);
  if (mem_should_fail (mb, MEM_FAIL_WRITE, slot, n, &err))
    r = mem_fail (mb, "write", slot, n, err);
  else {
    memcpy (mem_data (mb) + slot * PAGE_SIZE, buf, n * PAGE_SIZE);
    mb->count.write_slots += n;
  }
  pthread_mutex_unlock (&mb->lock);
  return r;
}

/* Count a flush, or fail it as told. */
static int
mem_flush (struct backend *be)
{
  struct mem_backend *mb = mem_backend (be);
  int r = 0, err;

  pthread_mutex_lock (&mb->lock);
  mb->count.flushes++;
  mem_wait_held (mb, MEM_FAIL_FLUSH);
  if (mem_should_fail (mb, MEM_FAIL_FLUSH, 0, be->nslots, &err))
    r = mem_fail (mb, "flush", 0, be->nslots, err);
  pthread_mutex_unlock (&mb->lock);
  return r;
}

/* Fill the n slots from slot with MEM_POISON, or fail as told and change
 * nothing.
 */
static int
mem_trim (struct backend *be, uint64_t slot, uint64_t n)
{
  struct mem_backend *mb = mem_backend (be);
  int r = 0, err;

  mem_check_request (mb, "trim", NULL, slot, n);
  pthread_mutex_lock (&mb->lock);
  mb->count.trims++;
  mem_wait_held (mb, MEM_FAIL_TRIM);
  if (mem_should_fail (mb, MEM_FAIL_TRIM, slot, n, &err))
    r = mem_fail (mb, "trim", slot, n, err);
  else {
    memset (mem_data (mb) + slot * PAGE_SIZE, MEM_POISON, n * PAGE_SIZE);
    mb->count.trim_slots += n;
  }
  pthread_mutex_unlock (&mb->lock);
  return r;
}

/* The health set by mem_backend_set_health. */
static enum backend_health
mem_health (struct backend *be)
{
  struct mem_backend *mb = mem_backend (be);

  return __atomic_load_n (&mb->health, __ATOMIC_RELAXED);
}

/* Free the backend and its data. */
static void
mem_close (struct backend *be)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_destroy (&mb->lock);
  pthread_cond_destroy (&mb->released);
  free (mb->data);
  free (be->target);
  free (mb);
}

static const struct backend_ops mem_ops = {
  .kind = "mem",
  .read = mem_read,
  .write = mem_write,
  .flush = mem_flush,
  .trim = mem_trim,
  .health = mem_health,
  .close = mem_close,
};

struct backend *
mem_backend_create (const char *target, uint64_t nslots)
{
  struct mem_backend *mb = calloc (1, sizeof *mb);

  if (mb == NULL || (mb->be.target = strdup (target)) == NULL) {
    log_error ("%s: no memory for an in-memory backend", target);
    abort ();
  }
  if (nslots > SIZE_MAX / PAGE_SIZE) {
    log_error ("%s: %" PRIu64 " slots cannot be addressed", target, nslots);
    abort ();
  }
  mb->be.ops = &mem_ops;
  mb->be.nslots = nslots;
  mb->health = BACKEND_UP;
  pthread_mutex_init (&mb->lock, NULL);
  pthread_cond_init (&mb->released, NULL);
  return &mb->be;
}

void
mem_backend_fail_all (struct backend *be, unsigned kinds)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  mb->fail_kinds |= kinds;
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_fail_slots (struct backend *be, uint64_t slot, uint64_t n,
                        unsigned kinds)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  if (mb->nranges == MEM_FAIL_RANGES) {
    log_error ("%s: more than %d failing slot ranges", be->target,
               MEM_FAIL_RANGES);
    abort ();
  }
  mb->range[mb->nranges++] = (struct mem_fail_range) {
    .slot = slot, .n = n, .kinds = kinds,
  };
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_fail_every (struct backend *be, unsigned n)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  mb->every = n;
  mb->every_left = 1;
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_fail_next (struct backend *be, unsigned kinds, unsigned n)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  mb->next_kinds = kinds;
  mb->next_left = n;
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_hold (struct backend *be, unsigned kinds, bool hold)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  if (hold)
    mb->hold_kinds |= kinds;
  else
    mb->hold_kinds &= ~kinds;
  pthread_cond_broadcast (&mb->released);
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_heal (struct backend *be)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  mb->fail_kinds = 0;
  mb->nranges = 0;
  mb->every = 0;
  mb->next_left = 0;
  __atomic_store_n (&mb->health, BACKEND_UP, __ATOMIC_RELAXED);
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_set_health (struct backend *be, enum backend_health health)
{
  struct mem_backend *mb = mem_backend (be);

  __atomic_store_n (&mb->health, health, __ATOMIC_RELAXED);
}

void
mem_backend_set_yield (struct backend *be, bool yield)
{
  struct mem_backend *mb = mem_backend (be);

  __atomic_store_n (&mb->yield, yield, __ATOMIC_RELAXED);
}

void
mem_backend_counters (struct backend *be, struct mem_counters *c)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  *c = mb->count;
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_peek (struct backend *be, uint64_t slot, void *buf)
{
  struct mem_backend *mb = mem_backend (be);

  if (slot >= be->nslots) {
    log_error ("%s: peek at slot %" PRIu64 " past the end (%" PRIu64
               " slots)", be->target, slot, be->nslots);
    abort ();
  }
  pthread_mutex_lock (&mb->lock);
  if (mb->data)
    memcpy (buf, mb->data + slot * PAGE_SIZE, PAGE_SIZE);
  else
    memset (buf, 0, PAGE_SIZE);
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_poke (struct backend *be, uint64_t slot, const void *buf)
{
  struct mem_backend *mb = mem_backend (be);

  if (slot >= be->nslots || mb->data == NULL) {
    log_error ("%s: poke at slot %" PRIu64 " of %" PRIu64 " slots, %s",
               be->target, slot, be->nslots,
               mb->data ? "past the end" : "never written");
    abort ();
  }
  pthread_mutex_lock (&mb->lock);
  memcpy (mb->data + slot * PAGE_SIZE, buf, PAGE_SIZE);
  pthread_mutex_unlock (&mb->lock);
}

void
mem_backend_set_read_hook (struct backend *be,
                           bool (*fn) (void *arg, uint64_t slot, uint64_t n),
                           void *arg)
{
  struct mem_backend *mb = mem_backend (be);

  pthread_mutex_lock (&mb->lock);
  mb->read_hook = fn;
  mb->read_hook_arg = arg;
  pthread_mutex_unlock (&mb->lock);
}
