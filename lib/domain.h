/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: failure domains, the things that fail together.
 *
 * Copies of a page are kept in different domains (see engine.h).  Every
 * backend is in one domain, named by domain= or by default after what
 * it depends on: "local" for local files and block devices (one host),
 * and for a remote backend its server: "unix:PATH" for a Unix socket,
 * "vsock:CID:PORT", or "HOST:PORT" (port 10809 unless given), so that
 * two exports of one server share a domain.
 *
 * A domain table gives the domains of the backends in use small numbers,
 * 0 .. DOMAIN_MAX-1, so that a set of domains fits in one 64-bit mask:
 * a name keeps its number while a backend uses it, and a number whose
 * last backend went away is given to the next new name.  The table has
 * no lock of its own; the tier set changes it under its lock.
 */

#ifndef SWAPTIER_DOMAIN_H
#define SWAPTIER_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define DOMAIN_MAX 64                  /* domains in use at once */
#define DOMAIN_NAME_MAX 64             /* bytes of a name given by domain= */
#define DOMAIN_LOCAL "local"

/* A set of domains: bit d for domain number d. */
typedef uint64_t domain_mask;

struct domain_table {
  char *name[DOMAIN_MAX];              /* NULL: number unused */
  unsigned refs[DOMAIN_MAX];           /* backends in that domain */
};

/* Whether name may be given by domain=: 1 to DOMAIN_NAME_MAX bytes of
 * letters, digits and . _ : / @ -.
 */
static inline bool
domain_name_valid (const char *name)
{
  size_t len = strlen (name);
  const char *p;

  if (len == 0 || len > DOMAIN_NAME_MAX)
    return false;
  for (p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || strchr ("._:/@-", *p)))
      return false;
  return true;
}

/* domain_name_valid, or -1 after log_error naming it; 0 if valid. */
extern int domain_check_name (const char *name);

/* The default domain of a backend's target (a path or an NBD URI), newly
 * allocated; NULL after log_error if out of memory.
 */
extern char *domain_default (const char *target);

/* Take a reference on domain name, giving it a number if it has none.
 * Returns its number, or -1 after log_error (table full, no memory).
 */
extern int domain_table_get (struct domain_table *tab, const char *name);

/* Drop a reference taken by domain_table_get. */
extern void domain_table_put (struct domain_table *tab, unsigned d);

/* Free every name. */
extern void domain_table_clear (struct domain_table *tab);

#endif /* SWAPTIER_DOMAIN_H */
