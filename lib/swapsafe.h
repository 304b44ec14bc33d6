/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: living under memory pressure.
 *
 * The kernel swaps to us exactly when memory is short, so the process
 * that serves swap must make progress without needing memory that only
 * swapping could free.  swapsafe_setup makes thread stacks small, locks
 * the process's memory, and marks the calling thread an I/O flusher
 * (PR_SET_IO_FLUSHER: its allocations do not recurse into I/O, and it is
 * not throttled for the dirty pages of the device it serves); threads
 * created afterwards inherit that mark.
 *
 * Memory is locked as it is faulted in (MCL_ONFAULT), not all at once:
 * nbdkit itself reserves large areas it never touches, which would
 * otherwise take hundreds of MiB from the very machine that is short of
 * memory.  What the I/O path needs is therefore touched beforehand: the
 * library's buffers and maps at setup (swapsafe_prefault), and each
 * thread's stack when it first serves I/O (swapsafe_enter_io).
 */

#ifndef SWAPTIER_SWAPSAFE_H
#define SWAPTIER_SWAPSAFE_H

#include <stdbool.h>
#include <stddef.h>

/* Stack size of the threads created after swapsafe_setup. */
#define SWAPSAFE_THREAD_STACK (256 * 1024)

/* Set up the process (in the process that will serve I/O, after any
 * fork: locks are not inherited).  With lock_memory, failing to lock is
 * an error (-1 after log_error); a kernel without PR_SET_IO_FLUSHER or a
 * process without the right to set it only gets a warning.
 */
extern int swapsafe_setup (bool lock_memory);

/* Stack depth touched (so locked) by each thread before its first I/O. */
#define SWAPSAFE_STACK_PREFAULT (64 * 1024)

/* Called by each thread as it serves a request: the first time, marks it
 * an I/O flusher and touches its stack.  Costs one thread-local test
 * afterwards; allocates nothing.
 */
extern void swapsafe_enter_io (void);

/* Fault in (and so lock, after swapsafe_setup) every page of [p, p+len). */
extern void swapsafe_prefault (void *p, size_t len);

#endif /* SWAPTIER_SWAPSAFE_H */
