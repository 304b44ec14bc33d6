/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: signatures of a local backend, by libblkid (see signature.h).
 *
 * blkid_do_probe returns one result per call, walking every probing
 * function of the enabled chains; each result is described in turn and
 * appended to the caller's buffer, separated by ", ".
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <blkid.h>

#include "log.h"
#include "signature.h"

/* Append one description of the current result of pr to found (len
 * bytes, NUL-terminated, possibly empty).  Returns false if the result
 * names nothing.
 */
static bool
signature_describe (blkid_probe pr, char *found, size_t len)
{
  const char *type = NULL, *usage = NULL, *pttype = NULL;
  size_t used = strlen (found);
  const char *sep = used ? ", " : "";

  blkid_probe_lookup_value (pr, "TYPE", &type, NULL);
  blkid_probe_lookup_value (pr, "USAGE", &usage, NULL);
  blkid_probe_lookup_value (pr, "PTTYPE", &pttype, NULL);
  if (used >= len - 1)
    return true;
  if (type && strcmp (type, "swap") == 0)
    snprintf (found + used, len - used, "%sswap signature", sep);
  else if (type && usage && strcmp (usage, "filesystem") == 0)
    snprintf (found + used, len - used, "%s%s file system", sep, type);
  else if (type)
    snprintf (found + used, len - used, "%s%s signature", sep, type);
  else if (pttype)
    snprintf (found + used, len - used, "%s%s partition table", sep, pttype);
  else
    return false;
  return true;
}

/* Run the probe over fd, which reads without O_DIRECT (libblkid's
 * buffers are not aligned for it).
 */
static int
signature_run (int fd, const char *target, char *found, size_t len)
{
  blkid_probe pr = blkid_new_probe ();
  int r, any = 0;

  if (pr == NULL) {
    log_error ("%s: cannot create a libblkid probe: %m", target);
    return -1;
  }
  found[0] = '\0';
  if (blkid_probe_set_device (pr, fd, 0, 0) != 0) {
    log_error ("%s: libblkid cannot probe it: %m", target);
    blkid_free_probe (pr);
    return -1;
  }
  blkid_probe_enable_superblocks (pr, 1);
  blkid_probe_set_superblocks_flags (pr, BLKID_SUBLKS_TYPE |
                                     BLKID_SUBLKS_USAGE);
  blkid_probe_enable_partitions (pr, 1);
  blkid_probe_set_partitions_flags (pr, BLKID_PARTS_MAGIC);
  while ((r = blkid_do_probe (pr)) == 0)
    if (signature_describe (pr, found, len))
      any = 1;
  blkid_free_probe (pr);
  if (r < 0) {
    log_error ("%s: libblkid probe failed: %m", target);
    return -1;
  }
  return any;
}

int
signature_probe (int fd, const char *target, char *found, size_t len)
{
  int flags = fcntl (fd, F_GETFL);
  off_t offset = lseek (fd, 0, SEEK_CUR);
  int r;

  if (flags == -1 || offset == -1) {
    log_error ("%s: fcntl: %m", target);
    return -1;
  }
  if ((flags & O_DIRECT) && fcntl (fd, F_SETFL, flags & ~O_DIRECT) == -1) {
    log_error ("%s: clearing O_DIRECT to probe it: %m", target);
    return -1;
  }
  r = signature_run (fd, target, found, len);
  if ((flags & O_DIRECT) && fcntl (fd, F_SETFL, flags) == -1) {
    log_error ("%s: setting O_DIRECT again after probing it: %m", target);
    r = -1;
  }
  if (lseek (fd, offset, SEEK_SET) == -1) {
    log_error ("%s: lseek: %m", target);
    r = -1;
  }
  return r;
}
