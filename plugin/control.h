/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the control socket (control=PATH) that swaptierctl talks to.
 *
 * One thread serves every client of a Unix socket of mode 0600: it reads
 * command lines, runs them and writes the replies (lib/ctlproto.h has the
 * protocol).  It never takes the range lock, and the tier set's locks it
 * takes are held briefly: a new backend is opened before it is added, and
 * a removal drains in a thread of its own (lib/drain.h).  A client that
 * sends a line longer than CTL_LINE_MAX or completes no line for
 * CONTROL_IDLE_MS is disconnected, which also ends one that does not read
 * its replies: its lines wait while more than CONTROL_OUT_MAX bytes of
 * them are pending.  At most CONTROL_CLIENTS are served at once.  The
 * thread also samples the I/O counters every CONTROL_TICK_MS, for the
 * rates of "stats".
 */

#ifndef SWAPTIER_CONTROL_H
#define SWAPTIER_CONTROL_H

#include <stdint.h>

#include "engine.h"
#include "demote.h"
#include "repair.h"
#include "tierset.h"

#define CONTROL_CLIENTS 8
#define CONTROL_IDLE_MS 5000
#define CONTROL_OUT_MAX (256 * 1024)
#define CONTROL_TICK_MS 1000

/* Create the socket at path (replacing a socket that no server listens
 * on any more), so that a bad path fails at start.  Returns 0, or -1
 * after nbdkit_error.
 */
extern int control_open (const char *path);

/* Start serving the socket opened by control_open, for the engine e
 * exporting npages pages over ts, with spare slots kept free (the
 * reserve) that a removal must leave, the repairer of copies (NULL
 * for none) and the demoter.  Returns 0, or -1 after nbdkit_error.
 */
extern int control_start (struct engine *e, struct tierset *ts,
                          uint64_t npages, uint64_t spare,
                          struct repair *repair, struct demote *demote);

/* An NBD client connected (nbdkit's open) or went (close): the stop
 * command is refused while one is connected.  Any thread.
 */
extern void control_nbd_opened (void);
extern void control_nbd_closed (void);

/* Stop serving, stop a drain under way (its backend goes back into
 * service), close the socket and remove it.  Does nothing if
 * control_open did not succeed, or if it was called already.
 */
extern void control_close (void);

#endif /* SWAPTIER_CONTROL_H */
