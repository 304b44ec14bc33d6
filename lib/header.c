/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the header slot of a backend (see header.h). */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include "header.h"
#include "log.h"
#include "page.h"

#define HEADER_OFF_INSTANCE 32
#define HEADER_OFF_TOKEN 48
#define HEADER_OFF_HEARTBEAT 64
#define HEADER_OFF_START 72
#define HEADER_OFF_PID 80
#define HEADER_OFF_FLAGS 84
#define HEADER_OFF_HOST 96
#define HEADER_OFF_BOOT 160
#define HEADER_OFF_TARGET 256

/* This process's identity, made once.  The pid and start time are not
 * kept: nbdkit forks after the configuration, and the serving process
 * is another one.
 */
static struct {
  pthread_once_t once;
  int error;                           /* errno if it could not be made */
  uint8_t instance[16];
  char host[64];
  char boot_id[40];
} header_self = { .once = PTHREAD_ONCE_INIT };

/* Fill len bytes at buf from getrandom.  Returns 0 or -1 with errno. */
static int
header_random (void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = getrandom (p, len, 0);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    len -= r;
  }
  return 0;
}

/* The boot id of this host into buf (len bytes), "" if unknown. */
static void
header_read_boot_id (char *buf, size_t len)
{
  FILE *fp = fopen ("/proc/sys/kernel/random/boot_id", "re");

  buf[0] = '\0';
  if (fp == NULL)
    return;
  if (fgets (buf, len, fp) == NULL)
    buf[0] = '\0';
  buf[strcspn (buf, "\n")] = '\0';
  fclose (fp);
}

/* The start time of process pid (field 22 of /proc/PID/stat, clock ticks
 * since boot), 0 if it does not exist.
 */
static uint64_t
header_process_start (uint32_t pid)
{
  char path[64], buf[1024], *p;
  unsigned long long start = 0;
  FILE *fp;
  size_t n;
  int field;

  snprintf (path, sizeof path, "/proc/%" PRIu32 "/stat", pid);
  fp = fopen (path, "re");
  if (fp == NULL)
    return 0;
  n = fread (buf, 1, sizeof buf - 1, fp);
  fclose (fp);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces: count from its end.
   * The space before field n is the (n - 2)th after it.
   */
  p = strrchr (buf, ')');
  if (p == NULL)
    return 0;
  for (field = 3; p && field <= 22; field++)
    p = strchr (p + 1, ' ');
  if (p == NULL || sscanf (p + 1, "%llu", &start) != 1)
    return 0;
  return start;
}

static void
header_make_self (void)
{
  if (header_random (header_self.instance, sizeof header_self.instance)
      == -1) {
    header_self.error = errno;
    return;
  }
  if (gethostname (header_self.host, sizeof header_self.host) == -1)
    header_self.host[0] = '\0';
  header_self.host[sizeof header_self.host - 1] = '\0';
  header_read_boot_id (header_self.boot_id, sizeof header_self.boot_id);
}

int
header_init_self (struct header *h, const char *target)
{
  pthread_once (&header_self.once, header_make_self);
  if (header_self.error) {
    errno = header_self.error;
    log_error ("%s: getrandom: %m", target);
    return -1;
  }
  memset (h, 0, sizeof *h);
  memcpy (h->instance, header_self.instance, sizeof h->instance);
  if (header_random (h->token, sizeof h->token) == -1) {
    log_error ("%s: getrandom: %m", target);
    return -1;
  }
  header_refresh_self (h);
  memcpy (h->host, header_self.host, sizeof h->host);
  memcpy (h->boot_id, header_self.boot_id, sizeof h->boot_id);
  snprintf (h->target, sizeof h->target, "%s", target);
  return 0;
}

bool
header_refresh_self (struct header *h)
{
  uint32_t pid = getpid ();

  if (h->pid == pid && h->start_time != 0)
    return false;
  h->pid = pid;
  h->start_time = header_process_start (pid);
  return true;
}

/* Store and load little-endian integers of n bytes. */
static void
header_put (unsigned char *p, uint64_t v, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++)
    p[i] = v >> (8 * i);
}

static uint64_t
header_get (const unsigned char *p, unsigned n)
{
  uint64_t v = 0;
  unsigned i;

  for (i = 0; i < n; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

/* Copy a NUL-terminated string of at most len - 1 bytes into dst. */
static void
header_put_string (unsigned char *dst, const char *src, size_t len)
{
  size_t n = strnlen (src, len - 1);

  memcpy (dst, src, n);
}

void
header_encode (const struct header *h, void *page)
{
  unsigned char *p = page;

  memset (p, 0, PAGE_SIZE);
  memcpy (p, HEADER_MAGIC, sizeof HEADER_MAGIC - 1);
  memcpy (p + HEADER_OFF_INSTANCE, h->instance, sizeof h->instance);
  memcpy (p + HEADER_OFF_TOKEN, h->token, sizeof h->token);
  header_put (p + HEADER_OFF_HEARTBEAT, h->heartbeat, 8);
  header_put (p + HEADER_OFF_START, h->start_time, 8);
  header_put (p + HEADER_OFF_PID, h->pid, 4);
  header_put (p + HEADER_OFF_FLAGS, h->flags, 4);
  header_put_string (p + HEADER_OFF_HOST, h->host, sizeof h->host);
  header_put_string (p + HEADER_OFF_BOOT, h->boot_id, sizeof h->boot_id);
  header_put_string (p + HEADER_OFF_TARGET, h->target, sizeof h->target);
}

/* Copy a string field of len bytes, making sure it ends with a NUL. */
static void
header_get_string (char *dst, const unsigned char *src, size_t len)
{
  memcpy (dst, src, len);
  dst[len - 1] = '\0';
}

bool
header_decode (const void *page, struct header *h)
{
  const unsigned char *p = page;
  static const unsigned char zero[HEADER_OFF_INSTANCE] = { 0 };
  size_t mlen = sizeof HEADER_MAGIC - 1;

  if (memcmp (p, HEADER_MAGIC, mlen) != 0 ||
      memcmp (p + mlen, zero, HEADER_OFF_INSTANCE - mlen) != 0)
    return false;
  memset (h, 0, sizeof *h);
  memcpy (h->instance, p + HEADER_OFF_INSTANCE, sizeof h->instance);
  memcpy (h->token, p + HEADER_OFF_TOKEN, sizeof h->token);
  h->heartbeat = header_get (p + HEADER_OFF_HEARTBEAT, 8);
  h->start_time = header_get (p + HEADER_OFF_START, 8);
  h->pid = header_get (p + HEADER_OFF_PID, 4);
  h->flags = header_get (p + HEADER_OFF_FLAGS, 4);
  header_get_string (h->host, p + HEADER_OFF_HOST, sizeof h->host);
  header_get_string (h->boot_id, p + HEADER_OFF_BOOT, sizeof h->boot_id);
  header_get_string (h->target, p + HEADER_OFF_TARGET, sizeof h->target);
  return true;
}

bool
header_same_claim (const struct header *a, const struct header *b)
{
  return memcmp (a->instance, b->instance, sizeof a->instance) == 0 &&
    memcmp (a->token, b->token, sizeof a->token) == 0;
}

bool
header_is_this_instance (const struct header *h)
{
  pthread_once (&header_self.once, header_make_self);
  return header_self.error == 0 &&
    memcmp (h->instance, header_self.instance, sizeof h->instance) == 0;
}

bool
header_is_this_boot (const struct header *h)
{
  pthread_once (&header_self.once, header_make_self);
  return header_self.boot_id[0] != '\0' &&
    strcmp (h->boot_id, header_self.boot_id) == 0 &&
    strcmp (h->host, header_self.host) == 0;
}

bool
header_owner_alive_here (const struct header *h)
{
  uint64_t start;

  if ((h->flags & HEADER_RELEASED) || !header_is_this_boot (h))
    return false;
  start = header_process_start (h->pid);
  return start != 0 && start == h->start_time;
}
