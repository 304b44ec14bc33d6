/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: running a request's independent jobs at once.
 *
 * Each helper has a mailbox: the job it is given (NULL when idle) and
 * whether it finished it, guarded by the mailbox's lock and signalled
 * both ways by its condition variable.  Only the request holding the
 * slot uses that slot's helpers, so a mailbox has one writer at a time.
 */

#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"
#include "log.h"
#include "swapsafe.h"

struct fanout_helper {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  const struct fanout_job *job;        /* given, not yet taken back */
  bool done;                           /* job has run */
  bool stop;
  bool started;
  pthread_t thread;
};

struct fanout {
  unsigned nslots, width;
  bool serving;
  struct fanout_helper *helper;        /* nslots * (width - 1) */
};

struct fanout *
fanout_create (unsigned nslots, unsigned width)
{
  struct fanout *f;
  size_t i, n;

  if (width < 1 || width > FANOUT_WIDTH_MAX) {
    log_error ("fanout: width %u (1 to %d)", width, FANOUT_WIDTH_MAX);
    return NULL;
  }
  n = (size_t) nslots * (width - 1);
  f = calloc (1, sizeof *f);
  if (f == NULL || (n > 0 && (f->helper = calloc (n, sizeof *f->helper))
                    == NULL)) {
    log_error ("fanout: %m");
    free (f);
    return NULL;
  }
  f->nslots = nslots;
  f->width = width;
  for (i = 0; i < n; i++) {
    pthread_mutex_init (&f->helper[i].lock, NULL);
    pthread_cond_init (&f->helper[i].cond, NULL);
  }
  return f;
}

/* A helper: run each job given, until told to stop. */
static void *
fanout_helper_thread (void *arg)
{
  struct fanout_helper *h = arg;

  swapsafe_enter_io ();
  pthread_mutex_lock (&h->lock);
  for (;;) {
    while (!h->stop && (h->job == NULL || h->done))
      pthread_cond_wait (&h->cond, &h->lock);
    if (h->stop)
      break;
    pthread_mutex_unlock (&h->lock);
    h->job->fn (h->job->arg);
    pthread_mutex_lock (&h->lock);
    h->done = true;
    pthread_cond_broadcast (&h->cond);
  }
  pthread_mutex_unlock (&h->lock);
  return NULL;
}

int
fanout_serve (struct fanout *f)
{
  size_t i, n = (size_t) f->nslots * (f->width - 1);
  int err;

  for (i = 0; i < n; i++) {
    err = pthread_create (&f->helper[i].thread, NULL, fanout_helper_thread,
                          &f->helper[i]);
    if (err) {
      log_error ("fanout: starting a helper thread: %s", strerror (err));
      return -1;
    }
    f->helper[i].started = true;
  }
  __atomic_store_n (&f->serving, n > 0, __ATOMIC_RELEASE);
  return 0;
}

void
fanout_run (struct fanout *f, unsigned slot, const struct fanout_job *jobs,
            unsigned n)
{
  struct fanout_helper *h;
  unsigned i;

  if (n < 2 || !__atomic_load_n (&f->serving, __ATOMIC_ACQUIRE)) {
    for (i = 0; i < n; i++)
      jobs[i].fn (jobs[i].arg);
    return;
  }
  h = f->helper + (size_t) slot * (f->width - 1);
  for (i = 1; i < n; i++) {
    pthread_mutex_lock (&h[i - 1].lock);
    h[i - 1].job = &jobs[i];
    h[i - 1].done = false;
    pthread_cond_broadcast (&h[i - 1].cond);
    pthread_mutex_unlock (&h[i - 1].lock);
  }
  jobs[0].fn (jobs[0].arg);
  for (i = 1; i < n; i++) {
    pthread_mutex_lock (&h[i - 1].lock);
    while (!h[i - 1].done)
      pthread_cond_wait (&h[i - 1].cond, &h[i - 1].lock);
    h[i - 1].job = NULL;
    pthread_mutex_unlock (&h[i - 1].lock);
  }
}

void
fanout_destroy (struct fanout *f)
{
  size_t i, n;

  if (f == NULL)
    return;
  n = (size_t) f->nslots * (f->width - 1);
  for (i = 0; i < n; i++) {
    struct fanout_helper *h = &f->helper[i];

    pthread_mutex_lock (&h->lock);
    h->stop = true;
    pthread_cond_broadcast (&h->cond);
    pthread_mutex_unlock (&h->lock);
    if (h->started)
      pthread_join (h->thread, NULL);
    pthread_mutex_destroy (&h->lock);
    pthread_cond_destroy (&h->cond);
  }
  free (f->helper);
  free (f);
}
