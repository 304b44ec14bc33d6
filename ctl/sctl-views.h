/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: the human views of list and stats (see sctl-views.c). */

#ifndef SWAPTIER_SCTL_VIEWS_H
#define SWAPTIER_SCTL_VIEWS_H

#include "sctl-output.h"

/* Print the reply of list: the table of backends and the sentences. */
extern void sctl_list (const struct sctl_reply *r);

/* Print the reply of stats: the table of counters, rates and latencies. */
extern void sctl_stats (const struct sctl_reply *r);

/* Print where the removal of a "drain" record is, as a sentence. */
extern void sctl_drain_sentence (const char *line);

/* Print what became of the pages of a drain record (no newline). */
extern void sctl_drain_counts (const char *line);

#endif /* SWAPTIER_SCTL_VIEWS_H */
