/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the control server's state, shared by its two files.
 *
 * control.c runs the socket: clients, their lines and replies, the
 * thread, and the jobs that run a slow command (add) in a thread of its
 * own so that the others are served meanwhile.  control-commands.c runs
 * each command and writes its reply.  Everything here is used by the
 * control thread only, unless its comment says otherwise.
 */

#ifndef SWAPTIER_CONTROL_INTERNAL_H
#define SWAPTIER_CONTROL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "control.h"
#include "ctlproto.h"
#include "drain.h"
#include "demote.h"
#include "repair.h"
#include "engine.h"
#include "tierset.h"

struct control_job;

/* One connected client.  While replies wait to be sent, its further
 * lines wait too.
 */
struct control_client {
  int fd;                              /* -1: slot free */
  size_t len;                          /* bytes of lines in buf */
  int64_t deadline;                    /* ms: dropped without a line by then */
  char *out;                           /* replies not sent yet */
  size_t out_len;
  struct control_job *job;             /* a command running in a thread of
                                          its own: its lines wait */
  uid_t uid;                           /* who connected (SO_PEERCRED) */
  pid_t pid;
  char buf[CTL_LINE_MAX];
};

/* I/O counters of one backend at one moment. */
struct control_sample {
  int64_t ms;                          /* 0: none yet */
  uint64_t reads, writes, read_slots, write_slots;
};

/* The state of the control server, one per process. */
struct control_state {
  bool open;
  char *path;
  pid_t pid;                           /* process that serves the socket */
  int listen_fd;
  int wake[2];                         /* control_close -> thread */
  int done[2];                         /* a job -> thread: it finished */
  pthread_mutex_t add_lock;            /* one add at a time */
  bool running;
  pthread_t thread;

  struct engine *e;
  struct repair *repair;               /* NULL with copies=1 */
  struct demote *demote;
  struct tierset *ts;
  uint64_t npages;
  uint64_t spare;                      /* slots kept free: the reserve */
  struct drain *drain;                 /* the last removal, NULL if none */
  unsigned nbd_clients;                /* connected: any thread, atomic */
  bool stop_asked;                     /* stop accepted: shut down once
                                          its reply is sent */

  /* Used by the thread only. */
  struct control_client client[CONTROL_CLIENTS];
  struct ctl_command cmd;
  char why[512];                       /* last error of a library call */
  int64_t next_tick;
  struct control_sample prev[TIERSET_MAX_IDS], cur[TIERSET_MAX_IDS];
};

extern struct control_state control;

/* Write the status line "error MESSAGE", with the message made one line
 * of printable characters.
 */
extern void control_error (FILE *out, const char *message);

/* Take a sample of every backend's counters, keeping the one before. */
extern void control_sample (int64_t now);

/* Run cmd and write its reply to out; why is the buffer that the
 * calling thread's errors are captured into (log_capture).  The control
 * thread runs every command but add and revive; a job's thread runs
 * those (adds run one at a time).
 */
extern void control_run (FILE *out, const struct ctl_command *cmd,
                         const char *why);

#endif /* SWAPTIER_CONTROL_INTERNAL_H */
