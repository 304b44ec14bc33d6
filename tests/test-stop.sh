#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Stopping safely (issue 15): swaptierctl stop, which swaptier.service
# runs as its ExecStop, against a real nbdkit swaptier.
#
#   1. While an NBD client is connected (as the kernel is while it
#      swaps on the device), stop is refused with exit 1, saying why,
#      after waiting for the client to go; the server goes on, and the
#      client's pages read back; the refusal is in the audit trail.
#   2. swaptier.service's ExecStartPre, run on a directory of its own,
#      refuses to start beside that running server, also while its
#      control socket is full (8 clients connected: swaptierctl list
#      fails, but not with "no server", 3), and leaves its files.
#   3. A client that disconnects with a read still in flight (a remote
#      that answers in 2 s) is counted out only when the read is done:
#      stop, sent at once, waits for that and is accepted; it returns
#      only after nbdkit has exited (its last messages, written at
#      unload, are in its log by then), with exit 0.
#   4. With no server on the socket: list exits with 3, stop with 0
#      (nothing to stop); ExecStartPre then clears the stale NBD socket
#      and pid file that a stopped server left, so that nbdkit can
#      listen again.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
rmt_setup
swt_require_python_nbd
d=$swt_tmpdir
mkdir "$d/run"
ctl_sock=$d/run/control.sock

# The unit's ExecStartPre, for $d/run instead of /run/swaptier and with
# the swaptierctl built here.
pre=$(sed -n 's/^ExecStartPre=//p' "$top_builddir/config/swaptier.service" |
      sed -e "s|/run/swaptier|$d/run|g" -e "s|[^ '=]*/bin/swaptierctl|$ctl_tool|g")
[[ $pre == "sh -c '"* ]] || swt_fail "swaptier.service's ExecStartPre: $pre"
run_pre ()
{
    pre_code=0
    eval "$pre" >"$d/pre.out" 2>&1 || pre_code=$?
    echo "ExecStartPre: exit $pre_code: $(cat "$d/pre.out")"
}

# The NBD clients, as the status line of list counts them.
clients ()
{
    "$swt_python" - "$ctl_sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"list\n")
buf = b""
while not any(l.startswith(b"ok") for l in buf.split(b"\n")):
    buf += s.recv(65536)
status = next(l for l in buf.split(b"\n") if l.startswith(b"ok"))
print(dict(w.split(b"=", 1) for w in status.split()[1:])[b"clients"].decode())
PY
}

# The backend answers every read in 2 s.
rmt_start slow --filter=delay memory 64M rdelay=2
swt_start backend="$(rmt_uri slow)" control="$ctl_sock"
pid=$swt_pid

# --- 1 ----------------------------------------------------------------------
# A client holds its connection until $d/go exists.
mkfifo "$d/go"
"$swt_python" - "$swt_uri" "$d/go" <<'PY' &
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
data = os.urandom(4 * 4096)
h.pwrite(data, 0)
h.flush()
print("client: 4 pages written; waiting", flush=True)
open(sys.argv[2]).read()
assert h.pread(4 * 4096, 0) == data, "the pages after a refused stop"
h.shutdown()
print("client: its pages read back after the refused stop", flush=True)
PY
client=$!
ctl_wait_for '[[ $(ctl_get 0 writes) -gt 0 ]]' 10 "the client did not write"
[[ $(clients) == 1 ]] || swt_fail "list counts $(clients) NBD clients, not 1"
rc=0
ctl stop >"$d/stop.out" 2>&1 || rc=$?
echo "stop with a client: exit $rc: $(cat "$d/stop.out")"
(( rc == 1 )) || swt_fail "stop with a client connected: exit $rc, not 1"
grep -qF "1 NBD client is still connected: the device may still be swapped on" \
    "$d/stop.out" || swt_fail "the refused stop does not say why"
sleep 0.5
kill -0 "$pid" 2>/dev/null || swt_fail "nbdkit stopped with a client connected"
grep -q "control: uid [0-9]* pid [0-9]*: stop: error 1 NBD client" "$swt_log" ||
    swt_fail "the refused stop is not in the audit trail"

# --- 2 ----------------------------------------------------------------------
run_pre
(( pre_code == 1 )) && grep -q "a swaptier server may still run" "$d/pre.out" ||
    swt_fail "ExecStartPre beside a running server"
# Eight idle control clients fill the socket: list fails (1), and the
# files of the running server stay.
"$swt_python" - "$ctl_sock" "$d/hold" <<'PY' &
import os, socket, sys, time
conns = []
for _ in range(8):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
open(sys.argv[2], "w").close()
time.sleep(3)
PY
holder=$!
ctl_wait_for '[[ -e $d/hold ]]' 10 "the control clients did not connect"
sleep 0.3
run_pre
(( pre_code == 1 )) || swt_fail "ExecStartPre with the control socket full: exit $pre_code"
[[ -S $d/run/nbd.sock || -S $swt_sock ]] || swt_fail "ExecStartPre removed the socket"
wait "$holder" || true

echo go >"$d/go"
wait "$client" || swt_fail "the client failed after the refused stop"

# --- 3 ----------------------------------------------------------------------
# A read in flight (2 s) when the client disconnects (NBD_CMD_DISC, as
# nbd-client -d sends), and stop at once.
"$swt_python" - "$swt_uri" <<'PY'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
buf = nbd.Buffer(4096)
h.aio_pread(buf, 0)
h.poll(0)
h.aio_disconnect()
del h
PY
[[ $(clients) == 1 ]] || swt_fail "the client that just went is not counted: $(clients)"
rc=0
ctl stop >"$d/stop.out" 2>&1 || rc=$?
echo "stop: exit $rc: $(cat "$d/stop.out")"
(( rc == 0 )) || swt_fail "stop without a client: exit $rc"
[[ $(cat "$d/stop.out") == "swaptier server stopped (pid $pid)" ]] ||
    swt_fail "stop said: $(cat "$d/stop.out")"
# It returned once nbdkit had exited: the plugin's unload had written its
# counters, and the process is no more (a zombie until reaped here).
grep -q "^swaptier: backend 0 " "$swt_log" ||
    swt_fail "stop returned before the plugin was unloaded"
state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
[[ -z $state || $state == Z ]] || swt_fail "nbdkit is still running ($state)"
rc=0
wait "$pid" || rc=$?
swt_pid=
(( rc == 0 )) || swt_fail "nbdkit exited with status $rc after stop"
grep -q "control: uid [0-9]* pid [0-9]*: stop: ok" "$swt_log" ||
    swt_fail "the stop is not in the audit trail"

# --- 4 ----------------------------------------------------------------------
rc=0
ctl list >/dev/null 2>&1 || rc=$?
(( rc == 3 )) || swt_fail "list with no server: exit $rc, not 3"
rc=0
ctl stop >"$d/stop.out" 2>&1 || rc=$?
(( rc == 0 )) && grep -q "nothing to stop" "$d/stop.out" ||
    swt_fail "stop with no server: exit $rc: $(cat "$d/stop.out")"
"$swt_python" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
    "$d/run/nbd.sock"
echo 12345 >"$d/run/nbdkit.pid"
run_pre
(( pre_code == 0 )) || swt_fail "ExecStartPre after a stopped server"
[[ ! -e $d/run/nbd.sock && ! -e $d/run/nbdkit.pid ]] ||
    swt_fail "ExecStartPre left the stale socket or pid file"
nbdkit -f --exit-with-parent -U "$d/run/nbd.sock" -P "$d/run/nbdkit.pid" \
    "$swt_plugin" backend="$d/a" capacity=16M control="$ctl_sock" 2>"$d/again.log" &
again=$!
ctl_wait_for '[[ -s $d/run/nbdkit.pid ]]' 10 "nbdkit did not start again on the cleared directory"
ctl stop >/dev/null || swt_fail "stopping the second server"
wait "$again" || swt_fail "the second server exited with an error"
echo "ok: stop refused with a client, done without; ExecStartPre guards and clears"
