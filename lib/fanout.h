/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: running a request's independent jobs at once.
 *
 * A write of a page with several copies writes each copy to another
 * backend; done one after the other, a copy on a remote server 2 ms away
 * would add its 2 ms to every write.  A fanout gives each of nslots
 * request slots (the range lock's entries) width - 1 helper threads of
 * its own: fanout_run runs the first job on the calling thread and the
 * others on the slot's helpers, and returns when all are done.  Nothing
 * is queued, nothing allocated, and no slot waits for another's jobs.
 *
 * The helpers exist only after fanout_serve (threads do not survive
 * nbdkit's fork); before, fanout_run runs the jobs one after the other.
 * Helper threads are I/O flushers like the threads that serve requests
 * (swapsafe.h).
 */

#ifndef SWAPTIER_FANOUT_H
#define SWAPTIER_FANOUT_H

#define FANOUT_WIDTH_MAX 3

/* One job: fn (arg). */
struct fanout_job {
  void (*fn) (void *arg);
  void *arg;
};

struct fanout;

/* A fanout for nslots slots of up to width (1 .. FANOUT_WIDTH_MAX) jobs.
 * NULL after log_error on failure.
 */
extern struct fanout *fanout_create (unsigned nslots, unsigned width);

/* Start the helper threads.  Returns 0, or -1 after log_error (the
 * fanout then keeps running jobs one after the other).
 */
extern int fanout_serve (struct fanout *f);

/* Run jobs[0 .. n-1] (n <= width) for request slot slot and wait for all
 * of them.
 */
extern void fanout_run (struct fanout *f, unsigned slot,
                        const struct fanout_job *jobs, unsigned n);

/* Stop the helpers and free the fanout.  NULL is accepted. */
extern void fanout_destroy (struct fanout *f);

#endif /* SWAPTIER_FANOUT_H */
