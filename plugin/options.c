/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: configuration keys of the plugin.
 *
 * backend= is repeatable and the magic key; priority=, capacity=, force=,
 * domain=, connections=, timeout= and grace= apply to the backend just
 * before them, each at most once per backend (spec->given has a bit for
 * each key seen).  The device-wide keys (size=, stripe=, reserve=,
 * max-errors=, mlock=, control=, copies=, repair-rate=) may be given
 * once: a second one is an
 * error, never a silent override (options_once remembers the first).
 * config=FILE, a regular file, reads the same keys, one key=value per
 * line, with # comments and blank lines ignored; it may be repeated.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "backend.h"
#include "domain.h"
#include "engine.h"
#include "localpath.h"
#include "options.h"
#include "pagemap.h"
#include "demote.h"
#include "repair.h"

struct options options = {
  .size = -1,
  .stripe = 16,
  .reserve_percent = 1,
  .max_errors = 8,
  .mlock = true,
  .copies = 1,
  .encrypt = true,
  .checksum = true,
  .repair_rate = REPAIR_RATE_DEFAULT,
  .demote = {
    .on = true, .promote = false,
    .low = DEMOTE_LOW_DEFAULT, .high = DEMOTE_HIGH_DEFAULT,
    .rate = DEMOTE_RATE_DEFAULT,
  },
};

/* Nesting depth of config= files being read (they may not nest). */
static int options_in_file;

/* The device-wide keys, each with the value it was first given (NULL
 * until then).
 */
static struct {
  const char *key;
  const char *value;
} options_once[] = {
  { "size", NULL }, { "stripe", NULL }, { "reserve", NULL },
  { "max-errors", NULL }, { "mlock", NULL }, { "control", NULL },
  { "copies", NULL }, { "repair-rate", NULL }, { "demote", NULL },
  { "demote-low", NULL }, { "demote-high", NULL }, { "demote-rate", NULL },
  { "promote", NULL }, { "checksum", NULL },
};

#define OPTIONS_NONCE (sizeof options_once / sizeof options_once[0])

/* The keys that apply to the backend before them: a bit of spec->given
 * each, in this order.
 */
static const char *const options_backend_keys[] = {
  "priority", "capacity", "force", "connections", "timeout", "grace",
  "domain", "encrypt",
};

#define OPTIONS_NBACKEND_KEYS \
  (sizeof options_backend_keys / sizeof options_backend_keys[0])

/* Refuse key=value if key is a device-wide key given before; otherwise
 * remember it.  Keys that are not device-wide pass.  Returns 0, or -1
 * after nbdkit_error naming both values.
 */
static int
options_check_once (const char *key, const char *value)
{
  unsigned i;

  for (i = 0; i < OPTIONS_NONCE; i++) {
    if (strcmp (key, options_once[i].key) != 0)
      continue;
    if (options_once[i].value) {
      nbdkit_error ("%s= is given twice (%s=%s, then %s=%s); give it once",
                    key, key, options_once[i].value, key, value);
      return -1;
    }
    options_once[i].value = nbdkit_strdup_intern (value);
    return options_once[i].value ? 0 : -1;
  }
  return 0;
}

/* Refuse key if it was given for spec's backend already; otherwise
 * mark it given.  Keys that do not apply to a backend pass.  Returns 0,
 * or -1 after nbdkit_error.
 */
static int
options_check_backend_once (struct backend_spec *spec, const char *key)
{
  unsigned i;

  for (i = 0; i < OPTIONS_NBACKEND_KEYS; i++) {
    if (strcmp (key, options_backend_keys[i]) != 0)
      continue;
    if (spec->given & (1u << i)) {
      nbdkit_error ("%s= is given twice for backend %s; give it once",
                    key, spec->target);
      return -1;
    }
    spec->given |= 1u << i;
    return 0;
  }
  return 0;
}

/* The backend a priority= or capacity= key applies to, or NULL after an
 * error if there is none yet.
 */
static struct backend_spec *
options_last_backend (const char *key)
{
  struct backend_spec *spec;

  if (options.nbackends == 0) {
    nbdkit_error ("%s= must follow the backend= it applies to", key);
    return NULL;
  }
  spec = &options.backend[options.nbackends - 1];
  return options_check_backend_once (spec, key) == 0 ? spec : NULL;
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

/* Open the config= file at path for reading, or return NULL after
 * nbdkit_error: it must be a regular file (a directory or a device would
 * read as nothing, or as garbage).  O_NONBLOCK keeps a FIFO from
 * blocking the open before it is refused.
 */
static FILE *
options_open_file (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  FILE *fp;

  if (fd == -1) {
    nbdkit_error ("config=%s: %m", path);
    return NULL;
  }
  if (fstat (fd, &st) == -1) {
    nbdkit_error ("config=%s: stat: %m", path);
    close (fd);
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    nbdkit_error ("config=%s: not a regular file", path);
    close (fd);
    return NULL;
  }
  fp = fdopen (fd, "r");
  if (fp == NULL) {
    nbdkit_error ("config=%s: %m", path);
    close (fd);
  }
  return fp;
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
  fp = options_open_file (path);
  if (fp == NULL)
    return -1;
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

/* Check the target of a backend= key before it is used: no control
 * characters (they would break the list and the log), and a local target
 * must name a path (localpath.h: file:///PATH, no unknown URI scheme).
 * Returns 0, or -1 after an error naming what is wrong.
 */
static int
options_check_target (const char *value)
{
  int control = localpath_find_control (value);
  char *path;

  if (*value == '\0') {
    nbdkit_error ("backend= needs a path");
    return -1;
  }
  if (control >= 0) {
    nbdkit_error ("backend=: the target holds a control character (byte "
                  "0x%02x at offset %d), which would break the list and "
                  "the log", (unsigned char) value[control], control);
    return -1;
  }
  if (backend_is_uri (value))
    return 0;
  path = localpath_resolve (value);
  free (path);
  return path ? 0 : -1;
}

/* An on/off key (anything nbdkit_parse_bool takes). */
static int
options_on_off (const char *key, const char *value, bool *out)
{
  int r = nbdkit_parse_bool (value);

  if (r == -1) {
    nbdkit_error ("%s=%s: expected on or off", key, value);
    return -1;
  }
  *out = r;
  return 0;
}

/* A rate in bytes a second: 0 (no limit) or at least a page. */
static int
options_rate (const char *key, const char *value, uint64_t *out)
{
  int64_t rate = nbdkit_parse_size (value);

  if (rate == -1) {
    nbdkit_error ("%s=%s: expected a size a second, such as 64M, or 0 "
                  "for no limit", key, value);
    return -1;
  }
  if (rate > 0 && rate < PAGE_SIZE) {
    nbdkit_error ("%s=%s: less than a page (%" PRIu32 ") a second; give "
                  "at least 4K, or 0 for no limit", key, value, PAGE_SIZE);
    return -1;
  }
  *out = rate;
  return 0;
}

/* A demotion watermark, "N" or "N%": 1 to DEMOTE_PERCENT_MAX. */
static int
options_demote_percent (const char *key, const char *value, unsigned *out)
{
  char number[32];
  size_t len = strlen (value);

  if (len > 0 && value[len - 1] == '%')
    len--;
  if (len == 0 || len >= sizeof number) {
    nbdkit_error ("%s=%s: not a percentage", key, value);
    return -1;
  }
  memcpy (number, value, len);
  number[len] = '\0';
  if (nbdkit_parse_unsigned (key, number, out) == -1)
    return -1;
  if (*out < 1 || *out > DEMOTE_PERCENT_MAX) {
    nbdkit_error ("%s=%s: the percentage must be 1 to %d", key, value,
                  DEMOTE_PERCENT_MAX);
    return -1;
  }
  return 0;
}

int
options_config (const char *key, const char *value)
{
  struct backend_spec *spec;

  if (options_check_once (key, value) == -1)
    return -1;
  if (strcmp (key, "backend") == 0) {
    if (options.nbackends == TIERSET_MAX_TIERS) {
      nbdkit_error ("too many backends (at most %d)", TIERSET_MAX_TIERS);
      return -1;
    }
    if (options_check_target (value) == -1)
      return -1;
    spec = &options.backend[options.nbackends++];
    *spec = (struct backend_spec) {
      .target = nbdkit_strdup_intern (value),
      .remote = backend_is_uri (value),
      .connections = TIER_CONNECTIONS_DEFAULT,
      .timeout = TIER_TIMEOUT_DEFAULT,
      .grace = TIER_GRACE_DEFAULT,
      .encrypt = -1,
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
  if (strcmp (key, "force") == 0) {
    int force;

    if ((spec = options_last_backend (key)) == NULL)
      return -1;
    if ((force = nbdkit_parse_bool (value)) == -1) {
      nbdkit_error ("force=%s: expected true or false", value);
      return -1;
    }
    if (spec->remote) {
      nbdkit_error ("force=%s: applies to local files and block devices "
                    "only, not to %s", value, spec->target);
      return -1;
    }
    spec->force = force;
    return 0;
  }
  if (strcmp (key, "connections") == 0 || strcmp (key, "timeout") == 0 ||
      strcmp (key, "grace") == 0)
    return options_remote (key, value);
  if (strcmp (key, "encrypt") == 0) {
    static bool given;
    bool on;

    if (options_on_off (key, value, &on) == -1)
      return -1;
    /* Before the first backend=: the default of all. */
    if (options.nbackends == 0) {
      if (given) {
        nbdkit_error ("encrypt= is given twice before the first backend=; "
                      "give it once");
        return -1;
      }
      given = true;
      options.encrypt = on;
      return 0;
    }
    if ((spec = options_last_backend (key)) == NULL)
      return -1;
    spec->encrypt = on;
    return 0;
  }
  if (strcmp (key, "checksum") == 0)
    return options_on_off (key, value, &options.checksum);
  if (strcmp (key, "domain") == 0) {
    if ((spec = options_last_backend (key)) == NULL ||
        domain_check_name (value) == -1)
      return -1;
    spec->domain = nbdkit_strdup_intern (value);
    return spec->domain ? 0 : -1;
  }
  if (strcmp (key, "copies") == 0) {
    if (nbdkit_parse_unsigned ("copies", value, &options.copies) == -1)
      return -1;
    if (options.copies < 1 || options.copies > PAGEMAP_COPIES_MAX) {
      nbdkit_error ("copies=%s: out of range (1 to %d)", value,
                    PAGEMAP_COPIES_MAX);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "repair-rate") == 0)
    return options_rate (key, value, &options.repair_rate);
  if (strcmp (key, "demote") == 0)
    return options_on_off (key, value, &options.demote.on);
  if (strcmp (key, "promote") == 0)
    return options_on_off (key, value, &options.demote.promote);
  if (strcmp (key, "demote-low") == 0)
    return options_demote_percent (key, value, &options.demote.low);
  if (strcmp (key, "demote-high") == 0)
    return options_demote_percent (key, value, &options.demote.high);
  if (strcmp (key, "demote-rate") == 0)
    return options_rate (key, value, &options.demote.rate);
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
  if (strcmp (key, "mlock") == 0)
    return options_on_off (key, value, &options.mlock);
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
  if (options.demote.low >= options.demote.high) {
    nbdkit_error ("demote-low=%u%% must be below demote-high=%u%%",
                  options.demote.low, options.demote.high);
    return -1;
  }
  return 0;
}
