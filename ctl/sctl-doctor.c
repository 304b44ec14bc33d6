/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl doctor (sctl-doctor.h says what it checks).  Everything is
 * read from /proc and /sys; nothing is changed.
 */

#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sctl-doctor.h"

#define SCTL_CAP_IPC_LOCK 14
#define SCTL_CAP_SYS_RESOURCE 24

/* The problems found so far. */
static unsigned sctl_problems;

static void sctl_ok (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
static void sctl_problem (const char *fix, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
sctl_ok (const char *fmt, ...)
{
  va_list ap;

  fputs ("ok: ", stdout);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
}

/* A problem, and how to fix it. */
static void
sctl_problem (const char *fix, const char *fmt, ...)
{
  va_list ap;

  fputs ("problem: ", stdout);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("; fix: %s\n", fix);
  sctl_problems++;
}

/* The first line of file path that starts with key, into out (without
 * the key, leading blanks skipped); false if there is none.
 */
static bool
sctl_read_field (const char *path, const char *key, char *out, size_t len)
{
  FILE *f = fopen (path, "r");
  char line[512];
  bool found = false;

  if (f == NULL)
    return false;
  while (!found && fgets (line, sizeof line, f)) {
    if (strncmp (line, key, strlen (key)) != 0)
      continue;
    const char *v = line + strlen (key);

    snprintf (out, len, "%s", v + strspn (v, " \t"));
    out[strcspn (out, "\n")] = '\0';
    found = true;
  }
  fclose (f);
  return found;
}

/* The server's memory is locked, and why not if it is not. */
static void
sctl_doctor_memory (pid_t pid)
{
  char path[64], v[128], rss[128], limit[128] = "";
  uint64_t caps = 0;

  snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
  if (sctl_read_field (path, "CapEff:", v, sizeof v))
    caps = strtoull (v, NULL, 16);
  snprintf (path, sizeof path, "/proc/%d/limits", (int) pid);
  sctl_read_field (path, "Max locked memory", limit, sizeof limit);
  snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
  if (!sctl_read_field (path, "VmRSS:", rss, sizeof rss) ||
      !sctl_read_field (path, "VmLck:", v, sizeof v)) {
    sctl_problem ("run swaptierctl as root, on the plugin's host",
                  "nbdkit (pid %d): its memory cannot be read", (int) pid);
    return;
  }
  /* mlock=on locks every page as it is touched; with mlock=off only
   * the key's page is.
   */
  if (2 * strtoull (v, NULL, 10) >= strtoull (rss, NULL, 10))
    sctl_ok ("nbdkit (pid %d) has its memory locked (%s of %s)", (int) pid,
             v, rss);
  else if (!(caps & (1ull << SCTL_CAP_IPC_LOCK)))
    sctl_problem ("start it with mlock=on and CAP_IPC_LOCK "
                  "(swaptier.service has both)",
                  "nbdkit (pid %d) has no memory locked, and no "
                  "CAP_IPC_LOCK (memlock limit %s)", (int) pid, limit);
  else
    sctl_problem ("do not give mlock=off where it swaps for this host",
                  "nbdkit (pid %d) has no memory locked (mlock=off?)",
                  (int) pid);
  if (caps & (1ull << SCTL_CAP_SYS_RESOURCE))
    sctl_ok ("nbdkit (pid %d) has CAP_SYS_RESOURCE (PR_SET_IO_FLUSHER)",
             (int) pid);
  else
    sctl_problem ("run it with CAP_SYS_RESOURCE (swaptier.service does)",
                  "nbdkit (pid %d) lacks CAP_SYS_RESOURCE, so it cannot "
                  "be an I/O flusher: under memory pressure serving this "
                  "host's swap can deadlock", (int) pid);
}

/* The memory limit of cgroup path (relative to the v2 or v1 memory
 * hierarchy) into out ("max" for none); false if none can be read.
 */
static bool
sctl_cgroup_limit (const char *path, bool v2, char *out, size_t len)
{
  char file[512];
  static const char *const v2_files[] = { "memory.max", "memory.high" };
  unsigned i;

  out[0] = '\0';
  if (!v2) {
    snprintf (file, sizeof file, "/sys/fs/cgroup/memory%s/"
              "memory.limit_in_bytes", path);
    if (!sctl_read_field (file, "", out, len))
      return false;
    /* v1 says "no limit" with a huge number. */
    if (strtoull (out, NULL, 10) >= (1ull << 62))
      snprintf (out, len, "max");
    return true;
  }
  for (i = 0; i < 2; i++) {
    char v[64];

    snprintf (file, sizeof file, "/sys/fs/cgroup%s/%s", path, v2_files[i]);
    if (!sctl_read_field (file, "", v, sizeof v))
      return false;
    if (strcmp (v, "max") != 0) {
      snprintf (out, len, "%s=%s", v2_files[i], v);
      return true;
    }
  }
  snprintf (out, len, "max");
  return true;
}

/* The server's cgroup has no memory limit; the big slices, said. */
static void
sctl_doctor_cgroups (pid_t pid)
{
  static const char *const slices[] = { "/user.slice", "/system.slice" };
  char path[64], group[256] = "", limit[128];
  bool v2 = false;
  unsigned i;

  snprintf (path, sizeof path, "/proc/%d/cgroup", (int) pid);
  if (access ("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
    v2 = sctl_read_field (path, "0::", group, sizeof group);
  else {
    FILE *f = fopen (path, "r");
    char line[512];

    /* v1: the line "N:memory:/path", whatever N is. */
    while (f && fgets (line, sizeof line, f)) {
      char *m = strstr (line, ":memory:");

      if (m) {
        snprintf (group, sizeof group, "%s", m + 8);
        group[strcspn (group, "\n")] = '\0';
      }
    }
    if (f)
      fclose (f);
  }
  if (group[0] && sctl_cgroup_limit (group, v2, limit, sizeof limit)) {
    if (strcmp (limit, "max") == 0)
      sctl_ok ("nbdkit's cgroup %s has no memory limit", group);
    else
      sctl_problem ("lift the limit of nbdkit's cgroup (MemoryMax= and "
                    "MemoryHigh= of its unit)",
                    "nbdkit's cgroup %s is limited (%s): near it, the "
                    "kernel reclaims nbdkit's own memory", group, limit);
  }
  else
    sctl_ok ("nbdkit's cgroup has no memory controller to limit it");
  for (i = 0; v2 && i < 2; i++)
    if (sctl_cgroup_limit (slices[i], true, limit, sizeof limit))
      printf ("note: %s is %s\n", slices[i] + 1,
              strcmp (limit, "max") == 0 ? "not confined (MemoryMax= and "
              "MemoryHigh= unset)" : limit);
}

/* Each NBD device in /proc/swaps: its timeout and discard. */
static void
sctl_doctor_devices (void)
{
  FILE *f = fopen ("/proc/swaps", "r");
  char line[512];
  unsigned n = 0;

  while (f && fgets (line, sizeof line, f)) {
    char dev[256], file[512], v[64];
    unsigned long long ms, discard;

    if (sscanf (line, "/dev/%255s", dev) != 1 || strncmp (dev, "nbd", 3))
      continue;
    n++;
    snprintf (file, sizeof file, "/sys/block/%s/queue/io_timeout", dev);
    if (sctl_read_field (file, "", v, sizeof v)) {
      ms = strtoull (v, NULL, 10);
      sctl_ok ("/dev/%s swaps, with a request timeout of %llu s: a "
               "remote backend's grace= should be shorter, so that "
               "swaptier gives up on it before the kernel gives up on the "
               "device", dev, ms / 1000);
    }
    snprintf (file, sizeof file, "/sys/block/%s/queue/discard_max_bytes",
              dev);
    if (sctl_read_field (file, "", v, sizeof v) &&
        (discard = strtoull (v, NULL, 10)) > 0)
      sctl_ok ("/dev/%s takes discards (swapon --discard gives freed "
               "slots back)", dev);
    else
      sctl_problem ("attach it with a block size of 4096 (nbd-client "
                    "-block-size 4096) from a plugin that advertises "
                    "trim", "/dev/%s takes no discards", dev);
  }
  if (f)
    fclose (f);
  if (n == 0)
    sctl_problem ("attach the device and enable it: nbd-client -swap, "
                  "mkswap, swapon (swaptier-swap.service does)",
                  "no NBD device is in use as swap (/proc/swaps)");
}

unsigned
sctl_doctor (pid_t pid)
{
  sctl_problems = 0;
  sctl_doctor_memory (pid);
  sctl_doctor_cgroups (pid);
  sctl_doctor_devices ();
  printf ("%u problem%s\n", sctl_problems, sctl_problems == 1 ? "" : "s");
  return sctl_problems;
}
