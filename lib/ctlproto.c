/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the control protocol. */

#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ctlproto.h"
#include "hexdigit.h"
#include "page.h"
#include "tierset.h"

/* The most words in a command: add, its target and each of its eight
 * keys once.
 */
#define CTL_WORDS_MAX 10

/* The commands, with the number of words that may follow each. */
static const struct {
  const char *name;
  enum ctl_verb verb;
  unsigned min, max;
  const char *usage;
} ctlproto_verbs[] = {
  { "list", CTL_LIST, 0, 0, "list" },
  { "stats", CTL_STATS, 0, 0, "stats" },
  { "add", CTL_ADD, 1, CTL_WORDS_MAX - 1,
    "add TARGET [priority=N] [capacity=SIZE] [force=BOOL] [connections=N] "
    "[timeout=SECONDS] [grace=SECONDS] [domain=NAME] [encrypt=BOOL]" },
  { "priority", CTL_PRIORITY, 2, 2, "priority ID N" },
  { "remove", CTL_REMOVE, 1, 3, "remove ID [rate=SIZE] [force=BOOL]" },
  { "drain", CTL_DRAIN, 0, 0, "drain" },
  { "cancel", CTL_CANCEL, 0, 0, "cancel" },
  { "revive", CTL_REVIVE, 1, 1, "revive ID" },
  { "stop", CTL_STOP, 0, 0, "stop" },
  { "help", CTL_HELP, 0, 0, "help" },
};

#define CTL_NVERBS (sizeof ctlproto_verbs / sizeof ctlproto_verbs[0])

/* Write a message into err (errlen bytes) and return -1. */
static int __attribute__ ((format (printf, 3, 4)))
ctlproto_error (char *err, size_t errlen, const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  vsnprintf (err, errlen, fmt, args);
  va_end (args);
  return -1;
}

/* Unescape the len bytes at p into out, which holds len + 1 bytes at
 * least, and NUL-terminate it.  Returns false for a bad escape or an
 * escaped NUL byte.
 */
static bool
ctlproto_unescape (const char *p, size_t len, char *out)
{
  size_t i;

  for (i = 0; i < len; i++) {
    int hi, lo;

    if (p[i] != '%') {
      *out++ = p[i];
      continue;
    }
    if (len - i < 3 || (hi = hexdigit_value (p[i + 1])) == -1 ||
        (lo = hexdigit_value (p[i + 2])) == -1 || (hi | lo) == 0)
      return false;
    *out++ = hi << 4 | lo;
    i += 2;
  }
  *out = '\0';
  return true;
}

/* Parse s, decimal digits only, as a number from min to max. */
static bool
ctlproto_number (const char *s, int64_t min, int64_t max, int64_t *n)
{
  bool negative = *s == '-';
  int64_t v = 0;

  if (negative)
    s++;
  if (*s == '\0')
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (*s - '0');
  }
  if (negative)
    v = -v;
  if (v < min || v > max)
    return false;
  *n = v;
  return true;
}

/* Parse s as a size: a number of bytes with an optional binary suffix. */
static bool
ctlproto_size (const char *s, uint64_t *bytes)
{
  static const char suffixes[] = "kMGTPE";
  uint64_t v = 0;
  unsigned shift = 0;
  const char *p;

  if (*s < '0' || *s > '9')
    return false;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (*s - '0');
  }
  if (*s != '\0') {
    p = strchr (suffixes, *s == 'K' ? 'k' : *s);
    if (p == NULL || s[1] != '\0')
      return false;
    shift = 10 * (p - suffixes + 1);
    if (v > (UINT64_MAX >> shift))
      return false;
  }
  *bytes = v << shift;
  return true;
}

/* Parse s as a boolean, with the words nbdkit accepts, into *b. */
static bool
ctlproto_bool (const char *s, bool *b)
{
  static const char *const words[] = {
    "1", "true", "yes", "on", "0", "false", "no", "off",
  };
  unsigned i;

  for (i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strcasecmp (s, words[i]) == 0) {
      *b = i < 4;
      return true;
    }
  return false;
}

/* Parse the key=value words of add (after its target). */
static int
ctlproto_add_keys (char **word, unsigned n, struct ctl_command *cmd,
                   char *err, size_t errlen)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    char *key = word[i], *value = strchr (key, '=');
    bool seconds;
    int64_t v;

    if (value == NULL)
      return ctlproto_error (err, errlen, "'%.40s' is not key=value", key);
    *value++ = '\0';
    seconds = strcmp (key, "timeout") == 0 || strcmp (key, "grace") == 0;
    if (strcmp (key, "priority") == 0) {
      if (cmd->has_priority)
        return ctlproto_error (err, errlen, "priority= is given twice");
      if (!ctlproto_number (value, TIERSET_PRIORITY_MIN,
                            TIERSET_PRIORITY_MAX, &v))
        return ctlproto_error (err, errlen, "priority=%.40s: not a number "
                               "from %d to %d", value, TIERSET_PRIORITY_MIN,
                               TIERSET_PRIORITY_MAX);
      cmd->has_priority = true;
      cmd->priority = v;
    }
    else if (strcmp (key, "capacity") == 0) {
      if (cmd->capacity)
        return ctlproto_error (err, errlen, "capacity= is given twice");
      if (!ctlproto_size (value, &cmd->capacity))
        return ctlproto_error (err, errlen, "capacity=%.40s: not a size "
                               "(bytes, or a number with k, M, G, T, P "
                               "or E)", value);
      if (cmd->capacity < PAGE_SIZE)
        return ctlproto_error (err, errlen, "capacity=%.40s: at least one "
                               "%" PRIu32 "-byte slot is needed", value,
                               PAGE_SIZE);
    }
    else if (strcmp (key, "force") == 0) {
      if (cmd->has_force)
        return ctlproto_error (err, errlen, "force= is given twice");
      if (!ctlproto_bool (value, &cmd->force))
        return ctlproto_error (err, errlen, "force=%.40s: not true or "
                               "false", value);
      cmd->has_force = true;
    }
    else if (strcmp (key, "connections") == 0 || seconds) {
      unsigned *field = seconds ? (key[0] == 't' ? &cmd->timeout
                                   : &cmd->grace)
                        : &cmd->connections;
      int64_t max = seconds ? TIER_SECONDS_MAX : TIER_CONNECTIONS_MAX;

      if (*field)
        return ctlproto_error (err, errlen, "%s= is given twice", key);
      if (!ctlproto_number (value, 1, max, &v))
        return ctlproto_error (err, errlen, "%s=%.40s: not a number from 1 "
                               "to %" PRIi64, key, value, max);
      *field = v;
    }
    else if (strcmp (key, "domain") == 0) {
      if (cmd->domain[0])
        return ctlproto_error (err, errlen, "domain= is given twice");
      if (!domain_name_valid (value))
        return ctlproto_error (err, errlen, "domain=%.40s: a domain name "
                               "has 1 to %d bytes, only letters, digits "
                               "and . _ : / @ -", value, DOMAIN_NAME_MAX);
      strcpy (cmd->domain, value);
    }
    else if (strcmp (key, "encrypt") == 0) {
      if (cmd->has_encrypt)
        return ctlproto_error (err, errlen, "encrypt= is given twice");
      if (!ctlproto_bool (value, &cmd->encrypt))
        return ctlproto_error (err, errlen, "encrypt=%.40s: not on or off",
                               value);
      cmd->has_encrypt = true;
    }
    else
      return ctlproto_error (err, errlen, "unknown key '%.40s' (expected "
                             "priority=, capacity=, force=, connections=, "
                             "timeout=, grace=, domain= or encrypt=)", key);
  }
  return 0;
}

/* Parse the key=value words of remove (after its id). */
static int
ctlproto_remove_keys (char **word, unsigned n, struct ctl_command *cmd,
                      char *err, size_t errlen)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    char *key = word[i], *value = strchr (key, '=');

    if (value == NULL)
      return ctlproto_error (err, errlen, "'%.40s' is not key=value", key);
    *value++ = '\0';
    if (strcmp (key, "rate") == 0) {
      if (cmd->has_rate)
        return ctlproto_error (err, errlen, "rate= is given twice");
      if (!ctlproto_size (value, &cmd->rate) ||
          (cmd->rate > 0 && cmd->rate < PAGE_SIZE))
        return ctlproto_error (err, errlen, "rate=%.40s: not 0 (no limit) "
                               "nor a size of at least 4K a second", value);
      cmd->has_rate = true;
    }
    else if (strcmp (key, "force") == 0) {
      if (cmd->has_force)
        return ctlproto_error (err, errlen, "force= is given twice");
      if (!ctlproto_bool (value, &cmd->force))
        return ctlproto_error (err, errlen, "force=%.40s: not true or "
                               "false", value);
      cmd->has_force = true;
    }
    else
      return ctlproto_error (err, errlen, "unknown key '%.40s' (expected "
                             "rate= or force=)", key);
  }
  return 0;
}

int
ctl_parse (const char *line, size_t len, struct ctl_command *cmd,
           char *err, size_t errlen)
{
  char buf[CTL_LINE_MAX], *out = buf, *word[CTL_WORDS_MAX];
  unsigned n = 0, v;
  size_t i, start;
  int64_t number;

  if (len >= CTL_LINE_MAX)
    return ctlproto_error (err, errlen, "the line is longer than %d bytes",
                           CTL_LINE_MAX - 1);
  if (len > 0 && line[len - 1] == '\r')
    len--;
  for (i = 0; i < len; i++)
    if ((line[i] < ' ' && line[i] != '\t') || line[i] == 0x7f)
      return ctlproto_error (err, errlen, "the line holds a control "
                             "character (byte 0x%02x)",
                             (unsigned char) line[i]);

  /* Split into words and unescape each into buf, which has room for
   * all: a word never grows, and its NUL takes the place of a blank
   * (or of the newline, for the last).
   */
  for (i = 0; i < len; ) {
    if (line[i] == ' ' || line[i] == '\t') {
      i++;
      continue;
    }
    for (start = i; i < len && line[i] != ' ' && line[i] != '\t'; i++)
      ;
    if (n == CTL_WORDS_MAX)
      return ctlproto_error (err, errlen, "too many words (at most %d)",
                             CTL_WORDS_MAX);
    if (!ctlproto_unescape (line + start, i - start, out))
      return ctlproto_error (err, errlen, "bad %%-escape in '%.*s'",
                             (int) (i - start < 40 ? i - start : 40),
                             line + start);
    word[n++] = out;
    out += strlen (out) + 1;
  }
  if (n == 0)
    return ctlproto_error (err, errlen, "empty command (try help)");

  for (v = 0; v < CTL_NVERBS; v++)
    if (strcmp (word[0], ctlproto_verbs[v].name) == 0)
      break;
  if (v == CTL_NVERBS)
    return ctlproto_error (err, errlen, "unknown command '%.40s' (try help)",
                           word[0]);
  if (n - 1 < ctlproto_verbs[v].min || n - 1 > ctlproto_verbs[v].max)
    return ctlproto_error (err, errlen, "usage: %s", ctlproto_verbs[v].usage);

  memset (cmd, 0, sizeof *cmd);
  cmd->verb = ctlproto_verbs[v].verb;
  switch (cmd->verb) {
  case CTL_ADD:
    if (word[1][0] == '\0')
      return ctlproto_error (err, errlen, "add needs a path or URI");
    for (i = 0; word[1][i]; i++)
      if ((unsigned char) word[1][i] < ' ' || word[1][i] == 0x7f)
        return ctlproto_error (err, errlen, "the target holds a control "
                               "character (byte 0x%02x at offset %zu), "
                               "which would break the list and the log",
                               (unsigned char) word[1][i], i);
    strcpy (cmd->target, word[1]);
    return ctlproto_add_keys (word + 2, n - 2, cmd, err, errlen);
  case CTL_PRIORITY:
  case CTL_REMOVE:
  case CTL_REVIVE:
    if (!ctlproto_number (word[1], 0, TIERSET_MAX_IDS - 1, &number))
      return ctlproto_error (err, errlen, "'%.40s' is not a backend id "
                             "(0 to %d)", word[1], TIERSET_MAX_IDS - 1);
    cmd->id = number;
    if (cmd->verb == CTL_REVIVE)
      return 0;
    if (cmd->verb == CTL_REMOVE)
      return ctlproto_remove_keys (word + 2, n - 2, cmd, err, errlen);
    if (!ctlproto_number (word[2], TIERSET_PRIORITY_MIN, TIERSET_PRIORITY_MAX,
                          &number))
      return ctlproto_error (err, errlen, "priority '%.40s' is not a number "
                             "from %d to %d", word[2], TIERSET_PRIORITY_MIN,
                             TIERSET_PRIORITY_MAX);
    cmd->priority = number;
    return 0;
  default:
    return 0;
  }
}

char *
ctl_escape (const char *s, char *out, size_t outlen)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;

  for (; *s; s++) {
    unsigned char c = *s;

    if (c > ' ' && c < 0x7f && c != '%') {
      if (o + 1 >= outlen)
        break;
      out[o++] = c;
    }
    else {
      if (o + 3 >= outlen)
        break;
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

bool
ctl_field (const char *line, const char *key, char *out, size_t outlen)
{
  size_t keylen = strlen (key), len;
  const char *p = line;

  while (*p) {
    if (*p == ' ' || *p == '\t') {
      p++;
      continue;
    }
    len = strcspn (p, " \t");
    if (len > keylen && strncmp (p, key, keylen) == 0 && p[keylen] == '=') {
      p += keylen + 1;
      len -= keylen + 1;
      return len < outlen && ctlproto_unescape (p, len, out);
    }
    p += len;
  }
  return false;
}
