/* swaptier: error and debug messages of libswaptier. */

#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int swaptier_debug_alloc;
int swaptier_debug_io;
int swaptier_debug_map;

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
