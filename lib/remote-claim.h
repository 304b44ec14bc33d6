/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the claim of a remote export, kept in its header slot.
 *
 * One export is used by one backend of one swaptier instance at a time.
 * Slot 0 of the export holds the header (header.h) of the claim that
 * uses it.  Opening a backend takes the claim (claim_take), deciding on
 * what slot 0 holds:
 *
 *   - no header, or a released one: the export is free, taken at once;
 *   - a claim of this process that one of its open backends holds: the
 *     same export given twice, refused naming the backend that has it;
 *   - a claim of this process that no open backend holds (a backend
 *     closed while its server was unreachable): taken at once;
 *   - a claim of a process of this host and boot that still runs:
 *     refused, naming it;
 *   - a claim of a process of this host and boot that is gone (a crash):
 *     taken at once;
 *   - a claim of another host or boot: live while its heartbeat counter
 *     moves.  It is watched for CLAIM_TAKEOVER_MS; refused if the counter
 *     moved, taken if it did not.
 *
 * While the backend is open its keeper calls claim_beat every
 * CLAIM_BEAT_MS: it checks that slot 0 is still this claim and raises the
 * counter.  Every new connection checks the claim too (claim_check).
 * Closing writes the header back released (claim_release), so that the
 * next instance takes the export at once.
 *
 * The claims of the open backends of this process form a registry (a
 * list under a mutex).  claim_take holds that mutex while it reads,
 * decides and writes, so two backends of one process never take one
 * export.  Slot 0 offers no compare-and-swap between processes: two
 * instances that take over the same stale claim at the same moment both
 * write it, the last one wins, and the other finds out at its next beat.
 * An owner frozen longer than CLAIM_TAKEOVER_MS (SIGSTOP, a suspended
 * host) may have its claim taken over by another host; it finds out at
 * its next beat or connection, and its backend fails.
 */

#ifndef SWAPTIER_REMOTE_CLAIM_H
#define SWAPTIER_REMOTE_CLAIM_H

#include <stdbool.h>

#include "header.h"

#define CLAIM_BEAT_MS 2000                     /* heartbeat period */
#define CLAIM_TAKEOVER_MS (3 * CLAIM_BEAT_MS)  /* watch of a foreign claim */

/* Reading and writing slot 0 of one export, for the claim functions.
 * page is PAGE_SIZE bytes.  Each returns 0, or -1 after log_error.
 */
struct claim_io {
  int (*read) (void *opaque, void *page);
  int (*write) (void *opaque, const void *page);
  void *opaque;
};

/* One backend's claim. */
struct remote_claim {
  struct header self;                  /* as written, heartbeat included */
  struct remote_claim *next;           /* the registry, while registered */
  bool registered;
};

/* What slot 0 holds, compared with a claim. */
enum claim_state {
  CLAIM_OURS,                          /* the same claim */
  CLAIM_GONE,                          /* no header: the data is gone */
  CLAIM_TAKEN,                         /* another claim, or released */
};

/* Take the export behind io for target, as described above, and
 * register the claim.  page is a PAGE_SIZE buffer for the I/O.  Returns
 * 0, or -1 after log_error (refused, or slot 0 could not be read or
 * written).
 */
extern int claim_take (struct remote_claim *cl, const char *target,
                       const struct claim_io *io, void *page);

/* Compare the header page at page with the claim; unless it is ours,
 * report why through log_error, naming target.
 */
extern enum claim_state claim_check (const struct remote_claim *cl,
                                     const void *page, const char *target);

/* Check that slot 0 still holds the claim and, if so, raise its
 * heartbeat (and name the calling process in it, which may have forked).
 * Returns -1 if slot 0 could not be read or written, else 0 with
 * *state set (the header is written only if CLAIM_OURS).
 */
extern int claim_beat (struct remote_claim *cl, const char *target,
                       const struct claim_io *io, void *page,
                       enum claim_state *state);

/* Forget the claim in the registry and, with io (NULL when the server
 * cannot be reached), write it back released if slot 0 still holds it.
 */
extern void claim_release (struct remote_claim *cl, const char *target,
                           const struct claim_io *io, void *page);

#endif /* SWAPTIER_REMOTE_CLAIM_H */
