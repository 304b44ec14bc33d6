/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: the human views of list and stats.
 *
 * A reply of list or stats (records "backend", "total", "drain",
 * "repair", "demote"; lib/ctlproto.h has the protocol) becomes a table
 * of aligned columns, one row per backend and a total, followed by
 * sentences for what a table says badly: why a backend failed, which
 * backends keep pages in clear, the device's size and use, where the
 * last removal is, the state of the copies and of demotion.  The JSON
 * views are swaptierctl.c's, made with sctl-output.c.
 */

#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sctl-output.h"
#include "sctl-views.h"

/* What became of the pages of a drain record, one count each, adding
 * up to the pages that were on the backend when its removal began.
 */
void
sctl_drain_counts (const char *line)
{
  printf ("of its %" PRIu64 " pages, %" PRIu64 " moved, %" PRIu64 " lost, %"
          PRIu64 " kept fewer copies, %" PRIu64 " rewritten or trimmed by "
          "clients meanwhile, %" PRIu64 " still on it",
          sctl_number (line, "total"), sctl_number (line, "moved"),
          sctl_number (line, "lost"), sctl_number (line, "dropped"),
          sctl_number (line, "freed"), sctl_number (line, "remaining"));
}

/* Print where the removal of a "drain" record is, as a sentence. */
void
sctl_drain_sentence (const char *line)
{
  char *state = sctl_value (line, "state");

  printf ("backend %" PRIu64 ": removal %s; ", sctl_number (line, "id"),
          state);
  sctl_drain_counts (line);
  if (strcmp (state, "failed") == 0) {
    char *error = sctl_value (line, "error");

    printf (": %s", error);
    free (error);
  }
  putchar ('\n');
  free (state);
}

/* Print the state of the copies of a "repair" record, as a sentence. */
static void
sctl_repair_sentence (const char *line, uint64_t copies, uint64_t page_size)
{
  char *state = sctl_value (line, "state");
  char *rate = sctl_size (sctl_number (line, "rate") * page_size);

  printf ("copies: %" PRIu64 "; %" PRIu64 " to re-create (%s), %" PRIu64
          " re-created since the start, %s/s now\n", copies,
          sctl_number (line, "degraded"), state,
          sctl_number (line, "recreated"), rate);
  free (state);
  free (rate);
}

/* Print what demotion did and does, as a sentence, once it did some. */
static void
sctl_demote_sentence (const char *line, uint64_t page_size)
{
  char *state = sctl_value (line, "state");
  char *rate = sctl_size (sctl_number (line, "rate") * page_size);
  char *limit = sctl_size (sctl_number (line, "limit"));
  uint64_t demoted = sctl_number (line, "demoted");
  uint64_t promoted = sctl_number (line, "promoted");

  if (demoted > 0 || promoted > 0 || strcmp (state, "running") == 0 ||
      strcmp (state, "waiting") == 0)
    printf ("demotion: %s; %" PRIu64 " copies moved down and %" PRIu64
            " up since the start, %s/s now (at most %s/s); from below %"
            PRIu64 "%% free to %" PRIu64 "%%\n", state, demoted, promoted,
            rate,
            sctl_number (line, "limit") ? limit : "unlimited",
            sctl_number (line, "low"), sctl_number (line, "high"));
  free (state);
  free (rate);
  free (limit);
}

/* The backends that keep their pages in clear (encrypt=off), in one
 * sentence, if any do.
 */
static void
sctl_clear_sentence (const struct sctl_reply *r)
{
  const char *sep = "in clear (encrypt=off): backend ";
  size_t i;

  for (i = 0; i < r->n; i++) {
    char *enc, *id;

    if (!sctl_is (r->line[i], "backend"))
      continue;
    enc = sctl_value (r->line[i], "encrypted");
    id = sctl_value (r->line[i], "id");
    if (strcmp (enc, "no") == 0) {
      printf ("%s%s", sep, id);
      sep = ", ";
    }
    free (enc);
    free (id);
  }
  if (sep[0] == ',')
    printf ("\n");
}

/* The exported device, as swapon --show sees it: its size, the slots
 * kept spare, the share of its pages in use.
 */
static void
sctl_device_sentence (const char *total, uint64_t page_size)
{
  uint64_t pages = sctl_number (total, "pages");
  char *size = sctl_size (pages * page_size);
  char *spare = sctl_size (sctl_number (total, "spare") * page_size);

  printf ("device: %s, %s kept spare, %" PRIu64 "%% in use\n", size, spare,
          pages ? sctl_number (total, "mapped") * 100 / pages : 0);
  free (size);
  free (spare);
}

/* A sentence per failed backend: why it failed. */
static void
sctl_failure_sentences (const struct sctl_reply *r)
{
  size_t i;

  for (i = 0; i < r->n; i++) {
    char *why;

    if (!sctl_is (r->line[i], "backend"))
      continue;
    why = sctl_value (r->line[i], "failure");
    if (why[0])
      printf ("backend %" PRIu64 " failed: %s\n",
              sctl_number (r->line[i], "id"), why);
    free (why);
  }
}

/* list: one row per backend, the totals, the last removal, the
 * backends in clear, why backends failed.
 */
void
sctl_list (const struct sctl_reply *r)
{
  static const char *const head[] = {
    "ID", "TARGET", "KIND", "DOMAIN", "PRIO", "STATE", "SIZE", "USED",
    "FREE", "BAD", "LOST", "CORRUPT", "READS", "WRITES", "ERRORS",
    "DEMOTED", "PROMOTED", "USE%",
  };
  struct sctl_table t = {
    .ncols = 18, .head = head, .align = "rlllrlrrrrrrrrrrrr",
  };
  const char *total_line = NULL;
  uint64_t page_size = sctl_page_size (r), copies = 1;
  const char *drain, *repair, *demote;
  size_t i;

  for (i = 0; i < r->n; i++) {
    const char *l = r->line[i];
    bool total = sctl_is (l, "total");
    char *state, *health, *cells[18];
    uint64_t capacity = sctl_number (l, "capacity");

    if (!total && !sctl_is (l, "backend"))
      continue;
    state = sctl_value (l, "state");
    health = sctl_value (l, "health");
    /* A remote backend that cannot be reached says so. */
    if (health[0] && strcmp (health, "up") != 0) {
      state = sctl_check (realloc (state, strlen (state) +
                                   strlen (health) + 2));
      strcat (strcat (state, "/"), health);
    }
    free (health);
    cells[0] = sctl_value (l, "id");
    cells[1] = total ? sctl_strdup ("total") : sctl_value (l, "target");
    cells[2] = sctl_value (l, "kind");
    cells[3] = sctl_value (l, "domain");
    cells[4] = sctl_value (l, "priority");
    cells[5] = state;
    cells[6] = sctl_size (sctl_number (l, "capacity") * page_size);
    cells[7] = sctl_size (sctl_number (l, "used") * page_size);
    cells[8] = sctl_size (sctl_number (l, "free") * page_size);
    cells[9] = sctl_size (sctl_number (l, "bad") * page_size);
    cells[10] = sctl_value (l, "lost");
    cells[11] = sctl_value (l, "corrupt");
    cells[12] = sctl_value (l, "reads");
    cells[13] = sctl_value (l, "writes");
    cells[14] = sctl_value (l, "errors");
    cells[15] = sctl_value (l, "demoted");
    cells[16] = sctl_value (l, "promoted");
    if (asprintf (&cells[17], "%" PRIu64 "%%", capacity ?
                  sctl_number (l, "used") * 100 / capacity : 0) == -1)
      sctl_check (NULL);
    sctl_table_row (&t, cells);
    if (total) {
      copies = sctl_number (l, "copies");
      total_line = l;
    }
  }
  sctl_table_print (&t);
  if (total_line)
    sctl_device_sentence (total_line, page_size);
  drain = sctl_record (r, "drain");
  if (drain)
    sctl_drain_sentence (drain);
  repair = sctl_record (r, "repair");
  if (repair && copies > 1)
    sctl_repair_sentence (repair, copies, page_size);
  demote = sctl_record (r, "demote");
  if (demote)
    sctl_demote_sentence (demote, page_size);
  sctl_clear_sentence (r);
  sctl_failure_sentences (r);
}

/* "P50/P99us" of the requests of kind (read, write) of a stats record
 * over the last second, "-" if none ended in it; allocated.
 */
static char *
sctl_percentiles (const char *line, const char *kind)
{
  char key50[32], key99[32], *p50, *p99, *cell;

  snprintf (key50, sizeof key50, "%s_p50_us", kind);
  snprintf (key99, sizeof key99, "%s_p99_us", kind);
  p50 = sctl_value (line, key50);
  p99 = sctl_value (line, key99);
  if (p50[0] == '\0' || p99[0] == '\0')
    cell = sctl_strdup ("-");
  else if (asprintf (&cell, "%.0f/%.0fus", atof (p50), atof (p99)) == -1)
    cell = sctl_check (NULL);
  free (p50);
  free (p99);
  return cell;
}

/* stats: I/O counters and rates per backend, and their totals. */
void
sctl_stats (const struct sctl_reply *r)
{
  static const char *const head[] = {
    "ID", "TARGET", "READS", "WRITES", "ERRORS", "LOST", "READ", "WRITTEN",
    "READS/S", "WRITES/S", "READ/S", "WRITTEN/S", "REREADS", "DEMOTED",
    "PROMOTED", "READ p50/p99", "WRITE p50/p99",
  };
  struct sctl_table t = {
    .ncols = 17, .head = head, .align = "rlrrrrrrrrrrrrrrr",
  };
  const char *demote;
  size_t i;

  for (i = 0; i < r->n; i++) {
    const char *l = r->line[i];
    bool total = sctl_is (l, "total");
    char *cells[17];

    if (!total && !sctl_is (l, "backend"))
      continue;
    cells[0] = sctl_value (l, "id");
    cells[1] = total ? sctl_strdup ("total") : sctl_value (l, "target");
    cells[2] = sctl_value (l, "reads");
    cells[3] = sctl_value (l, "writes");
    cells[4] = sctl_value (l, "errors");
    cells[5] = sctl_value (l, "lost");
    cells[6] = sctl_size (sctl_number (l, "read_bytes"));
    cells[7] = sctl_size (sctl_number (l, "write_bytes"));
    cells[8] = sctl_rate (l, "reads_per_s", false);
    cells[9] = sctl_rate (l, "writes_per_s", false);
    cells[10] = sctl_rate (l, "read_bytes_per_s", true);
    cells[11] = sctl_rate (l, "write_bytes_per_s", true);
    cells[12] = sctl_value (l, "rereads");
    cells[13] = sctl_value (l, "demoted");
    cells[14] = sctl_value (l, "promoted");
    cells[15] = sctl_percentiles (l, "read");
    cells[16] = sctl_percentiles (l, "write");
    sctl_table_row (&t, cells);
  }
  sctl_table_print (&t);
  demote = sctl_record (r, "demote");
  if (demote)
    sctl_demote_sentence (demote, sctl_page_size (r));
}
