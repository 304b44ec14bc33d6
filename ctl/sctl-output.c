/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: its output, made from the replies of the control socket
 * (sctl-output.h says how).  In order: the fields of the records,
 * messages and allocation, reading fields, sizes and rates, JSON, the
 * text table.
 */

#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "sctl-output.h"

bool sctl_bytes;

const struct sctl_field sctl_backend_fields[] = {
  { "id", SCTL_NUMBER }, { "target", SCTL_TEXT }, { "kind", SCTL_TEXT },
  { "domain", SCTL_TEXT }, { "priority", SCTL_NUMBER }, { "state", SCTL_TEXT },
  { "health", SCTL_TEXT }, { "capacity", SCTL_SLOTS },
  { "used", SCTL_SLOTS }, { "free", SCTL_SLOTS }, { "bad", SCTL_SLOTS },
  { "lost", SCTL_NUMBER }, { "reads", SCTL_NUMBER },
  { "writes", SCTL_NUMBER }, { "errors", SCTL_NUMBER },
  { "demoted", SCTL_NUMBER }, { "promoted", SCTL_NUMBER },
  { "rereads", SCTL_NUMBER }, { "corrupt", SCTL_NUMBER },
  { "encrypted", SCTL_TEXT }, { "failure", SCTL_TEXT }, { NULL },
};
const struct sctl_field sctl_total_fields[] = {
  { "backends", SCTL_NUMBER }, { "pages", SCTL_NUMBER },
  { "spare", SCTL_NUMBER }, { "capacity", SCTL_SLOTS },
  { "used", SCTL_SLOTS }, { "free", SCTL_SLOTS }, { "bad", SCTL_SLOTS },
  { "lost", SCTL_NUMBER }, { "reads", SCTL_NUMBER },
  { "writes", SCTL_NUMBER }, { "errors", SCTL_NUMBER },
  { "copies", SCTL_NUMBER }, { "mapped", SCTL_NUMBER },
  { "degraded", SCTL_NUMBER }, { "demoted", SCTL_NUMBER },
  { "promoted", SCTL_NUMBER }, { "rereads", SCTL_NUMBER },
  { "corrupt", SCTL_NUMBER }, { NULL },
};
const struct sctl_field sctl_drain_fields[] = {
  { "id", SCTL_NUMBER }, { "state", SCTL_TEXT }, { "total", SCTL_NUMBER },
  { "remaining", SCTL_NUMBER }, { "moved", SCTL_NUMBER },
  { "lost", SCTL_NUMBER }, { "dropped", SCTL_NUMBER },
  { "freed", SCTL_NUMBER }, { "rate", SCTL_NUMBER },
  { "limit", SCTL_NUMBER }, { "elapsed_ms", SCTL_NUMBER },
  { "error", SCTL_TEXT }, { NULL },
};
const struct sctl_field sctl_stats_fields[] = {
  { "id", SCTL_NUMBER }, { "target", SCTL_TEXT }, { "reads", SCTL_NUMBER },
  { "writes", SCTL_NUMBER }, { "errors", SCTL_NUMBER },
  { "lost", SCTL_NUMBER }, { "corrupt", SCTL_NUMBER },
  { "demoted", SCTL_NUMBER }, { "promoted", SCTL_NUMBER },
  { "rereads", SCTL_NUMBER },
  { "read_bytes", SCTL_NUMBER }, { "write_bytes", SCTL_NUMBER },
  { "reads_per_s", SCTL_NUMBER }, { "writes_per_s", SCTL_NUMBER },
  { "read_bytes_per_s", SCTL_NUMBER }, { "write_bytes_per_s", SCTL_NUMBER },
  { "read_p50_us", SCTL_NUMBER }, { "read_p99_us", SCTL_NUMBER },
  { "write_p50_us", SCTL_NUMBER }, { "write_p99_us", SCTL_NUMBER },
  { "read_latency_count", SCTL_NUMBER },
  { "read_latency_sum_us", SCTL_NUMBER },
  { "write_latency_count", SCTL_NUMBER },
  { "write_latency_sum_us", SCTL_NUMBER },
  { NULL },
};

/* The fields of a "repair" record, which only sctl_json_reply prints. */
static const struct sctl_field sctl_repair_fields[] = {
  { "state", SCTL_TEXT }, { "degraded", SCTL_NUMBER },
  { "recreated", SCTL_NUMBER }, { "lost", SCTL_NUMBER },
  { "rate", SCTL_NUMBER }, { "limit", SCTL_NUMBER }, { NULL },
};

/* The fields of the "demote" record, likewise. */
static const struct sctl_field sctl_demote_fields[] = {
  { "state", SCTL_TEXT }, { "demoted", SCTL_NUMBER },
  { "promoted", SCTL_NUMBER }, { "rate", SCTL_NUMBER },
  { "limit", SCTL_NUMBER },
  { "low", SCTL_NUMBER }, { "high", SCTL_NUMBER }, { NULL },
};

void
sctl_message (const char *fmt, ...)
{
  va_list args;

  fputs ("swaptierctl: ", stderr);
  va_start (args, fmt);
  vfprintf (stderr, fmt, args);
  va_end (args);
  fputc ('\n', stderr);
}

void *
sctl_check (void *p)
{
  if (p == NULL) {
    sctl_message ("out of memory");
    exit (SCTL_EXIT_FAILED);
  }
  return p;
}

char *
sctl_strdup (const char *s)
{
  return sctl_check (strdup (s));
}

bool
sctl_is (const char *line, const char *record)
{
  size_t len = strlen (record);

  return strncmp (line, record, len) == 0 && line[len] == ' ';
}

const char *
sctl_record (const struct sctl_reply *r, const char *kind)
{
  size_t i;

  for (i = 0; i < r->n; i++)
    if (sctl_is (r->line[i], kind))
      return r->line[i];
  return NULL;
}

char *
sctl_value (const char *line, const char *key)
{
  size_t len = strlen (line) + 1;
  char *value = sctl_check (malloc (len));

  if (!ctl_field (line, key, value, len))
    value[0] = '\0';
  return value;
}

uint64_t
sctl_number (const char *line, const char *key)
{
  char *value = sctl_value (line, key);
  uint64_t n = strtoull (value, NULL, 10);

  free (value);
  return n;
}

uint64_t
sctl_page_size (const struct sctl_reply *r)
{
  uint64_t size = sctl_number (r->status, "page_size");

  return size ? size : 4096;
}

char *
sctl_size (uint64_t bytes)
{
  static const char units[] = "KMGTPE";
  char buf[32];
  double v = bytes;
  int u = -1;

  while (!sctl_bytes && v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  if (u == -1)
    snprintf (buf, sizeof buf, "%" PRIu64 "%s", bytes, sctl_bytes ? "" : "B");
  else if (v < 10 && (uint64_t) (v * 10 + 0.5) % 10 != 0)
    snprintf (buf, sizeof buf, "%.1f%c", v, units[u]);
  else
    snprintf (buf, sizeof buf, "%.0f%c", v, units[u]);
  return sctl_strdup (buf);
}

char *
sctl_rate (const char *line, const char *key, bool bytes)
{
  char *value = sctl_value (line, key), *s;

  if (!bytes)
    return value;
  s = sctl_size (strtoull (value, NULL, 10));
  free (value);
  s = sctl_check (realloc (s, strlen (s) + 3));
  strcat (s, "/s");
  return s;
}

/* Print s as a JSON string. */
static void
sctl_json_string (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    unsigned char c = *s;

    if (c == '"' || c == '\\')
      printf ("\\%c", c);
    else if (c < ' ' || c == 0x7f)
      printf ("\\u%04x", c);
    else
      putchar (c);
  }
  putchar ('"');
}

void
sctl_json_record (const char *line, const struct sctl_field *f,
                  uint64_t page_size)
{
  const char *sep = "";

  putchar ('{');
  for (; f->key; f++) {
    char *value = sctl_value (line, f->key);

    if (value[0]) {
      printf ("%s\"%s\": ", sep, f->key);
      sep = ", ";
      if (f->type == SCTL_TEXT)
        sctl_json_string (value);
      else if (f->type == SCTL_SLOTS)
        printf ("%" PRIu64,
                (uint64_t) strtoull (value, NULL, 10) * page_size);
      /* A number from the server, checked so that the output stays JSON. */
      else if (strspn (value, "-0123456789.") == strlen (value))
        fputs (value, stdout);
      else
        fputs ("null", stdout);
    }
    free (value);
  }
  putchar ('}');
}

void
sctl_json_reply (const struct sctl_reply *r, const struct sctl_field *fields,
                 const struct sctl_field *total_fields, bool with_drain)
{
  uint64_t page_size = sctl_page_size (r);
  const char *sep = "";
  size_t i, total = r->n, drain = r->n, repair = r->n, demote = r->n;

  fputs ("{\"backends\": [", stdout);
  for (i = 0; i < r->n; i++) {
    if (sctl_is (r->line[i], "total"))
      total = i;
    else if (sctl_is (r->line[i], "drain"))
      drain = i;
    else if (sctl_is (r->line[i], "repair"))
      repair = i;
    else if (sctl_is (r->line[i], "demote"))
      demote = i;
    else if (sctl_is (r->line[i], "backend")) {
      fputs (sep, stdout);
      sep = ", ";
      sctl_json_record (r->line[i], fields, page_size);
    }
  }
  fputs ("], \"total\": ", stdout);
  if (total < r->n)
    sctl_json_record (r->line[total], total_fields, page_size);
  else
    fputs ("null", stdout);
  if (with_drain) {
    fputs (", \"drain\": ", stdout);
    if (drain < r->n)
      sctl_json_record (r->line[drain], sctl_drain_fields, page_size);
    else
      fputs ("null", stdout);
    fputs (", \"repair\": ", stdout);
    if (repair < r->n)
      sctl_json_record (r->line[repair], sctl_repair_fields, page_size);
    else
      fputs ("null", stdout);
  }
  /* Demotion, in list and stats alike. */
  if (demote < r->n) {
    fputs (", \"demote\": ", stdout);
    sctl_json_record (r->line[demote], sctl_demote_fields, page_size);
  }
  puts ("}");
}

void
sctl_table_row (struct sctl_table *t, char **cells)
{
  t->cell = sctl_check (realloc (t->cell, (size_t) (t->nrows + 1) * t->ncols
                                 * sizeof *t->cell));
  memcpy (&t->cell[t->nrows * t->ncols], cells, t->ncols * sizeof *cells);
  t->nrows++;
}

void
sctl_table_print (struct sctl_table *t)
{
  size_t *width = sctl_check (calloc (t->ncols, sizeof *width)), len;
  unsigned r, c;

  for (c = 0; c < t->ncols; c++)
    width[c] = strlen (t->head[c]);
  for (r = 0; r < t->nrows * t->ncols; r++)
    if ((len = strlen (t->cell[r])) > width[r % t->ncols])
      width[r % t->ncols] = len;
  for (r = 0; r <= t->nrows; r++) {
    for (c = 0; c < t->ncols; c++) {
      const char *s = r == 0 ? t->head[c] : t->cell[(r - 1) * t->ncols + c];
      int w = c + 1 == t->ncols && t->align[c] == 'l' ? 0 : (int) width[c];

      printf ("%s%*s", c ? "  " : "", t->align[c] == 'l' ? -w : w, s);
    }
    putchar ('\n');
  }
  for (r = 0; r < t->nrows * t->ncols; r++)
    free (t->cell[r]);
  free (t->cell);
  free (width);
}
