#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Remote servers that answer late or not at all (issue 11), with real
# nbdkit servers on Unix sockets (slow-disk.sh: an sh plugin whose trims
# can be slow and whose reads can hang):
#   1. a trim that outlives timeout= is executed by the server after
#      swaptier gave up on it: its slot must not be reused meanwhile, so
#      the page written afterwards reads its own bytes once the late trim
#      has zeroed that slot (never zeroes); the slot is counted bad.
#   2. a trim while the server is unreachable (DOWN) is not sent and
#      leaves no slot bad.
#   3. a read whose server hangs on data reads but accepts connections
#      (each timeout reconnects fine) ends with EIO within about grace= +
#      timeout=, instead of being retried forever.
#   4. SIGTERM while a read waits on a stopped server (SIGSTOP) with
#      grace=600: nbdkit exits within a few seconds; the same while a
#      drain (swaptierctl remove) of that backend waits on it.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
swt_require truncate timeout
d=$swt_tmpdir
slow_disk=$(cd "$(dirname "$0")" && pwd)/slow-disk.sh
ctl_tool=$(dirname "$swt_plugin")/ctl/swaptierctl
[[ -x $ctl_tool ]] || swt_fail "swaptierctl not found: $ctl_tool"

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# Number of lines of the swaptier log with the fixed string $1.
log_count ()
{
    grep -c -F -- "$1" "$swt_log" || true
}

# Wait up to $2 seconds for a line with the fixed string $1 in the log.
log_wait ()
{
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (( $(log_count "$1") > 0 )) && return 0
        sleep 0.1
    done
    swt_fail "no line '$1' in $swt_log after $2 s"
}

# Run python code ($1) with the libnbd bindings, h connected to swaptier.
nbd_py ()
{
    URI=$swt_uri "$swt_python" -c "
import errno, os, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(os.environ['URI'])
$1"
}

# Start server NAME serving slow-disk.sh on a disk of $2 slots (header
# included) in $d/NAME/.
slow_start ()
{
    mkdir -p "$d/$1"
    truncate -s $(( $2 * 4096 )) "$d/$1/disk"
    SLOW_DIR=$d/$1 rmt_start "$1" sh "$slow_disk"
}

# =============================================================================
section "1: a trim executed by the server after timeout= never hits a newer page"
# Eight data slots on the remote (priority 10), pages 0..7 fill them;
# in clear (encrypt=off), since the test reads the remote's disk.
slow_start t1 9
swt_start encrypt=off backend="$(rmt_uri t1)" priority=10 timeout=1 \
          backend="$d/t0" capacity=4M priority=1 -v
nbd_py '
for p in range(8):
    h.pwrite(bytes([p + 1]) * 4096, p * 4096)
h.flush()'
"$swt_python" - "$d/t1/disk" <<'EOF'
import sys
disk = open(sys.argv[1], "rb").read()
for s in range(8):
    assert disk[(s + 1) * 4096:(s + 2) * 4096] == bytes([s + 1]) * 4096, \
        "page %d is not in slot %d of the remote" % (s, s)
print("ok: pages 0..7 fill the remote's 8 data slots")
EOF
# The trim of page 0 reaches the server, which takes 4 s over it: no
# reply within timeout=1.
echo 4 >"$d/t1/trim-delay"
nbd_py 'h.trim(4096, 0)'
rm -f "$d/t1/trim-delay"
log_wait "no reply within 1000 ms" 5
log_wait "reconnected" 10
# A new page, written and flushed while the old trim is still pending on
# the server.  If it took the trimmed slot, the late trim zeroes it.
nbd_py '
h.pwrite(b"N" * 4096, 100 * 4096)
h.flush()'
for ((i = 0; i < 100; i++)); do
    [[ -s $d/t1/trims.log ]] && break
    sleep 0.1
done
[[ -s $d/t1/trims.log ]] || swt_fail "the server never executed the late trim"
echo "the server executed the late trim: $(cat "$d/t1/trims.log")"
nbd_py '
buf = h.pread(4096, 100 * 4096)
assert buf != bytes(4096), "page 100 reads zeroes: the late trim hit it"
assert buf == b"N" * 4096, "page 100 reads other bytes: %r" % bytes(buf[:8])
for p in range(1, 8):
    assert h.pread(4096, p * 4096) == bytes([p + 1]) * 4096, "page %d" % p
assert h.pread(4096, 0) == bytes(4096), "trimmed page 0"
print("ok: page 100 and pages 1..7 read their data after the late trim")'
swt_stop
swt_show_counters
rmt_check_invariant5
(( $(swt_stat 0 bad) == 1 )) ||
    swt_fail "the remote has $(swt_stat 0 bad) bad slots, expected the trimmed one"
rmt_stop t1
rm -f "$d/t0"

# =============================================================================
section "2: a trim while the server is unreachable is not sent"
truncate -s 16M "$d/u1.img"
rmt_start u1 file "$d/u1.img"
swt_start backend="$(rmt_uri u1)" priority=10 \
          backend="$d/u0" capacity=4M priority=1 -v
nbd_py '
h.pwrite(b"u" * (32 * 4096), 0)
h.flush()'
rmt_kill u1
# A read of page 0 finds the server gone (DOWN) and waits for it.
nbd_py 'assert h.pread(4096, 0) == b"u" * 4096, "page 0"' &
reader=$!
log_wait "connection lost" 10
nbd_py 'h.trim(16 * 4096, 16 * 4096)'
rmt_start u1 file "$d/u1.img"
wait "$reader" || swt_fail "the read of page 0 failed across the restart"
nbd_py '
assert h.pread(16 * 4096, 16 * 4096) == bytes(16 * 4096), "trimmed pages"
assert h.pread(16 * 4096, 0) == b"u" * (16 * 4096), "pages 0..15"'
swt_stop
swt_show_counters
rmt_check_invariant5
(( $(swt_stat 0 bad) == 0 )) ||
    swt_fail "$(swt_stat 0 bad) slots bad after trims that were never sent"
(( $(swt_stat 0 used) == 16 )) ||
    swt_fail "the remote holds $(swt_stat 0 used) pages, expected 16"
echo "ok: the trims while DOWN freed their slots, none is bad"
rmt_stop u1
rm -f "$d/u0" "$d/u1.img"

# =============================================================================
section "3: a read that keeps timing out ends within grace= + timeout="
slow_start r1 257
swt_start backend="$(rmt_uri r1)" priority=10 timeout=1 grace=3 \
          backend="$d/r0" capacity=4M priority=1 -v
nbd_py '
h.pwrite(b"r" * 4096, 0)
h.pwrite(b"s" * 4096, 4096)
h.flush()'
touch "$d/r1/read-hang"
start=$SECONDS
rc=0
timeout 30 "$swt_python" -c '
import errno, os, sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 0)
except nbd.Error as e:
    assert e.errno in ("EIO", errno.EIO), e
    print("ok: the read failed with EIO")
    sys.exit(0)
sys.exit("the read of a page on a hung server returned data")' "$swt_uri" ||
    rc=$?
took=$(( SECONDS - start ))
rm -f "$d/r1/read-hang"
(( rc != 124 )) || swt_fail "the read was still waiting after 30 s"
(( rc == 0 )) || swt_fail "the read did not fail with EIO (status $rc)"
(( took <= 9 )) || swt_fail "the read took $took s, grace=3 + timeout=1"
echo "ok: the read ended after $took s"
(( $(log_count "reconnected") > 0 )) ||
    swt_fail "no reconnection: the case of a server that accepts connections was not tested"
swt_stop
swt_show_counters
rmt_check_invariant5
rmt_stop r1
rm -f "$d/r0"

# =============================================================================
section "4: SIGTERM while requests wait on a stopped server (grace=600)"
# Stop swaptier with SIGTERM; fail unless it exits with status 0 within
# $1 seconds.
term_within ()
{
    local start=$SECONDS rc=0
    kill -TERM "$swt_pid"
    if ! swt_wait_gone "$swt_pid" "$1"; then
        swt_fail "nbdkit did not exit within $1 s of SIGTERM"
    fi
    wait "$swt_pid" || rc=$?
    swt_pid=
    (( rc == 0 )) || swt_fail "nbdkit exited with status $rc"
    echo "ok: nbdkit exited $(( SECONDS - start )) s after SIGTERM"
}

rmt_start s1 memory 16M
swt_start backend="$(rmt_uri s1)" priority=10 grace=600 \
          backend="$d/s0" capacity=8M priority=1
nbd_py 'h.pwrite(b"s" * (16 * 4096), 0)'
kill -STOP "${rmt_pid[s1]}"
nbd_py 'h.pread(4096, 0)' 2>/dev/null &
reader=$!
sleep 1
kill -0 "$reader" 2>/dev/null || swt_fail "the read did not wait for the stopped server"
term_within 5
wait "$reader" 2>/dev/null || true
kill -CONT "${rmt_pid[s1]}"
rmt_stop s1

rmt_start s2 memory 16M
swt_start backend="$(rmt_uri s2)" priority=10 grace=600 \
          backend="$d/s0" capacity=8M priority=1 control="$d/ctl.sock"
nbd_py 'h.pwrite(b"s" * (16 * 4096), 0)'
kill -STOP "${rmt_pid[s2]}"
"$ctl_tool" -s "$d/ctl.sock" remove --force 0
sleep 1
"$ctl_tool" -s "$d/ctl.sock" list | grep -q draining ||
    swt_fail "the backend of the stopped server is not draining"
term_within 5
kill -CONT "${rmt_pid[s2]}"
rmt_stop s2
rm -f "$d/s0"
echo "PASS"
