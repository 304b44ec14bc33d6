/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the claim of a remote export (see remote-claim.h). */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "log.h"
#include "remote-claim.h"

/* How often a foreign claim's heartbeat is read while it is watched. */
#define CLAIM_WATCH_STEP_MS 500

/* The claims of the open backends of this process. */
static struct {
  pthread_mutex_t lock;
  struct remote_claim *first;
} claim_registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The registered claim equal to h, or NULL (with the registry's lock). */
static struct remote_claim *
claim_registry_find (const struct header *h)
{
  struct remote_claim *cl;

  for (cl = claim_registry.first; cl; cl = cl->next)
    if (header_same_claim (&cl->self, h))
      return cl;
  return NULL;
}

/* Sleep ms milliseconds. */
static void
claim_sleep_ms (unsigned ms)
{
  struct timespec ts = { .tv_sec = ms / 1000,
                         .tv_nsec = (ms % 1000) * 1000000L };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Watch the foreign claim *found for CLAIM_TAKEOVER_MS.  Returns 0 if it
 * may be taken (its heartbeat did not move, or it was released), or -1
 * after log_error if it is alive (or slot 0 could not be read).
 */
static int
claim_watch (const char *target, const struct claim_io *io, void *page,
             const struct header *found)
{
  struct header now;
  unsigned waited;

  log_debug ("%s: the export is claimed by swaptier on host %s (pid %"
             PRIu32 "); watching its heartbeat for %d s", target,
             found->host, found->pid, CLAIM_TAKEOVER_MS / 1000);
  for (waited = 0; waited < CLAIM_TAKEOVER_MS;
       waited += CLAIM_WATCH_STEP_MS) {
    claim_sleep_ms (CLAIM_WATCH_STEP_MS);
    if (io->read (io->opaque, page) == -1)
      return -1;
    if (!header_decode (page, &now) || (now.flags & HEADER_RELEASED))
      return 0;
    if (!header_same_claim (found, &now) ||
        now.heartbeat != found->heartbeat) {
      log_error ("%s: the export is in use by swaptier on host %s (pid %"
                 PRIu32 ", as %s): its heartbeat moves", target, now.host,
                 now.pid, now.target);
      return -1;
    }
  }
  log_debug ("%s: taking over the claim of host %s (pid %" PRIu32 "): its "
             "heartbeat did not move for %d s", target, found->host,
             found->pid, CLAIM_TAKEOVER_MS / 1000);
  return 0;
}

/* Decide whether the export may be taken, from what slot 0 holds (with
 * the registry's lock).  Returns 0 if so, else -1 after log_error.
 */
static int
claim_decide (const char *target, const struct claim_io *io, void *page)
{
  struct header found;

  if (io->read (io->opaque, page) == -1)
    return -1;
  if (!header_decode (page, &found) || (found.flags & HEADER_RELEASED))
    return 0;
  if (header_is_this_instance (&found)) {
    if (claim_registry_find (&found)) {
      log_error ("%s: the same export as backend %s, which uses it already",
                 target, found.target);
      return -1;
    }
    return 0;
  }
  if (header_is_this_boot (&found)) {
    if (header_owner_alive_here (&found)) {
      log_error ("%s: the export is in use by another swaptier on this host "
                 "(%s, pid %" PRIu32 ", as %s)", target, found.host,
                 found.pid, found.target);
      return -1;
    }
    log_debug ("%s: taking over the claim of swaptier pid %" PRIu32
               ", which is gone", target, found.pid);
    return 0;
  }
  return claim_watch (target, io, page, &found);
}

int
claim_take (struct remote_claim *cl, const char *target,
            const struct claim_io *io, void *page)
{
  int r;

  if (header_init_self (&cl->self, target) == -1)
    return -1;
  pthread_mutex_lock (&claim_registry.lock);
  r = claim_decide (target, io, page);
  if (r == 0) {
    header_encode (&cl->self, page);
    r = io->write (io->opaque, page);
  }
  if (r == 0) {
    cl->next = claim_registry.first;
    claim_registry.first = cl;
    cl->registered = true;
  }
  pthread_mutex_unlock (&claim_registry.lock);
  return r;
}

enum claim_state
claim_check (const struct remote_claim *cl, const void *page,
             const char *target)
{
  struct header found;

  if (!header_decode (page, &found)) {
    log_error ("%s: the export no longer holds swaptier's header (the "
               "server lost its data or is another export); every page "
               "on this backend is lost", target);
    return CLAIM_GONE;
  }
  if (!header_same_claim (&cl->self, &found) ||
      (found.flags & HEADER_RELEASED)) {
    log_error ("%s: the export is claimed by another instance (swaptier "
               "on host %s, pid %" PRIu32 ", as %s)", target, found.host,
               found.pid, found.target);
    return CLAIM_TAKEN;
  }
  return CLAIM_OURS;
}

int
claim_beat (struct remote_claim *cl, const char *target,
            const struct claim_io *io, void *page, enum claim_state *state)
{
  if (io->read (io->opaque, page) == -1)
    return -1;
  *state = claim_check (cl, page, target);
  if (*state != CLAIM_OURS)
    return 0;
  header_refresh_self (&cl->self);
  cl->self.heartbeat++;
  header_encode (&cl->self, page);
  return io->write (io->opaque, page);
}

void
claim_release (struct remote_claim *cl, const char *target,
               const struct claim_io *io, void *page)
{
  struct remote_claim **p;
  struct header found;

  pthread_mutex_lock (&claim_registry.lock);
  for (p = &claim_registry.first; cl->registered && *p; p = &(*p)->next) {
    if (*p == cl) {
      *p = cl->next;
      break;
    }
  }
  cl->registered = false;
  pthread_mutex_unlock (&claim_registry.lock);

  if (io == NULL || io->read (io->opaque, page) == -1)
    return;
  if (!header_decode (page, &found) || !header_same_claim (&cl->self, &found))
    return;
  cl->self.flags |= HEADER_RELEASED;
  header_encode (&cl->self, page);
  if (io->write (io->opaque, page) == 0)
    log_debug ("%s: released", target);
}
