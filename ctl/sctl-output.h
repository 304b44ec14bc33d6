/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: its output, made from the replies of the control socket.
 *
 * A reply (lib/ctlproto.h has the protocol) is data lines, each a record:
 * a word naming its kind ("backend", "total", "drain", "repair", ...)
 * then key=value fields, escaped.  This module reads the fields of a
 * record, and prints records in two ways: as JSON objects whose members
 * are typed by a list of struct sctl_field, sizes in bytes; and as a
 * table of aligned text columns, with sizes as swapon(8) shows them
 * (raw bytes with sctl_bytes).  swaptierctl.c reads the replies and
 * chooses, per command, what to print.
 *
 * Messages go to stderr, after the program's name.  Running out of
 * memory ends the program with SCTL_EXIT_FAILED: no function here
 * returns NULL.  Nothing is thread safe; swaptierctl has one thread.
 */

#ifndef SWAPTIER_SCTL_OUTPUT_H
#define SWAPTIER_SCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes. */
#define SCTL_EXIT_FAILED 1             /* refused, or it failed */
#define SCTL_EXIT_USAGE 2
#define SCTL_EXIT_NO_SERVER 3          /* nothing listens on the socket */

/* Sizes in bytes, not human-readable (--bytes): read by sctl_size. */
extern bool sctl_bytes;

/* The reply to one command: its data lines and its status line. */
struct sctl_reply {
  char **line;
  size_t n;
  char *status;                        /* "ok ..." or "error ..." */
};

/* The type of a field of a record, for the output. */
enum sctl_type {
  SCTL_TEXT,
  SCTL_NUMBER,
  SCTL_SLOTS,                          /* a count of slots: shown as bytes */
};

/* A field of a record and its type. */
struct sctl_field {
  const char *key;
  enum sctl_type type;
};

/* The fields of each record, in output order, ending with a NULL key. */
extern const struct sctl_field sctl_backend_fields[];
extern const struct sctl_field sctl_total_fields[];
extern const struct sctl_field sctl_drain_fields[];
extern const struct sctl_field sctl_stats_fields[];

/* Print a message on stderr, prefixed with the program's name. */
extern void sctl_message (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Returns p; exits with SCTL_EXIT_FAILED after a message if it is NULL
 * (memory ran out).
 */
extern void *sctl_check (void *p);

/* strdup that exits when memory runs out. */
extern char *sctl_strdup (const char *s);

/* Whether line is a record of the given kind. */
extern bool sctl_is (const char *line, const char *record);

/* The first record of a kind in a reply, or NULL. */
extern const char *sctl_record (const struct sctl_reply *r,
                                const char *kind);

/* The value of a field, unescaped and allocated ("" if it is missing). */
extern char *sctl_value (const char *line, const char *key);

/* The value of a numeric field (0 if it is missing). */
extern uint64_t sctl_number (const char *line, const char *key);

/* The page size the server reports in its status line (4096 if it does
 * not).
 */
extern uint64_t sctl_page_size (const struct sctl_reply *r);

/* A size, allocated: bytes with sctl_bytes, else as swapon(8) shows
 * them (512B, 1.5K, 16M, 2.3G, ...).
 */
extern char *sctl_size (uint64_t bytes);

/* A rate, allocated: the field key of line, a count per second as it
 * is, or with bytes, bytes per second as a size followed by "/s".
 */
extern char *sctl_rate (const char *line, const char *key, bool bytes);

/* Print a record as a JSON object of the fields f, sizes in bytes
 * (slots of page_size bytes).  A missing field is left out; a numeric
 * one that is not a number is null, so that the output stays JSON.
 */
extern void sctl_json_record (const char *line, const struct sctl_field *f,
                              uint64_t page_size);

/* Print the reply as one JSON object and a newline: the "backend"
 * records (with fields) under "backends", the "total" record (with
 * total_fields) under "total", and with with_drain, the "drain" record
 * under "drain" and the "repair" record under "repair" (null for an
 * absent record); and the "demote" record under "demote" if the reply
 * has one.
 */
extern void sctl_json_reply (const struct sctl_reply *r,
                             const struct sctl_field *fields,
                             const struct sctl_field *total_fields,
                             bool with_drain);

/* A table of text cells, printed with aligned columns.  Set ncols, head
 * and align, and zero the rest.
 */
struct sctl_table {
  unsigned ncols, nrows;
  const char *const *head;
  const char *align;                   /* 'l' or 'r' per column */
  char **cell;                         /* nrows x ncols, owned */
};

/* Append a row of ncols allocated cells, which the table takes. */
extern void sctl_table_row (struct sctl_table *t, char **cells);

/* Print the table, its header first, and free its cells.  The last
 * column, left-aligned, is not padded.
 */
extern void sctl_table_print (struct sctl_table *t);

#endif /* SWAPTIER_SCTL_OUTPUT_H */
