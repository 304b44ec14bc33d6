/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: what a local backend holds already, before swaptier uses it.
 *
 * swapon refuses to swap over a device that holds a file system; so does
 * swaptier.  signature_probe runs libblkid's low-level probe (the
 * superblocks and partitions chains, as wipefs does) over an open file or
 * block device and describes every signature it finds: file systems,
 * swap areas, RAID and volume manager members, encrypted volumes and
 * partition tables.  It reads only; nothing is written.
 */

#ifndef SWAPTIER_SIGNATURE_H
#define SWAPTIER_SIGNATURE_H

#include <stddef.h>

/* Probe the file or block device open at fd (target names it in
 * messages).  Returns 1 with a description of what was found in found
 * (len bytes, e.g. "ext4 file system" or "swap signature, dos partition
 * table"), 0 if it holds no signature, or -1 after log_error if it could
 * not be probed.  fd may be opened with O_DIRECT; its offset and status
 * flags are the same on return.
 */
extern int signature_probe (int fd, const char *target, char *found,
                            size_t len);

#endif /* SWAPTIER_SIGNATURE_H */
