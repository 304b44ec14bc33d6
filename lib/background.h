/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: what the background jobs (the repairer, the demoter) share:
 * a thread that sleeps until it is due or stopped, and a pace.
 *
 * A pace keeps a job under a rate: it counts the pages a job read or
 * wrote (spent) and the pages it got done, and sleeps whenever spent is
 * ahead of limit bytes a second since the job began.  Time spent behind
 * the rate (waiting for clients, slow backends) is not made up for later
 * beyond BACKGROUND_BURST_NS, so the rate holds over any second.  While
 * client requests are in progress it also sleeps a millisecond before
 * the next step once every BACKGROUND_YIELD_PAGES pages spent, so that
 * they go first (a sleep per step would cap a job moving single pages,
 * as copies of random writes are, at a thousand a second).  The pages done per second,
 * measured over about a second, are published in *rate for the status
 * of the job.
 */

#ifndef SWAPTIER_BACKGROUND_H
#define SWAPTIER_BACKGROUND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define BACKGROUND_BURST_NS 100000000  /* how far behind it may catch up */
#define BACKGROUND_YIELD_PAGES 16      /* pages between yields to clients */

struct background {
  pthread_t thread;
  pthread_mutex_t lock;                /* guards stop, for the waits */
  pthread_cond_t wake;
  bool stop;
};

/* Start thread fn (arg) as the job of bg.  Returns 0, or -1 after
 * log_error naming what (a job's name).
 */
extern int background_start (struct background *bg, const char *what,
                             void *(*fn) (void *), void *arg);

/* Sleep ns nanoseconds, or until stopped.  Returns false if stopped. */
extern bool background_sleep (struct background *bg, uint64_t ns);

/* Whether the job was told to stop. */
extern bool background_stopped (struct background *bg);

/* Tell the job to stop after the step it is taking, without waiting. */
extern void background_halt (struct background *bg);

/* Tell the job to stop, wait for it and release bg. */
extern void background_stop (struct background *bg);

/* Nanoseconds on the monotonic clock. */
extern uint64_t background_now_ns (void);

struct pace {
  uint64_t limit;                      /* bytes a second, 0: none */
  uint64_t start, spent;               /* since: ns; pages */
  uint64_t unyielded;                  /* pages spent since a yield */
  uint64_t window, window_done, done;  /* the rate's measure */
  uint64_t *rate;                      /* atomic: pages done a second, or
                                          NULL */
};

/* Begin pacing a job of engine e at limit bytes a second (0: none),
 * publishing its rate in *rate (unless rate is NULL).
 */
extern void pace_begin (struct pace *p, uint64_t limit, uint64_t *rate);

/* Count spent pages read or written and done pages achieved, then wait
 * as the rate and the clients of e require.  Returns false if bg was
 * stopped meanwhile.
 */
extern bool pace_charge (struct pace *p, struct background *bg,
                         struct engine *e, uint64_t spent, uint64_t done);

#endif /* SWAPTIER_BACKGROUND_H */
