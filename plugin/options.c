/* swaptier: configuration keys of the plugin.
 *
 * backend= is repeatable and the magic key; priority= and capacity= apply
 * to the backend just before them.  config=FILE reads the same keys, one
 * key=value per line, with # comments and blank lines ignored.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "backend.h"
#include "engine.h"
#include "options.h"

struct options options = {
  .size = -1,
  .stripe = 16,
  .reserve_percent = 1,
  .max_errors = 8,
  .mlock = true,
};

/* Nesting depth of config= files being read (they may not nest). */
static int options_in_file;

/* The backend a priority= or capacity= key applies to, or NULL after an
 * error if there is none yet.
 */
static struct backend_spec *
options_last_backend (const char *key)
{
  if (options.nbackends == 0) {
    nbdkit_error ("%s= must follow the backend= it applies to", key);
    return NULL;
  }
  return &options.backend[options.nbackends - 1];
}

/* Parse a key that applies to the remote backend just before it:
 * connections= (1 .. 64), timeout= and grace= (seconds, 1 .. 86400).
 */
static int
options_remote (const char *key, const char *value)
{
  struct backend_spec *spec = options_last_backend (key);
  unsigned n, max = strcmp (key, "connections") == 0 ? TIER_CONNECTIONS_MAX
                                                    : TIER_SECONDS_MAX;

  if (spec == NULL || nbdkit_parse_unsigned (key, value, &n) == -1)
    return -1;
  if (!spec->remote) {
    nbdkit_error ("%s=%s: applies to remote backends (NBD URIs) only, "
                  "not to %s", key, value, spec->target);
    return -1;
  }
  if (n < 1 || n > max) {
    nbdkit_error ("%s=%s: out of range (1 to %u)", key, value, max);
    return -1;
  }
  if (strcmp (key, "connections") == 0)
    spec->connections = n;
  else if (strcmp (key, "timeout") == 0)
    spec->timeout = n;
  else
    spec->grace = n;
  return 0;
}

/* Parse reserve=: "N%" (0 .. 50) or a size in bytes. */
static int
options_reserve (const char *value)
{
  size_t len = strlen (value);

  if (len > 0 && value[len - 1] == '%') {
    char number[32];
    int percent;

    if (len > sizeof number) {
      nbdkit_error ("reserve=%s: not a percentage", value);
      return -1;
    }
    memcpy (number, value, len - 1);
    number[len - 1] = '\0';
    if (nbdkit_parse_int ("reserve", number, &percent) == -1)
      return -1;
    if (percent < 0 || percent > 50) {
      nbdkit_error ("reserve=%s: the percentage must be 0 to 50", value);
      return -1;
    }
    options.reserve_percent = percent;
    return 0;
  }
  options.reserve_bytes = nbdkit_parse_size (value);
  if (options.reserve_bytes == -1)
    return -1;
  options.reserve_percent = -1;
  return 0;
}

/* Read key=value lines from a config= file. */
static int
options_file (const char *path)
{
  FILE *fp;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int lineno = 0, r = 0;

  if (options_in_file) {
    nbdkit_error ("config=%s: config= cannot be used inside a config file",
                  path);
    return -1;
  }
  fp = fopen (path, "r");
  if (fp == NULL) {
    nbdkit_error ("config=%s: %m", path);
    return -1;
  }
  options_in_file = 1;
  while (r == 0 && (len = getline (&line, &cap, fp)) != -1) {
    char *p = line, *end = line + len, *eq;

    lineno++;
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' ||
                       end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '\0' || *p == '#')
      continue;
    eq = strchr (p, '=');
    if (eq == NULL || eq == p) {
      nbdkit_error ("%s:%d: expected key=value, got \"%s\"", path, lineno, p);
      r = -1;
      break;
    }
    *eq = '\0';
    r = options_config (p, eq + 1);
    if (r == -1)
      nbdkit_error ("%s:%d: in this line", path, lineno);
  }
  options_in_file = 0;
  free (line);
  fclose (fp);
  return r;
}

int
options_config (const char *key, const char *value)
{
  struct backend_spec *spec;

  if (strcmp (key, "backend") == 0) {
    if (options.nbackends == TIERSET_MAX_TIERS) {
      nbdkit_error ("too many backends (at most %d)", TIERSET_MAX_TIERS);
      return -1;
    }
    if (*value == '\0') {
      nbdkit_error ("backend= needs a path");
      return -1;
    }
    spec = &options.backend[options.nbackends++];
    *spec = (struct backend_spec) {
      .target = nbdkit_strdup_intern (value),
      .remote = backend_is_uri (value),
      .connections = TIER_CONNECTIONS_DEFAULT,
      .timeout = TIER_TIMEOUT_DEFAULT,
      .grace = TIER_GRACE_DEFAULT,
    };
    if (spec->target == NULL)
      return -1;
    return 0;
  }
  if (strcmp (key, "priority") == 0) {
    int priority;

    if ((spec = options_last_backend (key)) == NULL ||
        nbdkit_parse_int ("priority", value, &priority) == -1)
      return -1;
    if (priority < TIERSET_PRIORITY_MIN || priority > TIERSET_PRIORITY_MAX) {
      nbdkit_error ("priority=%s: out of range (%d to %d)", value,
                    TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX);
      return -1;
    }
    spec->priority = priority;
    return 0;
  }
  if (strcmp (key, "capacity") == 0) {
    int64_t capacity;

    if ((spec = options_last_backend (key)) == NULL ||
        (capacity = nbdkit_parse_size (value)) == -1)
      return -1;
    if (spec->remote) {
      nbdkit_error ("capacity=%s: applies to local files only; the size "
                    "of the remote export %s is probed", value, spec->target);
      return -1;
    }
    if (capacity < PAGE_SIZE) {
      nbdkit_error ("capacity=%s: at least one %" PRIu32 "-byte slot is "
                    "needed", value, PAGE_SIZE);
      return -1;
    }
    spec->capacity = capacity;
    return 0;
  }
  if (strcmp (key, "connections") == 0 || strcmp (key, "timeout") == 0 ||
      strcmp (key, "grace") == 0)
    return options_remote (key, value);
  if (strcmp (key, "size") == 0) {
    options.size = nbdkit_parse_size (value);
    if (options.size == -1)
      return -1;
    if (options.size == 0 || options.size % PAGE_SIZE != 0) {
      nbdkit_error ("size=%s: must be a nonzero multiple of %" PRIu32,
                    value, PAGE_SIZE);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "stripe") == 0) {
    if (nbdkit_parse_uint32_t ("stripe", value, &options.stripe) == -1)
      return -1;
    if (options.stripe < 1 || options.stripe > ENGINE_STRIPE_MAX) {
      nbdkit_error ("stripe=%s: out of range (1 to %d pages)",
                    value, ENGINE_STRIPE_MAX);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "reserve") == 0)
    return options_reserve (value);
  if (strcmp (key, "max-errors") == 0) {
    if (nbdkit_parse_unsigned ("max-errors", value, &options.max_errors) == -1)
      return -1;
    if (options.max_errors == 0) {
      nbdkit_error ("max-errors=%s: must be at least 1", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "mlock") == 0) {
    int r = nbdkit_parse_bool (value);

    if (r == -1)
      return -1;
    options.mlock = r;
    return 0;
  }
  if (strcmp (key, "control") == 0) {
    char *path;

    if (*value == '\0') {
      nbdkit_error ("control= needs a path");
      return -1;
    }
    /* Absolute: nbdkit changes directory before the socket is removed. */
    path = nbdkit_absolute_path (value);
    if (path == NULL)
      return -1;
    options.control = nbdkit_strdup_intern (path);
    free (path);
    return options.control ? 0 : -1;
  }
  if (strcmp (key, "config") == 0)
    return options_file (value);

  nbdkit_error ("unknown parameter '%s' (see nbdkit swaptier --help)", key);
  return -1;
}

int
options_complete (void)
{
  if (options.nbackends == 0) {
    nbdkit_error ("no backend: give at least one backend=PATH");
    return -1;
  }
  return 0;
}
