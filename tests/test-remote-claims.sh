#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Exclusive claims of remote exports (issue 11), through the header in
# slot 0 of each export, with real nbdkit memory servers:
#   A. the same URI twice in one configuration is refused, naming both.
#   B. the same export under two spellings (a symlink to its socket) is
#      refused too.
#   C. swaptierctl add of an export that a backend of the instance uses
#      is refused.
#   D. a second nbdkit instance on an export the first one uses is
#      refused while the first lives, saying who holds it (host, pid);
#      the first raises its heartbeat meanwhile.
#   E. after kill -9 of the first, a new instance takes the export at once
#      and works; a clean stop writes the header back released.
#   F. a claim of another host whose heartbeat does not move is taken
#      over after the watch (several seconds); one whose heartbeat moves
#      is refused.
#   G. an instance whose export is claimed by another one meanwhile fails
#      that backend (its pages read as EIO, never another's bytes) and
#      writes elsewhere.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
d=$swt_tmpdir
ctl_tool=$(dirname "$swt_plugin")/ctl/swaptierctl
[[ -x $ctl_tool ]] || swt_fail "swaptierctl not found: $ctl_tool"

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# Run python code ($2, arguments $3...) with h connected to URI $1, and
# the helpers that read and write swaptier's header in slot 0 (see
# lib/header.h).
py_on ()
{
    URI=$1 "$swt_python" -c "
import os, struct, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(os.environ['URI'])
MAGIC = b'swaptier backend header v1\n'

def header():
    p = bytes(h.pread(4096, 0))
    assert p[:len(MAGIC)] == MAGIC, 'slot 0 holds no header'
    beat, start, pid, flags = struct.unpack_from('<QQII', p, 64)
    host = p[96:160].split(b'\0')[0].decode()
    return dict(heartbeat=beat, pid=pid, flags=flags, host=host,
                target=p[256:].split(b'\0')[0].decode())

def foreign(beat):
    p = bytearray(4096)
    p[:len(MAGIC)] = MAGIC
    p[32:64] = os.urandom(16) + b'T' * 16
    struct.pack_into('<QQII', p, 64, beat, 1234, 4321, 0)
    p[96:96 + 9] = b'elsewhere'
    p[160:160 + 10] = b'other-boot'
    p[256:256 + 5] = b'nbd:x'
    return bytes(p)
$2" "${@:3}"
}

# Wait up to $2 seconds for a line with the fixed string $1 in the log.
log_wait ()
{
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        grep -q -F -- "$1" "$swt_log" && return 0
        sleep 0.1
    done
    swt_fail "no line '$1' in $swt_log after $2 s"
}

rmt_start m1 memory 16M
uri=$(rmt_uri m1)
ln -s "$d/m1.sock" "$d/alias.sock"
alias_uri="nbd+unix:///?socket=$d/alias.sock"

# =============================================================================
section "A, B: one export twice in one configuration"
swt_expect_error "$uri: the same export as backend $uri" \
    backend="$uri" backend="$uri"
swt_expect_error "$alias_uri: the same export as backend $uri" \
    backend="$uri" backend="$alias_uri"
swt_expect_error "$alias_uri: the same export as backend $uri" \
    backend="$d/l0" capacity=4M backend="$uri" backend="$alias_uri"
rm -f "$d/l0"

# =============================================================================
section "C, D: swaptierctl add, and a second instance, while one uses it"
swt_start backend="$uri" backend="$d/l0" capacity=8M control="$d/ctl.sock"
first_pid=$swt_pid
rc=0
"$ctl_tool" -s "$d/ctl.sock" add "$alias_uri" 2>"$d/add.err" || rc=$?
cat "$d/add.err"
(( rc != 0 )) || swt_fail "swaptierctl add of an export in use was accepted"
grep -q -F "the same export as backend $uri" "$d/add.err" ||
    swt_fail "swaptierctl add: no 'same export' error"
(( $("$ctl_tool" -s "$d/ctl.sock" list --json | "$swt_python" -c '
import json, sys
print(len(json.load(sys.stdin)["backends"]))') == 2 )) ||
    swt_fail "the refused backend was added anyway"
echo "ok: swaptierctl add of the export in use is refused"

swt_expect_error "in use by another swaptier on this host ($(hostname), pid $first_pid" \
    backend="$alias_uri"
py_on "$uri" '
a = header()
assert a["pid"] == int(sys.argv[1]), "header pid %d" % a["pid"]
assert a["flags"] == 0, "a claim in use is released"
time.sleep(4.5)
b = header()
assert b["heartbeat"] >= a["heartbeat"] + 2, "heartbeat %d -> %d" % (
    a["heartbeat"], b["heartbeat"])
print("ok: the heartbeat moved from %d to %d" % (a["heartbeat"], b["heartbeat"]))
' "$first_pid"
py_on "$swt_uri" 'h.pwrite(b"1" * (64 * 4096), 0)'

# =============================================================================
section "E: kill -9, a prompt restart, a clean stop"
kill -KILL "$first_pid"
wait "$first_pid" 2>/dev/null || true
swt_pid=
start=$SECONDS
swt_start backend="$uri" backend="$d/l0" capacity=8M
(( SECONDS - start <= 3 )) ||
    swt_fail "the restart after kill -9 took $(( SECONDS - start )) s"
py_on "$swt_uri" '
data = os.urandom(64 * 4096)
h.pwrite(data, 0)
assert h.pread(len(data), 0) == data
print("ok: the new instance took the export at once and works")'
swt_stop
py_on "$uri" '
assert header()["flags"] & 1, "the header is not released after a clean stop"
print("ok: released after a clean stop")'

# =============================================================================
section "F: a claim of another host"
py_on "$uri" 'h.pwrite(foreign(7), 0)'
start=$SECONDS
swt_start backend="$uri" backend="$d/l0" capacity=8M -v
took=$(( SECONDS - start ))
(( took >= 5 )) || swt_fail "a foreign claim was taken after $took s, no watch"
grep -F "taking over the claim of host elsewhere" "$swt_log" ||
    swt_fail "no 'taking over' in the log"
py_on "$swt_uri" 'h.pwrite(b"f" * 4096, 0); assert h.pread(4096, 0) == b"f" * 4096'
swt_stop
echo "ok: a still foreign claim was taken over after $took s"

# A live foreign claim: its heartbeat moves (a writer raises it while
# $d/beating exists).
touch "$d/beating"
py_on "$uri" '
beat = 1
while os.path.exists(sys.argv[1]):
    h.pwrite(foreign(beat), 0)
    beat += 1
    time.sleep(0.5)' "$d/beating" &
writer=$!
sleep 0.5
swt_expect_error "$uri: the export is in use by swaptier on host elsewhere" \
    backend="$uri"
rm -f "$d/beating"
wait "$writer" || swt_fail "the heartbeat writer failed"

# =============================================================================
section "G: the claim is taken by another instance while in use"
py_on "$uri" 'h.pwrite(bytes(4096), 0)'
swt_start backend="$uri" priority=10 backend="$d/l0" capacity=8M priority=1
py_on "$swt_uri" 'h.pwrite(b"g" * (16 * 4096), 0); h.flush()'
py_on "$uri" '
h.pwrite(foreign(1), 0)
h.pwrite(b"X" * 4096, 4096)'
log_wait "claimed by another instance" 10
grep -F "claimed by another instance" "$swt_log"
py_on "$swt_uri" '
import errno
for p in range(16):
    try:
        buf = h.pread(4096, p * 4096)
    except nbd.Error as e:
        assert e.errno in ("EIO", errno.EIO), e
        continue
    raise AssertionError("page %d read %r from a lost claim" % (p, bytes(buf[:4])))
h.pwrite(b"n" * 4096, 100 * 4096)
assert h.pread(4096, 100 * 4096) == b"n" * 4096
print("ok: the pages on the lost export read EIO, new writes go elsewhere")'
swt_stop
swt_show_counters
rmt_check_invariant5
(( $(swt_stat 0 used) == 0 )) || swt_fail "the lost export still holds pages"
(( $(swt_stat 1 used) == 1 )) || swt_fail "the local backend holds $(swt_stat 1 used) pages"
py_on "$uri" '
assert header()["host"] == "elsewhere", "the failed backend wrote over the new claim"
print("ok: the new claim was left alone at exit")'
rmt_stop m1
echo "PASS"
