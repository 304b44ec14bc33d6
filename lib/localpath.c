/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the local path that a backend target names (see localpath.h). */

#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hexdigit.h"
#include "localpath.h"
#include "log.h"

#define LOCALPATH_SCHEMES "paths or nbd://, nbds://, nbd+unix://, " \
  "nbds+unix://, nbd+vsock:// or nbds+vsock:// URIs"

int
localpath_find_control (const char *s)
{
  size_t i;

  for (i = 0; s[i]; i++)
    if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return i;
  return -1;
}

/* Refuse s (the target, or the path it decodes to) if it holds a control
 * character, without printing it.  Returns 0, or -1 after log_error.
 */
static int
localpath_check_control (const char *s, const char *what)
{
  int i = localpath_find_control (s);

  if (i == -1)
    return 0;
  log_error ("a backend %s holds a control character (byte 0x%02x at "
             "offset %d), which would break the list and the log",
             what, (unsigned char) s[i], i);
  return -1;
}

/* The length of the URI scheme that target begins with (the part before
 * "://"), or 0 if it does not begin like a URI.
 */
static size_t
localpath_scheme_length (const char *target)
{
  size_t i;

  if (!((target[0] >= 'a' && target[0] <= 'z') ||
        (target[0] >= 'A' && target[0] <= 'Z')))
    return 0;
  for (i = 1; target[i]; i++) {
    char c = target[i];

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')
      continue;
    return strncmp (target + i, "://", 3) == 0 ? i : 0;
  }
  return 0;
}

/* The path of the file URI target, whose part after "file://" is rest:
 * decoded, or NULL after log_error.
 */
static char *
localpath_file_uri (const char *target, const char *rest)
{
  const char *p = strchr (rest, '/');
  char *path, *out;

  if (p == NULL || (p != rest && !(p - rest == 9 &&
                                   strncasecmp (rest, "localhost", 9) == 0))) {
    log_error ("%s: a file URI names a local file: file:///PATH or "
               "file://localhost/PATH", target);
    return NULL;
  }
  if (strpbrk (p, "?#")) {
    log_error ("%s: a file URI with a query or fragment ('?' or '#'; "
               "escape them in a path as %%3F and %%23)", target);
    return NULL;
  }
  path = out = malloc (strlen (p) + 1);
  if (path == NULL) {
    log_error ("%s: %m", target);
    return NULL;
  }
  for (; *p; p++) {
    int hi, lo;

    if (*p != '%') {
      *out++ = *p;
      continue;
    }
    if ((hi = hexdigit_value (p[1])) == -1 || (lo = hexdigit_value (p[2])) == -1
        || (hi | lo) == 0) {
      log_error ("%s: bad %%-escape in the file URI (%%XX, XX two hex "
                 "digits, not 00)", target);
      free (path);
      return NULL;
    }
    *out++ = hi << 4 | lo;
    p += 2;
  }
  *out = '\0';
  return path;
}

char *
localpath_resolve (const char *target)
{
  size_t scheme;
  char *path;

  if (localpath_check_control (target, "target") == -1)
    return NULL;
  scheme = localpath_scheme_length (target);
  if (scheme == 4 && strncasecmp (target, "file", 4) == 0)
    path = localpath_file_uri (target, target + 7);
  else if (scheme > 0) {
    log_error ("%s: unknown URI scheme '%.*s' (backends are "
               LOCALPATH_SCHEMES ")", target, (int) scheme, target);
    return NULL;
  }
  else if ((path = strdup (target)) == NULL)
    log_error ("%s: %m", target);
  if (path && localpath_check_control (path, "path") == -1) {
    free (path);
    return NULL;
  }
  return path;
}
