/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: failure domains. */

#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "domain.h"
#include "log.h"

int
domain_check_name (const char *name)
{
  if (domain_name_valid (name))
    return 0;
  log_error ("domain=%s: a domain name has 1 to %d bytes, only letters, "
             "digits and . _ : / @ -", name, DOMAIN_NAME_MAX);
  return -1;
}

/* The value of query parameter key in uri (up to '&' or the end), or
 * NULL; *len is set to its length.
 */
static const char *
domain_query (const char *uri, const char *key, size_t *len)
{
  const char *q = strchr (uri, '?');
  size_t klen = strlen (key);

  while (q) {
    q++;
    if (strncmp (q, key, klen) == 0 && q[klen] == '=') {
      q += klen + 1;
      *len = strcspn (q, "&");
      return q;
    }
    q = strchr (q, '&');
  }
  return NULL;
}

char *
domain_default (const char *target)
{
  const char *scheme_end, *auth, *at, *host_end;
  size_t len;
  bool has_port;
  char *name = NULL;
  int r;

  if (!backend_is_uri (target))
    name = strdup (DOMAIN_LOCAL);
  else {
    scheme_end = strstr (target, "://");
    auth = scheme_end + 3;
    len = strcspn (auth, "/?#");
    /* Leave out a user name (TLS PSK identity). */
    at = memchr (auth, '@', len);
    if (at) {
      len -= at + 1 - auth;
      auth = at + 1;
    }
    if (memmem (target, scheme_end - target, "+unix", 5)) {
      const char *sock = domain_query (target, "socket", &len);

      r = asprintf (&name, "unix:%.*s", sock ? (int) len : 0,
                    sock ? sock : "");
    }
    else {
      /* host, [v6addr] or cid, then maybe :port */
      host_end = auth[0] == '[' ? memchr (auth, ']', len) : auth;
      host_end = host_end ? host_end : auth;
      has_port = memchr (host_end, ':', len - (host_end - auth)) != NULL;
      r = asprintf (&name, "%s%.*s%s",
                    memmem (target, scheme_end - target, "+vsock", 6)
                    ? "vsock:" : "",
                    (int) len, auth, has_port ? "" : ":10809");
    }
    if (r == -1)
      name = NULL;
  }
  if (name == NULL)
    log_error ("domain of %s: %m", target);
  return name;
}

int
domain_table_get (struct domain_table *tab, const char *name)
{
  int d, unused = -1;

  for (d = 0; d < DOMAIN_MAX; d++) {
    if (tab->name[d] && strcmp (tab->name[d], name) == 0) {
      tab->refs[d]++;
      return d;
    }
    if (tab->name[d] == NULL && unused == -1)
      unused = d;
  }
  if (unused == -1) {
    log_error ("domain %s: too many domains (at most %d)", name, DOMAIN_MAX);
    return -1;
  }
  tab->name[unused] = strdup (name);
  if (tab->name[unused] == NULL) {
    log_error ("domain %s: %m", name);
    return -1;
  }
  tab->refs[unused] = 1;
  return unused;
}

void
domain_table_put (struct domain_table *tab, unsigned d)
{
  if (--tab->refs[d] == 0) {
    free (tab->name[d]);
    tab->name[d] = NULL;
  }
}

void
domain_table_clear (struct domain_table *tab)
{
  unsigned d;

  for (d = 0; d < DOMAIN_MAX; d++) {
    free (tab->name[d]);
    tab->name[d] = NULL;
    tab->refs[d] = 0;
  }
}
