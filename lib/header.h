/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the header slot of a backend, and who claims the backend.
 *
 * Slot 0 of every backend (local or remote) holds one header page, never
 * a page of the device.  It says that swaptier uses the backend and which
 * instance does: the instance id (random, one per swaptier process), a
 * token (random, one per opening of the backend), the host, its boot id,
 * the pid and start time of the process, and the target as configured.
 * A heartbeat counter that the owner may raise lets another host tell a
 * live claim from one left by a crash; a released header (clean exit)
 * claims nothing.
 *
 * The layout, all integers little-endian, unused bytes zero:
 *
 *   0    32   magic "swaptier backend header v1\n", zero padded
 *   32   16   instance id
 *   48   16   token
 *   64    8   heartbeat counter
 *   72    8   process start time (clock ticks since boot, /proc)
 *   80    4   pid
 *   84    4   flags (HEADER_RELEASED)
 *   96   64   host name, NUL terminated
 *   160  40   boot id (/proc/sys/kernel/random/boot_id), NUL terminated
 *   256 2048  target, NUL terminated (truncated if longer)
 *
 * Only header_decode decides what a page is: anything else is "not a
 * header", whatever its content.
 */

#ifndef SWAPTIER_HEADER_H
#define SWAPTIER_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#define HEADER_MAGIC "swaptier backend header v1\n"
#define HEADER_RELEASED 1u

struct header {
  uint8_t instance[16];
  uint8_t token[16];
  uint64_t heartbeat;
  uint64_t start_time;
  uint32_t pid;
  uint32_t flags;
  char host[64];
  char boot_id[40];
  char target[2048];
};

/* Fill *h as a new claim of this process on target: this instance's id
 * (the same for every call in one process), a fresh token, heartbeat 0.
 * Returns 0, or -1 after log_error (no randomness).
 */
extern int header_init_self (struct header *h, const char *target);

/* Make the claim *h name the calling process (pid and start time), which
 * differs from the one that made it after a fork.  Returns whether that
 * changed *h.
 */
extern bool header_refresh_self (struct header *h);

/* Write *h as the header page (PAGE_SIZE bytes at page). */
extern void header_encode (const struct header *h, void *page);

/* Read the header page at page into *h.  Returns true if it is one,
 * false if the page is anything else (never used by swaptier, or
 * overwritten).
 */
extern bool header_decode (const void *page, struct header *h);

/* Whether a and b are the same claim (instance id and token). */
extern bool header_same_claim (const struct header *a,
                               const struct header *b);

/* Whether the claim h was made by this process (any of its backends). */
extern bool header_is_this_instance (const struct header *h);

/* Whether the claim h was made on this host since it booted by a process
 * that still runs (same pid and start time): a live local claim.  False
 * for a released claim, a claim of another host or boot, and a process
 * that is gone.
 */
extern bool header_owner_alive_here (const struct header *h);

/* Whether the claim h was made on this host since it booted (so that
 * header_owner_alive_here can decide about it).
 */
extern bool header_is_this_boot (const struct header *h);

#endif /* SWAPTIER_HEADER_H */
