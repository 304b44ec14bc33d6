/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: check and metrics (sctl-monitor.h says what they print).
 * Both read only the records of "list" and "stats" replies, through
 * sctl-output's field readers.
 */

#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sctl-monitor.h"

/* The reasons check found so far, "; "-separated, and the worst code. */
struct sctl_verdict {
  int code;
  char text[1024];
};

/* Add a reason of the given code: the worst reasons come first. */
static void
sctl_verdict_add (struct sctl_verdict *v, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
sctl_verdict_add (struct sctl_verdict *v, int code, const char *fmt, ...)
{
  char reason[256], old[sizeof v->text];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (reason, sizeof reason, fmt, ap);
  va_end (ap);
  strcpy (old, v->text);
  if (code > v->code)
    snprintf (v->text, sizeof v->text, "%s%s%s", reason, old[0] ? "; " : "",
              old);
  else
    snprintf (v->text, sizeof v->text, "%s%s%s", old, old[0] ? "; " : "",
              reason);
  if (code > v->code)
    v->code = code;
}

/* Whether a backend record is failed or its server away, and why (the
 * failure's reason is allocated in *failure, "" if none).
 */
static const char *
sctl_backend_trouble (const char *line, char **state, char **health,
                      char **failure)
{
  *state = sctl_value (line, "state");
  *health = sctl_value (line, "health");
  *failure = sctl_value (line, "failure");
  if (strcmp (*state, "failed") == 0)
    return "failed";
  if ((*health)[0] && strcmp (*health, "up") != 0)
    return strcmp (*health, "dead") == 0 ? "its server is gone"
      : "its server is away (reconnecting)";
  return NULL;
}

int
sctl_check_print (const struct sctl_reply *list)
{
  static const char *const names[] = {
    "OK", "WARNING", "CRITICAL", "UNKNOWN",
  };
  struct sctl_verdict v = { .code = SCTL_CHECK_OK };
  const char *total = NULL;
  uint64_t backends = 0, pages, mapped, lost, degraded;
  size_t i;

  for (i = 0; i < list->n; i++) {
    const char *l = list->line[i];
    char *state, *health, *failure, *target;
    const char *why;

    if (sctl_is (l, "total"))
      total = l;
    if (!sctl_is (l, "backend"))
      continue;
    backends++;
    why = sctl_backend_trouble (l, &state, &health, &failure);
    if (why) {
      target = sctl_value (l, "target");
      sctl_verdict_add (&v, SCTL_CHECK_WARNING, "backend %" PRIu64
                        " (%s) %s%s%s", sctl_number (l, "id"), target, why,
                        failure[0] ? ": " : "", failure);
      free (target);
    }
    free (state);
    free (health);
    free (failure);
  }
  if (total == NULL) {
    printf ("SWAPTIER UNKNOWN: the reply to list has no total\n");
    return SCTL_CHECK_UNKNOWN;
  }
  pages = sctl_number (total, "pages");
  mapped = sctl_number (total, "mapped");
  lost = sctl_number (total, "lost");
  degraded = sctl_number (total, "degraded");
  if (lost > 0)
    sctl_verdict_add (&v, SCTL_CHECK_CRITICAL, "%" PRIu64 " page%s lost "
                      "(every copy failed: reads of %s fail)", lost,
                      lost == 1 ? "" : "s", lost == 1 ? "it" : "them");
  if (degraded > 0)
    sctl_verdict_add (&v, SCTL_CHECK_WARNING, "%" PRIu64 " page%s with "
                      "fewer than %" PRIu64 " copies", degraded,
                      degraded == 1 ? "" : "s",
                      sctl_number (total, "copies"));
  if (pages > 0 && mapped * 100 >= pages * SCTL_CHECK_USED_PERCENT)
    sctl_verdict_add (&v, SCTL_CHECK_WARNING, "%" PRIu64 "%% of the device "
                      "in use", mapped * 100 / pages);
  if (backends == 0)
    sctl_verdict_add (&v, SCTL_CHECK_WARNING, "no backend");
  if (v.code == SCTL_CHECK_OK) {
    char *size = sctl_size (pages * sctl_page_size (list));

    snprintf (v.text, sizeof v.text, "%" PRIu64 " backend%s serving, %"
              PRIu64 "%% of %s in use, no page lost", backends,
              backends == 1 ? "" : "s", pages ? mapped * 100 / pages : 0,
              size);
    free (size);
  }
  printf ("SWAPTIER %s: %s\n", names[v.code], v.text);
  return v.code;
}

/* Print s as an OpenMetrics label value: \, " and newline escaped. */
static void
sctl_label_value (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      printf ("\\%c", *s);
    else if (*s == '\n')
      fputs ("\\n", stdout);
    else
      putchar (*s);
  }
  putchar ('"');
}

/* The labels of a backend record, from the record of list with its id
 * (stats records lack some), and the label extra="value" unless extra
 * is NULL.
 */
static void
sctl_backend_labels (const struct sctl_reply *list, const char *record,
                     const char *extra, const char *value)
{
  static const char *const keys[] = { "id", "target", "kind", "domain" };
  const char *line = record;
  size_t i;
  unsigned k;

  for (i = 0; i < list->n; i++)
    if (sctl_is (list->line[i], "backend") &&
        sctl_number (list->line[i], "id") == sctl_number (record, "id"))
      line = list->line[i];

  putchar ('{');
  for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    char *v = sctl_value (line, keys[k]);

    printf ("%s%s=", k ? "," : "", keys[k]);
    sctl_label_value (v);
    free (v);
  }
  if (extra) {
    printf (",%s=", extra);
    sctl_label_value (value);
  }
  putchar ('}');
}

/* One family of the metrics: its name, type, help, the record kind it
 * is read from and the field (slots are turned into bytes).
 */
struct sctl_family {
  const char *name;
  bool counter;
  const char *record, *key;
  enum sctl_type type;
  const char *help;
};

static const struct sctl_family sctl_families[] = {
  { "swaptier_backend_capacity_bytes", false, "backend", "capacity",
    SCTL_SLOTS, "Size of the backend's data slots" },
  { "swaptier_backend_used_bytes", false, "backend", "used", SCTL_SLOTS,
    "Slots holding a copy of a page" },
  { "swaptier_backend_free_bytes", false, "backend", "free", SCTL_SLOTS,
    "Free slots" },
  { "swaptier_backend_bad_bytes", false, "backend", "bad", SCTL_SLOTS,
    "Slots marked bad, never used again" },
  { "swaptier_backend_priority", false, "backend", "priority", SCTL_NUMBER,
    "Priority (higher is used first)" },
  { "swaptier_backend_reads", true, "backend", "reads", SCTL_NUMBER,
    "Read requests sent to the backend" },
  { "swaptier_backend_writes", true, "backend", "writes", SCTL_NUMBER,
    "Write requests sent to the backend" },
  { "swaptier_backend_errors", true, "backend", "errors", SCTL_NUMBER,
    "Requests that failed" },
  { "swaptier_backend_read_bytes", true, "backend", "read_bytes",
    SCTL_NUMBER, "Bytes read from the backend" },
  { "swaptier_backend_written_bytes", true, "backend", "write_bytes",
    SCTL_NUMBER, "Bytes written to the backend" },
  { "swaptier_backend_lost_pages", true, "backend", "lost", SCTL_NUMBER,
    "Pages lost on the backend (every copy failed)" },
  { "swaptier_backend_corrupt_pages", true, "backend", "corrupt",
    SCTL_NUMBER, "Copies read that did not match their checksum" },
  { "swaptier_backend_demoted_pages", true, "backend", "demoted",
    SCTL_NUMBER, "Copies moved down a priority from the backend" },
  { "swaptier_backend_promoted_pages", true, "backend", "promoted",
    SCTL_NUMBER, "Copies moved up a priority from the backend" },
  { "swaptier_backend_rereads", true, "backend", "rereads", SCTL_NUMBER,
    "Client reads of pages already read since their last write" },
  { "swaptier_device_pages", false, "total", "pages", SCTL_NUMBER,
    "Pages of the exported device" },
  { "swaptier_device_mapped_pages", false, "total", "mapped", SCTL_NUMBER,
    "Pages of the device that hold data" },
  { "swaptier_device_degraded_pages", false, "total", "degraded",
    SCTL_NUMBER, "Pages with fewer copies than copies=" },
  { "swaptier_device_copies", false, "total", "copies", SCTL_NUMBER,
    "Copies kept of every page" },
  { "swaptier_device_lost_pages", true, "total", "lost", SCTL_NUMBER,
    "Pages lost since the start (also on backends removed since)" },
  { "swaptier_repair_recreated_pages", true, "repair", "recreated",
    SCTL_NUMBER, "Copies re-created by the repairer" },
};

/* Whether record line has the field key. */
static bool
sctl_has (const char *line, const char *key)
{
  size_t n = strlen (key);
  const char *p;

  for (p = strchr (line, ' '); p; p = strchr (p + 1, ' '))
    if (strncmp (p + 1, key, n) == 0 && p[1 + n] == '=')
      return true;
  return false;
}

/* Print one family's samples from the records of r (labelled from
 * list).
 */
static void
sctl_family_print (const struct sctl_family *f, const struct sctl_reply *r,
                   const struct sctl_reply *list, uint64_t page_size)
{
  size_t i;

  printf ("# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
          f->counter ? "counter" : "gauge");
  for (i = 0; i < r->n; i++) {
    const char *l = r->line[i];
    uint64_t v;

    if (!sctl_is (l, f->record) || !sctl_has (l, f->key))
      continue;
    v = sctl_number (l, f->key);
    if (f->type == SCTL_SLOTS)
      v *= page_size;
    printf ("%s%s", f->name, f->counter ? "_total" : "");
    if (strcmp (f->record, "backend") == 0)
      sctl_backend_labels (list, l, NULL, NULL);
    printf (" %" PRIu64 "\n", v);
  }
}

/* A gauge 1 or 0 per backend: whether it serves (not failed, its
 * server, if any, reachable).
 */
static void
sctl_up_print (const struct sctl_reply *list)
{
  size_t i;

  printf ("# HELP swaptier_backend_up Whether the backend serves (not "
          "failed, its server reachable)\n"
          "# TYPE swaptier_backend_up gauge\n");
  for (i = 0; i < list->n; i++) {
    char *state, *health, *failure;
    const char *why;

    if (!sctl_is (list->line[i], "backend"))
      continue;
    why = sctl_backend_trouble (list->line[i], &state, &health, &failure);
    fputs ("swaptier_backend_up", stdout);
    sctl_backend_labels (list, list->line[i], NULL, NULL);
    printf (" %d\n", why == NULL);
    free (state);
    free (health);
    free (failure);
  }
}

/* The summary of the latencies of kind (read, write) per backend: the
 * median and 99th percentile over the last second (NaN when no request
 * ended in it), the count and sum since the start.
 */
static void
sctl_latency_print (const char *kind, const struct sctl_reply *stats,
                    const struct sctl_reply *list)
{
  static const char *const quantile[2] = { "0.5", "0.99" };
  static const char *const field[2] = { "p50_us", "p99_us" };
  char name[64], key[64];
  size_t i;
  unsigned q;

  snprintf (name, sizeof name, "swaptier_backend_%s_latency_seconds", kind);
  printf ("# HELP %s Time the backend took per %s request (quantiles "
          "over the last second)\n# TYPE %s summary\n", name, kind, name);
  for (i = 0; i < stats->n; i++) {
    const char *l = stats->line[i];
    char *v;

    if (!sctl_is (l, "backend"))
      continue;
    for (q = 0; q < 2; q++) {
      snprintf (key, sizeof key, "%s_%s", kind, field[q]);
      v = sctl_value (l, key);
      fputs (name, stdout);
      sctl_backend_labels (list, l, "quantile", quantile[q]);
      if (v[0])
        printf (" %.9f\n", atof (v) / 1e6);
      else
        puts (" NaN");
      free (v);
    }
    snprintf (key, sizeof key, "%s_latency_sum_us", kind);
    v = sctl_value (l, key);
    printf ("%s_sum", name);
    sctl_backend_labels (list, l, NULL, NULL);
    printf (" %.9f\n", atof (v) / 1e6);
    free (v);
    snprintf (key, sizeof key, "%s_latency_count", kind);
    printf ("%s_count", name);
    sctl_backend_labels (list, l, NULL, NULL);
    printf (" %" PRIu64 "\n", sctl_number (l, key));
  }
}

void
sctl_metrics_print (const struct sctl_reply *list,
                    const struct sctl_reply *stats)
{
  uint64_t page_size = sctl_page_size (list);
  size_t i;

  sctl_up_print (list);
  for (i = 0; i < sizeof sctl_families / sizeof sctl_families[0]; i++) {
    const struct sctl_family *f = &sctl_families[i];
    bool in_stats = strcmp (f->key, "read_bytes") == 0 ||
      strcmp (f->key, "write_bytes") == 0;

    sctl_family_print (f, in_stats ? stats : list, list, page_size);
  }
  sctl_latency_print ("read", stats, list);
  sctl_latency_print ("write", stats, list);
  puts ("# EOF");
}
