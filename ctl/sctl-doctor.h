/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptierctl doctor: what swapping on this host through the plugin
 * needs, checked on the running server (its pid comes from the control
 * socket, SO_PEERCRED) and on the host, one line each:
 *
 *   ok: ...                 what is as it should be
 *   problem: ... fix: ...   what to change, and how
 *
 * The checks: the server's memory is locked (VmLck; mlock=on with
 * CAP_IPC_LOCK or a memlock limit that fits); it holds CAP_SYS_RESOURCE
 * (PR_SET_IO_FLUSHER); its cgroup has no memory limit (memory.max,
 * memory.high, or cgroup v1's memory.limit_in_bytes); whether
 * user.slice and system.slice are confined (said, not judged); and each
 * NBD device in /proc/swaps: its request timeout (io_timeout) and
 * whether it takes discards.  No NBD device swapping is a problem.
 */

#ifndef SWAPTIER_SCTL_DOCTOR_H
#define SWAPTIER_SCTL_DOCTOR_H

#include <sys/types.h>

/* Run the checks on server process pid and the host; returns the
 * number of problems found.
 */
extern unsigned sctl_doctor (pid_t pid);

#endif /* SWAPTIER_SCTL_DOCTOR_H */
