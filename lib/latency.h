/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: latency histograms of backend requests.
 *
 * A histogram counts requests by how long they took, in LATENCY_BUCKETS
 * buckets on a log scale: bucket 0 holds everything under 1024 ns;
 * bucket 1 + 4 (h - 10) + s, for h from 10 to 34, holds the times in
 * [(4 + s) 2^(h-2), (5 + s) 2^(h-2)) ns (four buckets per power of two,
 * each within 25% of its lower bound); the last one also holds
 * everything from 2^35 ns (34 s) on.  It also sums the times, and its
 * counts only grow: latency_add is one relaxed atomic add for the
 * bucket and one for the sum, safe from any thread.
 *
 * A window is the difference of two snapshots of a histogram (the later
 * minus the earlier): the requests that ended in between, of which
 * latency_percentile reads a percentile.
 */

#ifndef SWAPTIER_LATENCY_H
#define SWAPTIER_LATENCY_H

#include <stdint.h>

#define LATENCY_BUCKETS 101

struct latency {
  uint64_t count[LATENCY_BUCKETS];
  uint64_t sum_ns;
};

/* Monotonic time in nanoseconds. */
extern uint64_t latency_now_ns (void);

/* Count one request that took ns nanoseconds. */
extern void latency_add (struct latency *l, uint64_t ns);

/* Copy l into out, bucket by bucket (each count read atomically). */
extern void latency_snapshot (const struct latency *l, struct latency *out);

/* out = later - earlier, bucket by bucket (a window). */
extern void latency_window (const struct latency *later,
                            const struct latency *earlier,
                            struct latency *out);

/* The number of requests counted in l. */
extern uint64_t latency_total (const struct latency *l);

/* The q-quantile (0 < q <= 1) of l in nanoseconds: the middle of the
 * bucket where the share q of the requests is reached; 0 when l counts
 * none.
 */
extern uint64_t latency_percentile (const struct latency *l, double q);

#endif /* SWAPTIER_LATENCY_H */
