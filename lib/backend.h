/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the backend interface.
 *
 * A backend stores slots: nslots blocks of PAGE_SIZE bytes addressed
 * 0 .. nslots-1.  Buffers passed to read and write are PAGE_SIZE aligned
 * and hold whole slots.  Every call transfers all of it or fails; on
 * failure it returns -1 with errno set and has reported the cause through
 * log_error.  Calls may come from several threads at once.
 *
 * A failed write or trim sets errno to ENOTCONN when its outcome is
 * unknown: it was sent and no answer came (timeout, lost connection), so
 * the server may still execute it later.  Its slots must never be handed
 * out again (the tier set marks them bad).  Any other errno means the
 * request was not executed, or finished with an error.  A trim that was
 * not sent at all (the server is unreachable) returns 0: it is advisory.
 */

#ifndef SWAPTIER_BACKEND_H
#define SWAPTIER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct backend;

/* Whether a backend can be reached, for backends that can lose it. */
enum backend_health {
  BACKEND_UP,                          /* serving */
  BACKEND_DOWN,                        /* connection lost, reconnecting */
  BACKEND_DEAD,                        /* gave up: every request fails */
};

struct backend_ops {
  const char *kind;                    /* "file", "block", "nbd" */
  int (*read) (struct backend *be, void *buf, uint64_t slot, uint64_t n);
  int (*write) (struct backend *be, const void *buf, uint64_t slot,
                uint64_t n, bool fua);
  int (*flush) (struct backend *be);
  /* Optional: read once, without waiting for a lost server (used when
   * another copy of the data exists); within timeout= for a remote
   * backend.  Without it, read.
   */
  int (*read_quick) (struct backend *be, void *buf, uint64_t slot,
                     uint64_t n);
  /* Optional: read the header slot again and say whether it still holds
   * this instance's claim (for reviving a failed backend), reconnecting
   * first a backend that gave up its server (then UP again): 0, or -1
   * after log_error.  Without it, a backend is taken to hold it.
   */
  int (*check_claim) (struct backend *be);
  /* Optional: discard slots about to be freed (advisory). */
  int (*trim) (struct backend *be, uint64_t slot, uint64_t n);
  /* Optional: reachability; a backend without it is always up. */
  enum backend_health (*health) (struct backend *be);
  /* Optional: the process is stopping.  Every wait of a request in
   * progress ends within about a second, and every request from now on
   * fails at once with ESHUTDOWN.  Safe to call from any thread, once.
   */
  void (*shutdown) (struct backend *be);
  void (*close) (struct backend *be);
  /* Optional: close, and undo what opening the backend created (a file
   * made for capacity=), for a backend never put in service.  Without
   * it, close.
   */
  void (*discard) (struct backend *be);
};

struct backend {
  const struct backend_ops *ops;
  char *target;                        /* path or URI, as configured */
  uint64_t nslots;                     /* usable slots */
};

/* Open a local file or block device as a backend.  capacity (bytes, 0 for
 * none) creates a missing file or extends a short one, with its blocks
 * allocated now; it is refused for a block device, whose size is probed.
 * The backend is opened with O_DIRECT where the file system allows it,
 * locked against other users, and a block device is opened exclusively
 * (O_EXCL: refused while mounted, or while a partition or holder of it is
 * in use).  Slot 0 of the file holds the header page (header.h), so the
 * backend has size / PAGE_SIZE - 1 slots.  A file or device that existed
 * and whose slot 0 is not a swaptier header is refused if it holds a
 * signature (signature.h) unless force is true.  Returns NULL after
 * log_error on failure, having removed the file if it created it.
 */
extern struct backend *backend_file_open (const char *path,
                                          uint64_t capacity, bool force);

/* Identity of a local backend's file, to refuse the same file twice.
 * Returns false for backends that are not local files.
 */
extern bool backend_file_identity (const struct backend *be,
                                   uint64_t *dev, uint64_t *ino);

/* Open a remote NBD export given by a libnbd URI as a backend, with up to
 * nconns connections (requests in flight), a per-request timeout and a
 * grace time: how long a request keeps trying after its first failure,
 * and an unreachable server is waited for, before the backend is given
 * up.  The first connection is made now; failure to connect is an
 * error.  Slot 0 of the export holds the header of this backend's claim
 * (remote-claim.h): an export claimed by another live backend or
 * instance is refused, and every connection checks the claim, so a
 * server that lost its data (restarted memory server, another export)
 * is never read as if it had it.  Returns NULL after log_error on
 * failure.
 */
extern struct backend *backend_nbd_open (const char *uri, unsigned nconns,
                                         unsigned timeout_ms,
                                         unsigned grace_ms);

/* In the process that serves (after nbdkit's fork, which drops threads):
 * start the keeper thread of every remote backend (heartbeat of its
 * claim, reconnection); those opened later start theirs at once.
 */
extern void backend_nbd_serve (void);

/* The process is stopping: besides the backends of a tier set (their
 * shutdown operation), a remote backend being opened now (swaptierctl
 * add) gives up its connection or claim at once.
 */
extern void backend_nbd_shutdown_all (void);

/* Whether target names a remote backend (an NBD URI) rather than a path. */
extern bool backend_is_uri (const char *target);

/* Health of a backend (BACKEND_UP for backends that cannot lose it). */
static inline enum backend_health
backend_health (struct backend *be)
{
  return be->ops->health ? be->ops->health (be) : BACKEND_UP;
}

/* Close a backend and free it.  NULL is accepted. */
static inline void
backend_close (struct backend *be)
{
  if (be)
    be->ops->close (be);
}

/* Close a backend never put in service, removing what opening it
 * created, and free it.  NULL is accepted.
 */
static inline void
backend_discard (struct backend *be)
{
  if (be && be->ops->discard)
    be->ops->discard (be);
  else
    backend_close (be);
}

#endif /* SWAPTIER_BACKEND_H */
