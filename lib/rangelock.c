/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: page range lock. */

#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "log.h"
#include "rangelock.h"

struct rangelock_entry {
  bool used;
  bool exclusive;
  uint64_t start, end;                 /* pages [start, end) */
  uint64_t ticket;                     /* arrival order */
};

struct rangelock {
  pthread_mutex_t lock;
  pthread_cond_t changed;              /* an entry was released */
  unsigned nentries;
  uint64_t next_ticket;
  struct rangelock_entry entry[];
};

struct rangelock *
rangelock_create (unsigned nentries)
{
  struct rangelock *rl;

  rl = calloc (1, sizeof *rl + nentries * sizeof rl->entry[0]);
  if (rl == NULL) {
    log_error ("range lock: %m");
    return NULL;
  }
  pthread_mutex_init (&rl->lock, NULL);
  pthread_cond_init (&rl->changed, NULL);
  rl->nentries = nentries;
  return rl;
}

void
rangelock_destroy (struct rangelock *rl)
{
  if (rl) {
    pthread_cond_destroy (&rl->changed);
    pthread_mutex_destroy (&rl->lock);
    free (rl);
  }
}

/* Whether entry e must wait for an earlier entry (called with the lock). */
static bool
rangelock_blocked (const struct rangelock *rl, const struct rangelock_entry *e)
{
  unsigned i;

  for (i = 0; i < rl->nentries; i++) {
    const struct rangelock_entry *o = &rl->entry[i];

    if (o->used && o->ticket < e->ticket &&
        o->start < e->end && e->start < o->end &&
        (o->exclusive || e->exclusive))
      return true;
  }
  return false;
}

/* A free entry's index, or nentries if all are taken (with the lock). */
static unsigned
rangelock_free_entry (const struct rangelock *rl)
{
  unsigned i;

  for (i = 0; i < rl->nentries; i++)
    if (!rl->entry[i].used)
      break;
  return i;
}

unsigned
rangelock_acquire (struct rangelock *rl, uint64_t start, uint64_t end,
                   bool exclusive)
{
  struct rangelock_entry *e;
  unsigned idx;

  pthread_mutex_lock (&rl->lock);
  while ((idx = rangelock_free_entry (rl)) == rl->nentries)
    pthread_cond_wait (&rl->changed, &rl->lock);
  e = &rl->entry[idx];
  *e = (struct rangelock_entry) {
    .used = true, .exclusive = exclusive, .start = start, .end = end,
    .ticket = rl->next_ticket++,
  };
  while (rangelock_blocked (rl, e))
    pthread_cond_wait (&rl->changed, &rl->lock);
  pthread_mutex_unlock (&rl->lock);
  return idx;
}

void
rangelock_release (struct rangelock *rl, unsigned idx)
{
  pthread_mutex_lock (&rl->lock);
  rl->entry[idx].used = false;
  pthread_cond_broadcast (&rl->changed);
  pthread_mutex_unlock (&rl->lock);
}

/* Whether an entry older than ticket is in use (called with the lock). */
static bool
rangelock_older (const struct rangelock *rl, uint64_t ticket)
{
  unsigned i;

  for (i = 0; i < rl->nentries; i++)
    if (rl->entry[i].used && rl->entry[i].ticket < ticket)
      return true;
  return false;
}

void
rangelock_sync (struct rangelock *rl)
{
  uint64_t ticket;

  pthread_mutex_lock (&rl->lock);
  ticket = rl->next_ticket;
  while (rangelock_older (rl, ticket))
    pthread_cond_wait (&rl->changed, &rl->lock);
  pthread_mutex_unlock (&rl->lock);
}
