/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: configuration keys of the plugin. */

#ifndef SWAPTIER_OPTIONS_H
#define SWAPTIER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "demote.h"
#include "tierset.h"

/* One backend= key with the keys that followed it (priority=,
 * capacity=, force=, connections=, timeout=, grace=, domain=), each at
 * most once.
 */
struct backend_spec {
  const char *target;
  bool remote;                         /* an NBD URI */
  unsigned given;                      /* keys given, a bit each */
  int priority;
  uint64_t capacity;                   /* bytes, 0 if not given */
  bool force;                          /* local: whatever it holds */
  unsigned connections;                /* remote: connections (in flight) */
  unsigned timeout;                    /* remote: seconds per request */
  unsigned grace;                      /* remote: seconds to reconnect */
  const char *domain;                  /* NULL: the default */
  int encrypt;                         /* -1: the default, 0 off, 1 on */
};

struct options {
  struct backend_spec backend[TIERSET_MAX_TIERS];
  unsigned nbackends;
  int64_t size;                        /* bytes, -1 if not given */
  uint32_t stripe;                     /* pages */
  int reserve_percent;                 /* -1 if reserve given in bytes */
  int64_t reserve_bytes;
  unsigned max_errors;
  bool mlock;                          /* lock the process in memory */
  const char *control;                 /* control socket, NULL if none */
  unsigned copies;                     /* of each page, on distinct domains */
  uint64_t repair_rate;                /* bytes a second, 0: no limit */
  struct demote_config demote;
  bool encrypt;                        /* the backends' default */
  bool checksum;                       /* verify every read */
};

extern struct options options;

#define OPTIONS_HELP \
  "backend=PATH|URI           (repeatable) A file, block device (or\n" \
  "                           file:///PATH) or NBD URI (nbd://, nbds://,\n" \
  "                           nbd+unix:///?socket=..., nbd+vsock://).\n" \
  "                           Slot 0 of each holds swaptier's header.\n" \
  "  priority=N               Priority of the backend before it (-1..32767,\n" \
  "                           default 0; higher is used first).\n" \
  "  capacity=SIZE            Create or extend the file before it.\n" \
  "  force=true               Use the local file or device before it even\n" \
  "                           if it holds a file system, partition table,\n" \
  "                           swap area or other signature.\n" \
  "  connections=N            Remote: connections, so requests in flight\n" \
  "                           (default 4).\n" \
  "  timeout=SECONDS          Remote: time allowed per request (default 30).\n" \
  "  grace=SECONDS            Remote: how long to try reconnecting before\n" \
  "                           the backend is failed (default 60).\n" \
  "  encrypt=on|off           Encrypt the pages on the backend before it\n" \
  "                           (default: encrypt= before the first\n" \
  "                           backend=, else on).\n" \
  "  domain=NAME              Failure domain of the backend before it\n" \
  "                           (default: \"local\" for local backends, the\n" \
  "                           server for remote ones).\n" \
  "size=SIZE                  Size of the exported device (default: all the\n" \
  "                           backends can hold, less the reserve).\n" \
  "reserve=PERCENT%|SIZE      Slots kept free for rewrites (default 1%).\n" \
  "stripe=PAGES               Stripe unit over equal priorities (default 16).\n" \
  "max-errors=N               Fail a backend after N errors in a row\n" \
  "                           (default 8).\n" \
  "mlock=on|off               Lock the process in memory (default on).\n" \
  "copies=N                   Keep each page on N backends of N different\n" \
  "                           failure domains (1 to 3, default 1).\n" \
  "repair-rate=SIZE           Bytes a second that re-creating lost copies\n" \
  "                           may copy (default 64M; 0: no limit).\n" \
  "demote=on|off              Move the coldest pages of a priority level\n" \
  "                           down when its free slots run low (default\n" \
  "                           on).\n" \
  "demote-low=PERCENT         Start when a level's free slots fall below\n" \
  "                           this share (default 5).\n" \
  "demote-high=PERCENT        Stop when they are back at it (default 10).\n" \
  "demote-rate=SIZE           Bytes a second that demotion and promotion\n" \
  "                           may move (default 64M; 0: no limit).\n" \
  "promote=on|off             Move pages read again from a lower level up\n" \
  "                           (default off).\n" \
  "encrypt=on|off             Before the first backend=: encrypt pages on\n" \
  "                           every backend with AES-256-XTS and a key\n" \
  "                           made at start (default on).\n" \
  "checksum=on|off            Check every page read against its CRC32C\n" \
  "                           (default on).\n" \
  "control=PATH               Serve swaptierctl on a Unix socket at PATH\n" \
  "                           (mode 0600).\n" \
  "config=FILE                Read key=value lines from FILE.\n" \
  "Every key but backend= and config= may be given once (once per\n" \
  "backend for the keys that follow a backend=)."

/* Handle one key=value, from the command line or a config= file. */
extern int options_config (const char *key, const char *value);

/* Check what the keys left, once all are read. */
extern int options_complete (void);

#endif /* SWAPTIER_OPTIONS_H */
