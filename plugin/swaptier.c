/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: nbdkit plugin exporting one tiered swap device.
 *
 * This file is the glue between nbdkit and libswaptier: it turns the
 * configuration into a tier set and an engine, and each NBD request into
 * one engine call.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "backend.h"
#include "blist.h"
#include "control.h"
#include "engine.h"
#include "log.h"
#include "options.h"
#include "pagemap.h"
#include "codec.h"
#include "demote.h"
#include "repair.h"
#include "swapsafe.h"
#include "tierset.h"

static struct tierset *tiers;
static struct engine *engine;
static struct repair *repair;          /* copies >= 2, once serving */
static struct demote *demote;          /* once serving */
static struct codec *codec;            /* once serving, if encrypting */
static uint64_t export_pages;
static uint64_t export_spare;          /* slots kept free: the reserve */

/* The handle of every connection: all share the one engine. */
static int swaptier_handle;

/* The thread that waits for nbdkit to shut down (see swaptier_watch). */
static pthread_t swaptier_watcher;
static bool swaptier_watcher_started;
static bool swaptier_unloading;        /* atomic: unload stops the watcher */

/* Sinks that hand libswaptier's messages to nbdkit. */
static void
swaptier_log_error (const char *fmt, va_list args)
{
  nbdkit_verror (fmt, args);
}

static void
swaptier_log_debug (const char *fmt, va_list args)
{
  nbdkit_vdebug (fmt, args);
}

/* Notices and warnings: on stderr like nbdkit's own messages, without
 * its "error:" (nbdkit has no call for them).
 */
static void
swaptier_log_notice (const char *fmt, va_list args)
{
  flockfile (stderr);
  fputs ("nbdkit: swaptier: ", stderr);
  vfprintf (stderr, fmt, args);
  fputc ('\n', stderr);
  funlockfile (stderr);
}

static void
swaptier_load (void)
{
  log_set_sinks (swaptier_log_error, swaptier_log_debug);
  log_set_notice_sink (swaptier_log_notice);
}

/* Stop the control socket, and print one line per backend (removed ones
 * are gone) with its counters, for the admin's log.
 */
static void
swaptier_unload (void)
{
  unsigned i;

  control_close ();
  demote_stop (demote);
  repair_stop (repair);
  if (swaptier_watcher_started) {
    __atomic_store_n (&swaptier_unloading, true, __ATOMIC_RELAXED);
    pthread_join (swaptier_watcher, NULL);
  }
  if (tiers) {
    for (i = 0; i < tierset_count (tiers); i++) {
      struct tier_stats st;

      if (!tierset_stats (tiers, i, &st))
        continue;
      fprintf (stderr,
               "swaptier: backend %u %s priority %d: capacity %" PRIu64
               " used %" PRIu64 " free %" PRIu64 " bad %" PRIu64
               " reads %" PRIu64 " writes %" PRIu64 " errors %" PRIu64
               " lost %" PRIu64 " read_slots %" PRIu64 " demoted %" PRIu64
               " rereads %" PRIu64 "\n",
               st.id, st.target, st.priority, st.capacity, st.used, st.free,
               st.bad, st.reads, st.writes, st.errors, st.lost,
               st.read_slots, st.demoted, st.rereads);
    }
  }
  engine_destroy (engine);
  codec_destroy (codec);
  tierset_destroy (tiers);
}

static void
swaptier_dump_plugin (void)
{
  printf ("swaptier_version=%s\n", PACKAGE_VERSION);
  printf ("swaptier_page_size=%" PRIu32 "\n", PAGE_SIZE);
  printf ("swaptier_max_backends=%d\n", TIERSET_MAX_TIERS);
  printf ("swaptier_max_slots_per_backend=%" PRIu64 "\n",
          (uint64_t) BLIST_MAX_SLOTS);
  printf ("swaptier_stripe_max=%d\n", ENGINE_STRIPE_MAX);
  printf ("swaptier_requests_in_flight=%d\n", ENGINE_REQUESTS);
  printf ("swaptier_copies_max=%d\n", PAGEMAP_COPIES_MAX);
  printf ("swaptier_checksum=crc32c\n");
  printf ("swaptier_cipher=aes-256-xts\n");
  printf ("swaptier_cipher_library=%s\n", codec_cipher_library ());
}

/* Slots kept out of the export: the configured reserve, and at least what
 * the requests in flight need.
 */
static uint64_t
swaptier_spare (uint64_t capacity)
{
  uint64_t spare;

  if (options.reserve_percent >= 0)
    spare = (capacity * options.reserve_percent + 99) / 100;
  else
    spare = (options.reserve_bytes + PAGE_SIZE - 1) / PAGE_SIZE;
  if (spare < engine_min_spare (options.stripe))
    spare = engine_min_spare (options.stripe);
  return spare;
}

/* Open the backends, size the export and create the engine and the
 * control socket from the options.  Returns 0, or -1 after nbdkit_error,
 * leaving what it made for the caller to undo.
 */
static int
swaptier_build (void)
{
  uint64_t capacity, spare;
  unsigned i;

  if (options_complete () == -1)
    return -1;
  tiers = tierset_create (options.max_errors);
  if (tiers == NULL)
    return -1;
  for (i = 0; i < options.nbackends; i++) {
    const struct backend_spec *b = &options.backend[i];
    struct tier_spec spec = {
      .target = b->target,
      .priority = b->priority,
      .capacity = b->capacity,
      .force = b->force,
      .connections = b->connections,
      .timeout_ms = b->timeout * 1000,
      .grace_ms = b->grace * 1000,
      .domain = b->domain,
      .clear = !(b->encrypt == -1 ? options.encrypt : b->encrypt),
    };

    if (tierset_open (tiers, &spec) == -1)
      return -1;
  }

  if (tierset_ndomains (tiers, UINT_MAX) < options.copies) {
    nbdkit_error ("copies=%u: the backends are in fewer failure domains "
                  "(%u) than copies; give backends domain=NAME (a local "
                  "backend is in domain \"local\", a remote one in its "
                  "server's) or add backends in other domains",
                  options.copies, tierset_ndomains (tiers, UINT_MAX));
    return -1;
  }
  capacity = tierset_capacity (tiers);
  spare = export_spare = swaptier_spare (capacity);
  /* With copies, the pages that get all of them. */
  capacity = tierset_copies_capacity (tiers, options.copies);
  if (capacity <= spare) {
    nbdkit_error ("the backends hold %" PRIu64 " slots, not more than the "
                  "%" PRIu64 " slots kept spare (reserve= and %d requests "
                  "in flight x stripe=%" PRIu32 ")", capacity, spare,
                  ENGINE_REQUESTS, options.stripe);
    return -1;
  }
  if (options.size == -1)
    export_pages = capacity - spare;
  else if ((uint64_t) options.size / PAGE_SIZE > capacity - spare) {
    nbdkit_error ("size=%" PRIi64 " is larger than the backends can hold: "
                  "%" PRIu64 " bytes after keeping %" PRIu64 " slots spare",
                  options.size, (capacity - spare) * PAGE_SIZE, spare);
    return -1;
  }
  else
    export_pages = options.size / PAGE_SIZE;

  engine = engine_create (tiers, export_pages, options.stripe,
                          options.copies);
  if (engine == NULL)
    return -1;
  engine_set_checksum (engine, options.checksum);
  if (options.control && control_open (options.control) == -1)
    return -1;
  nbdkit_debug ("exporting %" PRIu64 " pages of %u copies over %u "
                "backends (%" PRIu64 " slots, %" PRIu64 " spare)",
                export_pages, options.copies, tierset_count (tiers),
                tierset_capacity (tiers), spare);
  return 0;
}

/* A start that fails leaves nothing behind: the backends are discarded,
 * which removes the files that capacity= created now (files that existed
 * stay), and the control socket is closed.
 */
static int
swaptier_config_complete (void)
{
  if (swaptier_build () == 0)
    return 0;
  control_close ();
  engine_destroy (engine);
  engine = NULL;
  tierset_discard (tiers);
  tiers = NULL;
  return -1;
}

/* Sleep in nbdkit_nanosleep, which ends early (ESHUTDOWN) once nbdkit
 * starts shutting down, also in a thread that serves no connection; then
 * stop the background moves (demotion, repair) from taking another
 * step, and make every backend end its waits, so that the requests in
 * progress (which nbdkit waits for) and a drain end promptly.
 */
static void *
swaptier_watch (void *arg)
{
  while (!__atomic_load_n (&swaptier_unloading, __ATOMIC_RELAXED)) {
    if (nbdkit_nanosleep (1, 0) == -1 && errno == ESHUTDOWN) {
      demote_halt (__atomic_load_n (&demote, __ATOMIC_ACQUIRE));
      repair_halt (__atomic_load_n (&repair, __ATOMIC_ACQUIRE));
      tierset_shutdown (tiers);
      backend_nbd_shutdown_all ();
      break;
    }
  }
  return NULL;
}

/* In the process that serves: the ephemeral key and cipher contexts
 * when any backend encrypts (or may, once added), and no core dump of a
 * process that holds them.
 */
static int
swaptier_start_codec (void)
{
  if (!options.encrypt && !tierset_encrypts (tiers))
    return 0;
  if (prctl (PR_SET_DUMPABLE, 0) == -1) {
    nbdkit_error ("prctl PR_SET_DUMPABLE: %m");
    return -1;
  }
  codec = codec_create (ENGINE_REQUESTS * options.copies);
  if (codec == NULL)
    return -1;
  /* The expanded key is on the heap, which only mlockall keeps out of
   * swap.
   */
  if (!options.mlock)
    log_warning ("mlock=off: the memory that holds the "
                  "encryption key is not locked, and may be swapped out");
  return engine_set_codec (engine, codec);
}

/* Start the background jobs: the repairer (with copies) and the
 * demoter, published for the shutdown watcher.
 */
static int
swaptier_start_jobs (void)
{
  struct repair *r = NULL;
  struct demote *d;

  if (options.copies > 1 &&
      (r = repair_start (engine, tiers, options.repair_rate)) == NULL)
    return -1;
  __atomic_store_n (&repair, r, __ATOMIC_RELEASE);
  d = demote_start (engine, tiers, &options.demote);
  if (d == NULL)
    return -1;
  __atomic_store_n (&demote, d, __ATOMIC_RELEASE);
  return 0;
}

/* In the process that serves (after nbdkit's fork, which would drop
 * memory locks and threads): small stacks, memory locked, I/O flusher,
 * the remote backends' keepers, the shutdown watcher, then the control
 * thread.
 */
static int
swaptier_after_fork (void)
{
  int err;

  if (swapsafe_setup (options.mlock) == -1)
    return -1;
  if (options.mlock)
    engine_prefault (engine);
  backend_nbd_serve ();
  err = pthread_create (&swaptier_watcher, NULL, swaptier_watch, NULL);
  if (err) {
    nbdkit_error ("starting the shutdown watcher: %s", strerror (err));
    return -1;
  }
  swaptier_watcher_started = true;
  if (swaptier_start_codec () == -1 || engine_serve (engine) == -1)
    return -1;
  if (swaptier_start_jobs () == -1)
    return -1;
  return control_start (engine, tiers, export_pages, export_spare, repair,
                        demote);
}

/* Each NBD connection: counted, so that stop waits for none. */
static void *
swaptier_open (int readonly)
{
  control_nbd_opened ();
  return &swaptier_handle;
}

static void
swaptier_close (void *handle)
{
  control_nbd_closed ();
}

static int64_t
swaptier_get_size (void *handle)
{
  return export_pages * PAGE_SIZE;
}

/* Requests are served best in whole pages; smaller ones still work.  The
 * maximum is the conventional NBD limit, within what nbdkit accepts.
 */
#define SWAPTIER_MAX_REQUEST (32 * 1024 * 1024)

static int
swaptier_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  *minimum = PAGE_SIZE;
  *preferred = PAGE_SIZE;
  *maximum = SWAPTIER_MAX_REQUEST;
  return 0;
}

static int
swaptier_can_multi_conn (void *handle)
{
  return 1;
}

static int
swaptier_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
swaptier_can_trim (void *handle)
{
  return 1;
}

static int
swaptier_can_zero (void *handle)
{
  return 1;
}

static int
swaptier_can_fast_zero (void *handle)
{
  return 1;
}

static int
swaptier_can_extents (void *handle)
{
  return 1;
}

static int
swaptier_is_rotational (void *handle)
{
  return 0;
}

static int
swaptier_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  swapsafe_enter_io ();
  return engine_read (engine, buf, count, offset);
}

static int
swaptier_pwrite (void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags)
{
  swapsafe_enter_io ();
  return engine_write (engine, buf, count, offset,
                       flags & NBDKIT_FLAG_FUA);
}

static int
swaptier_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  swapsafe_enter_io ();
  return engine_trim (engine, count, offset, flags & NBDKIT_FLAG_FUA);
}

/* Zeroing unmaps, which is fast.  A client that forbids holes (no
 * MAY_TRIM) gets zeroes written, which is not fast, so a FAST_ZERO
 * request of that kind is refused as the protocol asks.
 */
static int
swaptier_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  bool may_unmap = flags & NBDKIT_FLAG_MAY_TRIM;

  swapsafe_enter_io ();
  if (!may_unmap && (flags & NBDKIT_FLAG_FAST_ZERO)) {
    errno = ENOTSUP;
    return -1;
  }
  return engine_zero (engine, count, offset, flags & NBDKIT_FLAG_FUA,
                      may_unmap);
}

static int
swaptier_flush (void *handle, uint32_t flags)
{
  swapsafe_enter_io ();
  return engine_flush (engine);
}

/* Hand one engine extent to nbdkit. */
static int
swaptier_add_extent (void *opaque, uint64_t offset, uint64_t length,
                     bool hole)
{
  return nbdkit_add_extent (opaque, offset, length,
                            hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                            : 0);
}

static int
swaptier_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  swapsafe_enter_io ();
  return engine_extents (engine, count, offset, swaptier_add_extent, extents);
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name = "swaptier",
  .version = PACKAGE_VERSION,
  .longname = "swaptier tiered swap device",
  .description = "Exports one swap device whose pages live on prioritized "
                 "backends.",
  .load = swaptier_load,
  .unload = swaptier_unload,
  .dump_plugin = swaptier_dump_plugin,
  .config = options_config,
  .config_complete = swaptier_config_complete,
  .after_fork = swaptier_after_fork,
  .cleanup = control_close,
  .config_help = OPTIONS_HELP,
  .magic_config_key = "backend",
  .open = swaptier_open,
  .close = swaptier_close,
  .get_size = swaptier_get_size,
  .block_size = swaptier_block_size,
  .can_multi_conn = swaptier_can_multi_conn,
  .can_fua = swaptier_can_fua,
  .can_trim = swaptier_can_trim,
  .can_zero = swaptier_can_zero,
  .can_fast_zero = swaptier_can_fast_zero,
  .can_extents = swaptier_can_extents,
  .is_rotational = swaptier_is_rotational,
  .pread = swaptier_pread,
  .pwrite = swaptier_pwrite,
  .trim = swaptier_trim,
  .zero = swaptier_zero,
  .flush = swaptier_flush,
  .extents = swaptier_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
