/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: background jobs' thread and pace. */

#include <config.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "background.h"
#include "log.h"
#include "page.h"

uint64_t
background_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
background_start (struct background *bg, const char *what,
                  void *(*fn) (void *), void *arg)
{
  pthread_condattr_t attr;
  int err;

  bg->stop = false;
  pthread_mutex_init (&bg->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&bg->wake, &attr);
  pthread_condattr_destroy (&attr);
  err = pthread_create (&bg->thread, NULL, fn, arg);
  if (err) {
    log_error ("%s: starting its thread: %s", what, strerror (err));
    pthread_mutex_destroy (&bg->lock);
    pthread_cond_destroy (&bg->wake);
    return -1;
  }
  return 0;
}

bool
background_sleep (struct background *bg, uint64_t ns)
{
  struct timespec until;
  bool stop;

  clock_gettime (CLOCK_MONOTONIC, &until);
  until.tv_sec += ns / 1000000000;
  until.tv_nsec += ns % 1000000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock (&bg->lock);
  while (!bg->stop &&
         pthread_cond_timedwait (&bg->wake, &bg->lock, &until) != ETIMEDOUT)
    ;
  stop = bg->stop;
  pthread_mutex_unlock (&bg->lock);
  return !stop;
}

bool
background_stopped (struct background *bg)
{
  bool stop;

  pthread_mutex_lock (&bg->lock);
  stop = bg->stop;
  pthread_mutex_unlock (&bg->lock);
  return stop;
}

void
background_halt (struct background *bg)
{
  pthread_mutex_lock (&bg->lock);
  bg->stop = true;
  pthread_cond_broadcast (&bg->wake);
  pthread_mutex_unlock (&bg->lock);
}

void
background_stop (struct background *bg)
{
  background_halt (bg);
  pthread_join (bg->thread, NULL);
  pthread_mutex_destroy (&bg->lock);
  pthread_cond_destroy (&bg->wake);
}

void
pace_begin (struct pace *p, uint64_t limit, uint64_t *rate)
{
  uint64_t now = background_now_ns ();

  *p = (struct pace) {
    .limit = limit, .start = now, .window = now, .rate = rate,
  };
}

bool
pace_charge (struct pace *p, struct background *bg, struct engine *e,
             uint64_t spent, uint64_t done)
{
  uint64_t now;

  p->spent += spent;
  p->unyielded += spent;
  p->done += done;
  if (background_stopped (bg))
    return false;
  now = background_now_ns ();
  if (p->rate && now - p->window >= 1000000000) {
    __atomic_store_n (p->rate, (p->done - p->window_done) * 1000000000
                      / (now - p->window), __ATOMIC_RELAXED);
    p->window = now;
    p->window_done = p->done;
  }
  /* Ahead of the rate: wait until the pages spent are due. */
  if (p->limit > 0) {
    uint64_t due = p->start + (uint64_t) ((double) p->spent * PAGE_SIZE
                                          * 1e9 / p->limit);

    if (due + BACKGROUND_BURST_NS < now)
      p->start += now - due - BACKGROUND_BURST_NS;
    else if (due > now && !background_sleep (bg, due - now))
      return false;
  }
  /* Client requests first. */
  if (p->unyielded >= BACKGROUND_YIELD_PAGES && engine_busy (e)) {
    p->unyielded = 0;
    if (!background_sleep (bg, 1000000))
      return false;
  }
  return true;
}
