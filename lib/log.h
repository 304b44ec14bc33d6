/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: error and debug messages of libswaptier.
 *
 * The library never prints by itself: it hands each message to a sink.
 * There are three: errors, notices (warnings, and the audit trail of
 * the control socket: what an operator did and what came of it) and
 * debug messages.  The nbdkit plugin installs sinks that call
 * nbdkit_verror and nbdkit_vdebug, and one that writes notices to
 * stderr without nbdkit's "error:"; the default sink (unit tests,
 * benchmarks) writes to stderr.
 */

#ifndef SWAPTIER_LOG_H
#define SWAPTIER_LOG_H

#include <stdarg.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*log_sink) (const char *fmt, va_list args);

/* Debug flags, set with nbdkit -D swaptier.FLAG=1.  The plugin shared
 * object exports them under these names, which is where nbdkit looks.
 */
extern int swaptier_debug_alloc;       /* slot allocation and freeing */
extern int swaptier_debug_io;          /* every backend I/O */
extern int swaptier_debug_map;         /* page map changes */
extern int swaptier_debug_demote;      /* what demotion picks and moves */

/* Route errors and debug messages to the given sinks (NULL: stderr). */
extern void log_set_sinks (log_sink error, log_sink debug);

/* Route notices (log_warning, log_notice) to sink (NULL: stderr). */
extern void log_set_notice_sink (log_sink notice);

/* Report something an admin should know that is not an error: the
 * message is prefixed with "warning: ".
 */
extern void log_warning (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Report an event for the record (the audit trail). */
extern void log_notice (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Report an error.  The message names what failed and why. */
extern void log_error (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* A limit on one kind of repeated message: at most LOG_LIMIT_BURST of
 * them per LOG_LIMIT_WINDOW_MS; the first message after a window in
 * which some were suppressed says how many.  Define one per kind with
 * LOG_LIMIT_INIT.
 */
#define LOG_LIMIT_BURST 5
#define LOG_LIMIT_WINDOW_MS 10000
struct log_limit {
  pthread_mutex_t lock;
  int64_t window_start;                /* ms, monotonic */
  unsigned sent, suppressed;
};
#define LOG_LIMIT_INIT { .lock = PTHREAD_MUTEX_INITIALIZER }

/* Report an error unless limit says that enough of its kind were
 * reported lately.
 */
extern void log_error_limited (struct log_limit *limit, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* From now on, also copy each error that the calling thread reports into
 * buf (len bytes, always NUL-terminated, the last error wins); NULL stops
 * it.  For threads that must pass the reason on, such as the control
 * server's.
 */
extern void log_capture (char *buf, size_t len);

/* The same, but the errors of the calling thread go only into buf, not
 * to the error sink: for a thread that reports them otherwise (the
 * control server's, to the client and in its audit line).
 */
extern void log_capture_only (char *buf, size_t len);

/* Report a debug message (callers test the relevant debug flag). */
extern void log_debug (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

#endif /* SWAPTIER_LOG_H */
