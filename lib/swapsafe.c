/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: living under memory pressure. */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "log.h"
#include "swapsafe.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Whether this thread was marked.  Initial-exec TLS lives in the static
 * TLS block, so even in a dlopen'ed plugin reading it never allocates.
 */
static __thread bool swapsafe_marked __attribute__ ((tls_model ("initial-exec")));

/* Warn once per process about a missing PR_SET_IO_FLUSHER. */
static bool swapsafe_warned;

/* Mark the calling thread an I/O flusher; warn once if that cannot be. */
static void
swapsafe_mark_thread (void)
{
  swapsafe_marked = true;
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0)
    return;
  if (!__atomic_exchange_n (&swapsafe_warned, true, __ATOMIC_RELAXED))
    log_warning ("PR_SET_IO_FLUSHER: %m (%s); serving swap for "
               "this same machine may deadlock under memory pressure",
               errno == EINVAL ? "kernel older than 5.6"
               : "needs CAP_SYS_RESOURCE");
}

int
swapsafe_setup (bool lock_memory)
{
  pthread_attr_t attr;
  int err;

  err = pthread_attr_init (&attr);
  if (err == 0)
    err = pthread_attr_setstacksize (&attr, SWAPSAFE_THREAD_STACK);
  if (err == 0)
    err = pthread_setattr_default_np (&attr);
  pthread_attr_destroy (&attr);
  if (err) {
    log_error ("setting the default thread stack size: %s", strerror (err));
    return -1;
  }

  if (lock_memory &&
      mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
    log_error ("mlockall: %m: cannot lock the plugin's memory (raise "
               "RLIMIT_MEMLOCK, run as root, or set mlock=off and accept "
               "that swapping the swap server itself can deadlock)");
    return -1;
  }
  swapsafe_mark_thread ();
  return 0;
}

/* Touch SWAPSAFE_STACK_PREFAULT bytes of the calling thread's stack. */
static void __attribute__ ((noinline))
swapsafe_touch_stack (void)
{
  volatile char depth[SWAPSAFE_STACK_PREFAULT];
  size_t i;

  for (i = 0; i < sizeof depth; i += 4096)
    depth[i] = 0;
}

void
swapsafe_enter_io (void)
{
  if (!swapsafe_marked) {
    swapsafe_mark_thread ();
    swapsafe_touch_stack ();
  }
}

void
swapsafe_prefault (void *p, size_t len)
{
  volatile char *c = p;
  size_t i;

  if (len == 0)
    return;
  if (madvise (p, len, MADV_POPULATE_WRITE) == 0)
    return;
  /* Kernels before 5.14: write to each page (its content is unchanged). */
  for (i = 0; i < len; i += 4096)
    c[i] = c[i];
  c[len - 1] = c[len - 1];
}
