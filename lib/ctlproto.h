/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the control protocol (control=PATH, swaptierctl).
 *
 * A client sends commands, one per line of at most CTL_LINE_MAX bytes
 * with its newline, words separated by spaces or tabs:
 *
 *   list                      backends, totals, the drain under way
 *   stats                     I/O counters and rates
 *   add TARGET [priority=N] [capacity=SIZE] [force=BOOL]
 *       [connections=N] [timeout=SECONDS] [grace=SECONDS] [domain=NAME]
 *       [encrypt=BOOL]
 *   priority ID N
 *   remove ID [rate=SIZE] [force=BOOL]
 *                             drain backend ID, then close it
 *   drain                     where the last removal is
 *   cancel                    stop the removal under way
 *   revive ID                 put failed backend ID back in service
 *   stop                      stop the server, unless an NBD client is
 *                             connected
 *   help
 *
 * The server answers each line with zero or more data lines, then one
 * status line: "ok" followed by key=value words, or "error MESSAGE".
 * A data line is a word naming the record ("backend", "total",
 * "drain", "warning", "help") and key=value words.  Words are %-escaped
 * both ways: "%XX" stands for the byte of hex value XX, so a path may
 * hold spaces.  SIZE is a number of bytes with an optional suffix k, M,
 * G, T, P or E (powers of 1024).  BOOL is true, false, yes, no, on, off,
 * 1 or 0.  The TARGET of add, once unescaped, may not hold a control
 * character: it would break the list and the log.
 *
 * This file only parses and formats: it has no state and no I/O, so it
 * can be fuzzed alone.
 */

#ifndef SWAPTIER_CTLPROTO_H
#define SWAPTIER_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domain.h"

/* The longest line, its newline included. */
#define CTL_LINE_MAX 4096

enum ctl_verb {
  CTL_LIST,
  CTL_STATS,
  CTL_ADD,
  CTL_PRIORITY,
  CTL_REMOVE,
  CTL_DRAIN,
  CTL_CANCEL,
  CTL_REVIVE,
  CTL_STOP,
  CTL_HELP,
};

struct ctl_command {
  enum ctl_verb verb;
  unsigned id;                         /* priority, remove, revive */
  bool has_priority;                   /* add: priority= given */
  int priority;                        /* add, priority */
  uint64_t capacity;                   /* add: bytes, 0 if not given */
  bool has_force;                      /* add, remove: force= given */
  bool force;                          /* add: local, whatever it holds;
                                          remove: even if the others
                                          cannot hold the device */
  bool has_rate;                       /* remove: rate= given */
  uint64_t rate;                       /* remove: bytes a second, 0 none */
  unsigned connections;                /* add: 0 if not given */
  unsigned timeout, grace;             /* add: seconds, 0 if not given */
  char domain[DOMAIN_NAME_MAX + 1];    /* add: "" if not given */
  bool has_encrypt;                    /* add: encrypt= given */
  bool encrypt;                        /* add: its pages encrypted */
  char target[CTL_LINE_MAX];           /* add: unescaped */
};

/* Parse one line of len bytes, without its newline (a NUL byte is an
 * error, not its end), into *cmd.  Returns 0, or -1 with a message of at
 * most errlen bytes in err saying what is wrong.
 */
extern int ctl_parse (const char *line, size_t len, struct ctl_command *cmd,
                      char *err, size_t errlen);

/* Write the NUL-terminated s into out (outlen bytes, at least 1) with
 * every byte that is not a printable ASCII character other than '%'
 * escaped, truncated to fit (never inside an escape).  Returns out.
 */
extern char *ctl_escape (const char *s, char *out, size_t outlen);

/* Find the word "key=VALUE" in line (a data or status line) and copy
 * VALUE, unescaped, into out (outlen bytes, NUL-terminated).  Returns
 * false if there is no such word, or its value does not fit or holds
 * a NUL byte.
 */
extern bool ctl_field (const char *line, const char *key, char *out,
                       size_t outlen);

#endif /* SWAPTIER_CTLPROTO_H */
