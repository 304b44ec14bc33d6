/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl: what monitoring reads, made from the replies of "list"
 * and "stats" (no command of its own on the socket).
 *
 * check: one line and the Nagios exit code.  OK (0) when every backend
 * serves, no page is degraded, the device has room and no page was
 * lost; WARNING (1) when a backend failed or its server is away, pages
 * are degraded (fewer copies than copies=) or the pages in use reach
 * SCTL_CHECK_USED_PERCENT of the device; CRITICAL (2) when pages were
 * lost.  The line names every reason, the worst first.
 *
 * metrics: the counters as OpenMetrics text: one family per counter or
 * gauge, named swaptier_..., the backends' with the labels id, target,
 * kind and domain; sizes in bytes; ends with "# EOF".
 */

#ifndef SWAPTIER_SCTL_MONITOR_H
#define SWAPTIER_SCTL_MONITOR_H

#include "sctl-output.h"

/* Exit codes of check (Nagios plugin convention). */
#define SCTL_CHECK_OK 0
#define SCTL_CHECK_WARNING 1
#define SCTL_CHECK_CRITICAL 2
#define SCTL_CHECK_UNKNOWN 3           /* no answer, or a usage error */

/* check warns when this share of the device's pages is in use. */
#define SCTL_CHECK_USED_PERCENT 90

/* Print check's line for the reply of list; returns its exit code. */
extern int sctl_check_print (const struct sctl_reply *list);

/* Print the metrics of the replies of list and stats. */
extern void sctl_metrics_print (const struct sctl_reply *list,
                                const struct sctl_reply *stats);

#endif /* SWAPTIER_SCTL_MONITOR_H */
