/* swaptier: configuration keys of the plugin. */

#ifndef SWAPTIER_OPTIONS_H
#define SWAPTIER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "tierset.h"

/* One backend= key with the priority= and capacity= that followed it. */
struct backend_spec {
  const char *target;
  int priority;
  uint64_t capacity;                   /* bytes, 0 if not given */
};

struct options {
  struct backend_spec backend[TIERSET_MAX_TIERS];
  unsigned nbackends;
  int64_t size;                        /* bytes, -1 if not given */
  uint32_t stripe;                     /* pages */
  int reserve_percent;                 /* -1 if reserve given in bytes */
  int64_t reserve_bytes;
  unsigned max_errors;
};

extern struct options options;

#define OPTIONS_HELP \
  "backend=PATH               (repeatable) A file or block device.\n" \
  "  priority=N               Priority of the backend before it (-1..32767,\n" \
  "                           default 0; higher is used first).\n" \
  "  capacity=SIZE            Create or extend the file before it.\n" \
  "size=SIZE                  Size of the exported device (default: all the\n" \
  "                           backends can hold, less the reserve).\n" \
  "reserve=PERCENT%|SIZE      Slots kept free for rewrites (default 1%).\n" \
  "stripe=PAGES               Stripe unit over equal priorities (default 16).\n" \
  "max-errors=N               Fail a backend after N errors in a row\n" \
  "                           (default 8).\n" \
  "config=FILE                Read key=value lines from FILE."

/* Handle one key=value, from the command line or a config= file. */
extern int options_config (const char *key, const char *value);

/* Check what the keys left, once all are read. */
extern int options_complete (void);

#endif /* SWAPTIER_OPTIONS_H */
