/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the remote NBD backend's shared state (internal to lib/).
 *
 * The remote backend is four modules over one struct remote_backend:
 *   backend-nbd.c    the backend operations: requests and their
 *                    deadlines, opening and closing;
 *   remote-conn.c    the connection pool, one command on a handle of
 *                    its own (connecting, the claim), the health states;
 *   remote-link.c    one pooled connection with many commands in flight
 *                    (pipelined), and its poller thread;
 *   remote-keeper.c  the keeper thread of each backend: reconnection and
 *                    the claim's heartbeat.
 *
 * A pool of up to nconns connections to one export; each request uses
 * one connection from start to end, beside up to REMOTE_LINK_DEPTH
 * others (users): a request goes to the connected link with the fewest
 * users, or opens another connection when every link has some.  A
 * broken link (cut, or closed by the server) takes no new requests; it
 * keeps its place in the pool while it has users; then remote_reap
 * closes it if nothing is in flight on it, else moves it out of the
 * pool (draining) until its replies came, or grace= after its cut, or
 * the backend is closed.  Health
 * is UP, DOWN (a connection was lost: the keeper reconnects) or DEAD
 * (every request fails).  Deadlines are absolute times in milliseconds
 * on the monotonic clock, REMOTE_FOREVER for none.  Every wait lasts at
 * most REMOTE_SLICE_MS between checks of its deadline and of stopping
 * (the shutdown operation was called, or the backend is being closed).
 *
 * lock guards the pool, health (also read without it, atomically),
 * closing and the keeper's state; changed is broadcast whenever a
 * connection is given back or the state changes.
 */

#ifndef SWAPTIER_REMOTE_H
#define SWAPTIER_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libnbd.h>

#include "backend.h"
#include "page.h"
#include "remote-claim.h"

#define REMOTE_MAX_CONNS 64
#define REMOTE_LINK_DEPTH 128           /* commands in flight on a link */
#define REMOTE_MAX_REQUEST (32 * 1024 * 1024) /* largest request we send */
#define REMOTE_BACKOFF_MIN_MS 100
#define REMOTE_BACKOFF_MAX_MS 2000
#define REMOTE_SLICE_MS 200             /* longest wait without a check */
#define REMOTE_RELEASE_MS 1000          /* wait for the release at close */
#define REMOTE_FOREVER UINT64_MAX       /* no deadline */

struct remote_link;

struct remote_conn {
  struct remote_link *link;            /* NULL: not connected */
  unsigned users;                      /* requests using it; with no link,
                                          1 while one connects it */
};

struct remote_backend {
  struct backend be;                   /* must be first */
  unsigned timeout_ms, grace_ms;
  uint32_t max_request;                /* bytes, a multiple of PAGE_SIZE */
  bool multi_conn, can_fua, can_trim;
  struct remote_claim claim;           /* ours, in slot 0 */
  /* Slot 0 I/O of the opening, the keeper and the closing. */
  char page[PAGE_SIZE];
  struct remote_backend *next;         /* the keepers' list, while open */

  pthread_mutex_t lock;                /* guards everything below */
  pthread_cond_t changed;              /* a connection or the state */
  enum backend_health health;          /* also read without the lock */
  bool stopping;                       /* shutdown: also read without it */
  bool closing;                        /* also read without it */
  uint64_t down_since_ms;
  bool keeper_started;                 /* keeper holds a thread to join */
  bool keeper_running;                 /* it has not left its loop yet */
  pthread_t keeper;
  unsigned nconns;
  unsigned open_limit;                 /* connections the server takes, as
                                          far as we know (<= nconns) */
  struct remote_conn conn[REMOTE_MAX_CONNS];
  /* Broken links out of the pool, nobody using them, still owed
   * replies: closed once they came, or grace= after the cut.
   */
  unsigned ndraining;
  struct remote_link *draining[REMOTE_MAX_CONNS];
};

enum remote_result {
  REMOTE_OK,                           /* done */
  REMOTE_FAILED,                       /* the server answered an error */
  REMOTE_UNSENT,                       /* not sent: no usable connection */
  REMOTE_UNSENT_LOCAL,                 /* not sent, for want of memory or
                                          time here: no fault of the
                                          connection */
  REMOTE_LOST,                         /* sent, no answer: unknown */
  REMOTE_MISMATCH,                     /* slot 0 is not our claim */
};

enum remote_op { REMOTE_OP_READ, REMOTE_OP_WRITE, REMOTE_OP_FLUSH,
                 REMOTE_OP_TRIM };

/* Slot 0 I/O for the claim functions (struct claim_io): on a pooled
 * link, else on a handle of its own.
 */
struct remote_slot0 {
  struct remote_backend *rb;
  struct remote_link *link;
  struct nbd_handle *h;
  unsigned wait_ms;                    /* longest wait of one command */
  bool stoppable;
  enum remote_result r;                /* of the last command */
};

/* Whether r says that nothing was sent, for whatever cause. */
static inline bool
remote_unsent (enum remote_result r)
{
  return r == REMOTE_UNSENT || r == REMOTE_UNSENT_LOCAL;
}

/* remote-conn.c */

/* Milliseconds on the monotonic clock. */
extern uint64_t remote_now_ms (void);

/* Whether waits must end now: the shutdown operation was called, or the
 * backend is being closed.
 */
extern bool remote_stopping (struct remote_backend *rb);

/* A short pause (10 ms) before trying again. */
extern void remote_pause (void);

/* Wait on rb->changed (with the lock) until woken or until until_ms. */
extern void remote_wait (struct remote_backend *rb, uint64_t until_ms);

/* Whether err, the error of a failed command, is the connection's
 * rather than an answer of the server.
 */
extern bool remote_error_is_connection (int err);

/* Issue one command on link, else on handle h (one not pooled, used by
 * this thread only), and wait for its reply for timeout= (on a link:
 * from the later of its sending and the link's last reply, and at most
 * timeout= + grace= in all), and not past until.  With stoppable, a shutdown ends the wait too.  REMOTE_FAILED
 * leaves errno as the server's error.
 */
extern enum remote_result remote_run (struct remote_backend *rb,
                                      struct remote_link *link,
                                      struct nbd_handle *h,
                                      enum remote_op op, void *buf,
                                      uint64_t count, uint64_t offset,
                                      bool fua, uint64_t until,
                                      bool stoppable);

/* Connect a new handle, waiting at most timeout=, not past until, and
 * not after a shutdown.  NULL after log_error on failure.
 */
extern struct nbd_handle *remote_connect_handle (struct remote_backend *rb,
                                                 uint64_t until);

/* Mark the backend DEAD, DOWN (with the lock); see remote-conn.c. */
extern void remote_mark_dead (struct remote_backend *rb, const char *why);
extern void remote_mark_down (struct remote_backend *rb);

/* Whether slot 0 behind link, else h, holds our claim (read into page);
 * on REMOTE_MISMATCH the backend is DEAD.
 */
extern enum remote_result remote_check_claim (struct remote_backend *rb,
                                              struct remote_link *link,
                                              struct nbd_handle *h,
                                              void *page, uint64_t until);

/* Put h, connected and checked, in a free place of the pool (with the
 * lock); false if there is none (the caller closes h).
 */
extern bool remote_pool_add (struct remote_backend *rb,
                             struct nbd_handle *h);

/* The claim I/O of s. */
extern struct claim_io remote_slot0_io (struct remote_slot0 *s);

/* Close every broken link that has no user and nothing in flight, or
 * that was cut longer than grace= ago whatever it still owes; move the
 * other broken links nobody uses out of the pool, to drain; so free
 * their places (with the lock).
 */
extern void remote_reap (struct remote_backend *rb);

/* Whether every place of the pool holds a broken link (with the lock):
 * nothing can be sent until one is closed.
 */
extern bool remote_pool_blocked (struct remote_backend *rb);

/* The working link with the fewest users, below REMOTE_LINK_DEPTH (with
 * the lock); NULL if none.  The caller counts itself in users.
 */
extern struct remote_conn *remote_pick_working (struct remote_backend *rb);

/* The connection for the next request (with the lock): the working link
 * with the fewest users, below REMOTE_LINK_DEPTH; or a place to connect
 * another, when none works, or when every link has users and the server
 * took every connection asked so far (open_limit).  NULL if all are
 * full.  The caller counts itself in users.
 */
extern struct remote_conn *remote_pick (struct remote_backend *rb);

/* Take a connection for one request, give it back; see remote-conn.c. */
extern struct remote_conn *remote_acquire (struct remote_backend *rb,
                                           bool wait_while_down,
                                           uint64_t *until);
extern void remote_release (struct remote_backend *rb,
                            struct remote_conn *c, enum remote_result r);

/* Run one request on connection c until the deadline until, connecting
 * it first if needed and splitting the transfer at the server's largest
 * request.  REMOTE_UNSENT: nothing was sent.
 */
extern enum remote_result remote_transfer (struct remote_backend *rb,
                                           struct remote_conn *c,
                                           enum remote_op op, char *buf,
                                           uint64_t count, uint64_t offset,
                                           bool fua, uint64_t until);

/* remote-link.c */

/* A link over the connected handle h, which it owns from now on (even
 * if this fails: NULL after log_error, h closed).  Its poller starts at
 * its first command.
 */
extern struct remote_link *remote_link_new (struct remote_backend *rb,
                                            struct nbd_handle *h);

/* One command on the link, beside the others in flight; see remote_run.
 * REMOTE_LOST cuts the link: it takes no new command, and the command
 * stays in flight (its data copied) until the server answers or the
 * link is closed.
 */
extern enum remote_result remote_link_run (struct remote_link *link,
                                           enum remote_op op, void *buf,
                                           uint64_t count, uint64_t offset,
                                           bool fua, uint64_t until,
                                           bool stoppable);

/* Whether the link was cut or found dead: it takes no more commands. */
extern bool remote_link_broken (struct remote_link *link);

/* Whether no command is in flight on the link: closing it now leaves no
 * reply unread (see remote-link.c on why that matters).
 */
extern bool remote_link_idle (struct remote_link *link);

/* How many replies the link still owes (commands in flight), and when
 * it was cut (*cut_ms, 0 if not).
 */
extern unsigned remote_link_owed (struct remote_link *link,
                                  uint64_t *cut_ms);

/* Wait until the link is idle, or until the monotonic time until (ms).
 * Does nothing for NULL.
 */
extern void remote_link_wait_idle (struct remote_link *link, uint64_t until);

/* Stop the poller and close the handle, which ends (lost) any command
 * still in flight: no request may use it (no user).  Does nothing for
 * NULL.
 */
extern void remote_link_close (struct remote_link *link);

/* remote-keeper.c */

/* Start the keeper unless it runs (with the lock). */
extern void remote_start_keeper (struct remote_backend *rb);

/* Add an opened backend to the keepers' list (starting its keeper if
 * the process serves already); take it off before closing it.
 */
extern void remote_keeper_add (struct remote_backend *rb);
extern void remote_keeper_remove (struct remote_backend *rb);

/* Bring a DEAD backend back (without the lock): one new connection,
 * waiting at most timeout=, on which slot 0 must still hold our claim;
 * then UP, with a keeper again.  0, or -1 after log_error (the server is
 * not reachable, slot 0 is another's, the backend is closing).
 */
extern int remote_revive (struct remote_backend *rb);

/* Write the claim back released (the keeper has stopped). */
extern void remote_release_claim (struct remote_backend *rb);

#endif /* SWAPTIER_REMOTE_H */
