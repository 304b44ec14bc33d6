/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: error and debug messages of libswaptier. */

#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

int swaptier_debug_alloc;
int swaptier_debug_io;
int swaptier_debug_map;
int swaptier_debug_demote;

/* The default sink: one line on stderr. */
static void
log_stderr (const char *fmt, va_list args)
{
  fprintf (stderr, "swaptier: ");
  vfprintf (stderr, fmt, args);
  fputc ('\n', stderr);
}

static log_sink log_error_sink = log_stderr;
static log_sink log_debug_sink = log_stderr;
static log_sink log_notice_sink = log_stderr;

/* Where log_capture copies this thread's errors.  Initial-exec TLS, as in
 * swapsafe.c: reading it never allocates, even in a dlopen'ed plugin.
 */
static __thread char *log_capture_buf
  __attribute__ ((tls_model ("initial-exec")));
static __thread size_t log_capture_len
  __attribute__ ((tls_model ("initial-exec")));
static __thread bool log_capture_silent
  __attribute__ ((tls_model ("initial-exec")));

void
log_capture (char *buf, size_t len)
{
  log_capture_buf = buf;
  log_capture_len = len;
  log_capture_silent = false;
}

void
log_capture_only (char *buf, size_t len)
{
  log_capture (buf, len);
  log_capture_silent = buf != NULL;
}

void
log_set_notice_sink (log_sink notice)
{
  log_notice_sink = notice ? notice : log_stderr;
}

/* Hand a formatted notice to the notice sink. */
static void log_notice_call (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

static void
log_notice_call (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  log_notice_sink (fmt, args);
  va_end (args);
}

void
log_warning (const char *fmt, ...)
{
  int saved_errno = errno;
  char msg[1024];
  va_list args;

  va_start (args, fmt);
  vsnprintf (msg, sizeof msg, fmt, args);
  va_end (args);
  log_notice_call ("warning: %s", msg);
  errno = saved_errno;
}

void
log_notice (const char *fmt, ...)
{
  int saved_errno = errno;
  va_list args;

  va_start (args, fmt);
  log_notice_sink (fmt, args);
  va_end (args);
  errno = saved_errno;
}

void
log_set_sinks (log_sink error, log_sink debug)
{
  log_error_sink = error ? error : log_stderr;
  log_debug_sink = debug ? debug : log_stderr;
}

/* Callers set errno for their own caller after logging; keep it intact
 * across the sinks all the same, so that "%m" and errno agree.
 */
void
log_error (const char *fmt, ...)
{
  int saved_errno = errno;
  va_list args;

  if (log_capture_buf) {
    va_start (args, fmt);
    vsnprintf (log_capture_buf, log_capture_len, fmt, args);
    va_end (args);
    errno = saved_errno;
    if (log_capture_silent)
      return;
  }
  va_start (args, fmt);
  log_error_sink (fmt, args);
  va_end (args);
  errno = saved_errno;
}

void
log_debug (const char *fmt, ...)
{
  int saved_errno = errno;
  va_list args;

  va_start (args, fmt);
  log_debug_sink (fmt, args);
  va_end (args);
  errno = saved_errno;
}

/* Milliseconds of the monotonic clock. */
static int64_t
log_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
log_error_limited (struct log_limit *limit, const char *fmt, ...)
{
  int saved_errno = errno;
  int64_t now = log_now_ms ();
  unsigned suppressed = 0;
  bool send;
  va_list args;

  pthread_mutex_lock (&limit->lock);
  if (now - limit->window_start >= LOG_LIMIT_WINDOW_MS) {
    suppressed = limit->suppressed;
    limit->window_start = now;
    limit->sent = limit->suppressed = 0;
  }
  send = limit->sent < LOG_LIMIT_BURST;
  if (send)
    limit->sent++;
  else
    limit->suppressed++;
  pthread_mutex_unlock (&limit->lock);
  if (!send)
    return;
  if (suppressed > 0)
    log_error ("(%u more messages like the next one were suppressed)",
               suppressed);
  errno = saved_errno;
  va_start (args, fmt);
  if (log_capture_buf) {
    va_list copy;

    va_copy (copy, args);
    vsnprintf (log_capture_buf, log_capture_len, fmt, copy);
    va_end (copy);
  }
  log_error_sink (fmt, args);
  va_end (args);
  errno = saved_errno;
}
