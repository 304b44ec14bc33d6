#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Remote backends (NBD servers reached through libnbd, Unix sockets only):
#   A. fio verify=crc32c over one local file and two remote memory servers
#      of equal priority: no verify error, every backend gets writes, one
#      slot per page written, the remote sizes are probed (less the header
#      slot).
#   B. a remote server (nbdkit file, so its data survives) is killed and
#      restarted in the middle of the write phase of a fio verify run: no
#      verify error, the log says "connection lost" then "reconnected",
#      the backend takes writes again after it and is not failed.  Then it
#      is killed while idle and a full read of the device is started: the
#      reads of its pages wait for it (the copy is still running a second
#      later), and once it is back the copy completes identical to one
#      made before the kill.
#   C. a remote server (grace=2) is killed and never comes back: the log
#      says it is failed, a second fio verify run passes and not one write
#      is sent to that backend during it; the pages it held read as EIO,
#      never as zeroes.
#   D. a remote memory server restarted empty: slot 0 holds no header (claim),
#      so the backend is failed at once; each page that was on it reads as
#      EIO (again and again), never zeroes; an unwritten page still reads
#      zeroes; a rewritten page reads its new data; a trimmed one zeroes.
#   E. configurations that must be refused: unreachable servers (missing
#      socket, stale socket, a server that never answers), unparsable URIs,
#      capacity= on a remote backend, connections=/timeout=/grace= out of
#      range or on a local file, a read-only or too small export.
#   F. trim reaches the remote server: its allocation (nbdinfo --map on the
#      server's own socket) shrinks when pages on it are trimmed.
#   G. a server that hangs (SIGSTOP) for longer than timeout=: a read of a
#      page on it waits and gets its data once the server resumes; writes
#      meanwhile go to another backend at once.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
swt_require nbdinfo nbdcopy cmp truncate
d=$swt_tmpdir

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# --- Log and fio helpers -----------------------------------------------------

# Number of lines of the swaptier log containing the fixed string $1
# (after line $2 if given).
log_count ()
{
    tail -n +$(( ${2:-0} + 1 )) "$swt_log" | grep -c -F -- "$1" || true
}

# Wait up to $3 seconds until the swaptier log holds $2 lines with the
# fixed string $1.
log_wait ()
{
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        (( $(log_count "$1") >= $2 )) && return 0
        sleep 0.1
    done
    swt_fail "no $2 lines '$1' in $swt_log after $3 s"
}

# Line number of the first line of the swaptier log with fixed string $1.
log_line ()
{
    local n
    n=$(grep -n -F -m1 -- "$1" "$swt_log" | cut -d: -f1)
    [[ -n $n ]] || swt_fail "no line '$1' in $swt_log"
    echo "$n"
}

# fio_verify OUT MIN_BYTES fio-args...: a verify run that must pass.
fio_verify ()
{
    local out=$1 min=$2 rc=0
    shift 2
    rmt_fio_cmd "$out" "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$out" >&2 || true
        swt_fail "fio exited with status $rc (verify error?): $*"
    fi
    rmt_fio_check "$out" "$min"
}

# Fail if the log says backend $1 was failed.
check_not_failed ()
{
    if grep -E "backend $1 [^ ]+: failed" "$swt_log"; then
        swt_fail "backend $1 was failed"
    fi
}

# =============================================================================
section "A: one local and two remote backends of equal priority"
rmt_start a1 memory 32M
rmt_start a2 memory 32M
swt_start backend="$d/a0" capacity=32M \
          backend="$(rmt_uri a1)" backend="$(rmt_uri a2)"
# 8191 slots on each backend (slot 0 holds the header), 512 spare.
size=$(nbdinfo --size "$swt_uri")
(( size == (3 * 8191 - 512) * 4096 )) ||
    swt_fail "export size $size, expected $(( (3 * 8191 - 512) * 4096 ))"
fio_verify "$d/fioA.json" $(( 48 << 20 )) \
    --name=rand --rw=randwrite --bs=4k --iodepth=32 --offset=0 --size=32M \
    --name=seq --rw=write --bs=1m --iodepth=4 --offset=32M --size=16M
swt_stop
swt_show_counters
swt_check_counters
total=0
for id in 0 1 2; do
    (( $(swt_stat $id writes) > 0 )) || swt_fail "backend $id received no writes"
    used=$(swt_stat $id used)
    # Round robin: each of three equal backends holds about a third.
    (( used * 100 >= 12288 * 25 && used * 100 <= 12288 * 42 )) ||
        swt_fail "backend $id holds $used of 12288 slots, not 25%..42%"
    total=$(( total + used ))
done
(( total == 12288 )) ||
    swt_fail "$total slots in use after writing 12288 pages once"
echo "ok: every backend received writes and holds a share of the pages"
rmt_kill a1
rmt_kill a2

# =============================================================================
section "B: a remote server killed and restarted during a fio verify run"
truncate -s 64M "$d/b2.img"
rmt_start b1 memory 64M
rmt_start b2 file "$d/b2.img"
# -D swaptier.io=1 logs every backend I/O: "write: backend 2 ...".
swt_start backend="$d/b0" capacity=32M \
          backend="$(rmt_uri b1)" backend="$(rmt_uri b2)" \
          -v -D swaptier.io=1
# 48 MiB of 4 KiB random writes at most 2400 per second: a write phase of
# at least 5 s, then the verify phase.
rmt_fio_cmd "$d/fioB.json" --name=restart --rw=randwrite --bs=4k --iodepth=32 \
    --size=48M --rate_iops=,2400 &
fio_pid=$!
# Kill b2 once it has taken some writes, start it again half a second
# later on the same file.
log_wait "write: backend 2 " 300 20
rmt_kill b2
echo "killed b2 after $(log_count "write: backend 2 ") writes to it"
sleep 0.5
rmt_start b2 file "$d/b2.img"
log_wait "reconnected" 1 20
kill -0 "$fio_pid" 2>/dev/null ||
    swt_fail "fio had finished before b2 was reconnected: not mid-run"
rc=0
wait "$fio_pid" || rc=$?
(( rc == 0 )) || { cat "$d/fioB.json" >&2; swt_fail "fio failed (status $rc)"; }
rmt_fio_check "$d/fioB.json" $(( 48 << 20 ))
(( $(log_count "connection lost") >= 1 )) || swt_fail "no 'connection lost' in the log"
# b2 takes new writes after the reconnection.
after=$(log_count "write: backend 2 " "$(log_line reconnected)")
(( after > 0 )) || swt_fail "no write went to b2 after it reconnected"
echo "ok: fio verify passed; $after writes went to b2 after it reconnected"

# Reads wait for a server that is down.  Kill b2 while idle, start a full
# copy of the device: the reads of b2's pages cannot complete, so the copy
# is still running a second later; start b2 again and the copy finishes
# with the same bytes as a copy made before.
nbdcopy "$swt_uri" "$d/before.img"
rmt_kill b2
nbdcopy "$swt_uri" "$d/after.img" &
copy_pid=$!
sleep 1
kill -0 "$copy_pid" 2>/dev/null ||
    swt_fail "the copy finished while b2 was down: reads did not wait"
rmt_start b2 file "$d/b2.img"
rc=0
wait "$copy_pid" || rc=$?
(( rc == 0 )) || swt_fail "nbdcopy failed (status $rc) across b2's restart"
cmp "$d/before.img" "$d/after.img" ||
    swt_fail "the device read across b2's restart differs from before"
rm -f "$d/before.img" "$d/after.img"
(( $(log_count "connection lost") >= 2 )) || swt_fail "second loss not logged"
(( $(log_count "reconnected") >= 2 )) || swt_fail "second reconnection not logged"
echo "ok: reads waited for b2 and returned the same data"
swt_stop
grep -F -e "connection lost" -e "reconnected" "$swt_log" | head -n 4
swt_show_counters
rmt_check_invariant5
check_not_failed 2
(( $(swt_stat 2 used) > 0 )) || swt_fail "b2 holds no pages after its restart"
if grep -F "is lost" "$swt_log"; then
    swt_fail "pages were lost across a restart of a server that kept its data"
fi
echo "ok: b2 still active, holding $(swt_stat 2 used) pages"
rmt_kill b1
rmt_kill b2
rm -f "$d/b2.img" "$d/b0"

# =============================================================================
section "C: a remote server that never comes back (grace=2)"
rmt_start c1 memory 64M
rmt_start c2 memory 64M
swt_start backend="$d/c0" capacity=32M \
          backend="$(rmt_uri c1)" backend="$(rmt_uri c2)" grace=2 \
          -v -D swaptier.io=1
fio_verify "$d/fioC1.json" $(( 8 << 20 )) --name=before --rw=randwrite \
    --bs=4k --iodepth=32 --offset=0 --size=8M
(( $(log_count "write: backend 2 ") > 0 )) || swt_fail "c2 got no writes"
rmt_kill c2
# The next writes make swaptier notice: 8 runs of 16 pages, allocated
# round robin over the three backends, so some are tried on c2 first.
# All of them must read back.
URI=$swt_uri "$swt_python" - <<'EOF'
import os
import nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
data = os.urandom(128 * 4096)
h.pwrite(data, 64 << 20)
assert h.pread(len(data), 64 << 20) == data, "the data written after the kill differs"
print("ok: 128 pages written and read back while c2 is gone")
EOF
log_wait "did not come back in time" 1 15
grep -F "did not come back in time" "$swt_log"
marker=$(wc -l < "$swt_log")
fio_verify "$d/fioC2.json" $(( 16 << 20 )) --name=after --rw=randwrite \
    --bs=4k --iodepth=32 --offset=32M --size=16M
late=$(log_count "write: backend 2 " "$marker")
(( late == 0 )) || swt_fail "$late writes went to the failed backend c2"
echo "ok: the second fio run passed and sent nothing to c2"
# The pages of the first run that were on c2 read as EIO; none reads as
# zeroes (fio's verify blocks are never all zero).
URI=$swt_uri "$swt_python" - <<'EOF'
import errno
import os
import nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
zero = bytes(4096)
lost = ok = 0
for page in range((8 << 20) // 4096):
    try:
        buf = h.pread(4096, page * 4096)
    except nbd.Error as e:
        assert e.errno in ("EIO", errno.EIO), "page %d: %s" % (page, e)
        lost += 1
        continue
    assert buf != zero, "page %d reads as zeroes" % page
    ok += 1
print("run 1 pages: %d readable, %d EIO" % (ok, lost))
assert lost > 0, "no page of the dead backend fails to read"
assert ok > 0, "no page of the live backends reads"
EOF
swt_stop
swt_show_counters
rmt_check_invariant5
(( $(swt_stat 2 writes) == $(log_count "write: backend 2 ") )) ||
    swt_fail "c2's writes counter $(swt_stat 2 writes) != its $(log_count "write: backend 2 ") logged writes"
(( $(swt_stat 2 errors) > 0 )) || swt_fail "no error counted on c2"
(( $(swt_stat 2 used) == 0 )) ||
    swt_fail "c2 still has $(swt_stat 2 used) slots in use after all its pages were lost"
rmt_kill c1
rm -f "$d/c0"

# =============================================================================
section "D: a remote memory server restarted empty (token check)"
rmt_start d1 memory 16M
swt_start backend="$(rmt_uri d1)" priority=10 backend="$d/d0" capacity=32M \
          priority=1
# Pages 0..31 go to d1, the highest priority, which has room.
URI=$swt_uri "$swt_python" - <<'EOF'
import os
import nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
for p in range(32):
    h.pwrite(bytes([p + 1]) * 4096, p * 4096)
for p in range(32):
    assert h.pread(4096, p * 4096) == bytes([p + 1]) * 4096
print("ok: 32 pages written to d1")
EOF
rmt_kill d1
rmt_start d1 memory 16M
URI=$swt_uri "$swt_python" - <<'EOF'
import errno
import os
import nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(os.environ["URI"])


def expect_eio(off, n, what):
    try:
        buf = h.pread(n, off)
    except nbd.Error as e:
        assert e.errno in ("EIO", errno.EIO), "%s: %s" % (what, e)
        return
    raise AssertionError("%s: read %d bytes (%r...) instead of EIO"
                         % (what, n, bytes(buf[:8])))


# The first read finds the connection gone, waits for the reconnection,
# whose token check fails: the backend is dead, the page lost.
expect_eio(5 * 4096, 4096, "page 5")
for attempt in range(3):
    expect_eio(5 * 4096, 4096, "page 5 again")
expect_eio(5 * 4096 + 100, 10, "10 bytes inside page 5")
for p in range(32):
    expect_eio(p * 4096, 4096, "page %d" % p)
    expect_eio(p * 4096, 4096, "page %d, second read" % p)
expect_eio(0, 32 * 4096, "pages 0..31 in one read")
print("ok: every page that was on d1 reads as EIO, repeatedly")
assert h.pread(4096, 100 * 4096) == bytes(4096), "unwritten page 100"
print("ok: an unwritten page still reads zeroes")
# A rewrite makes a lost page readable with the new data; so does a trim
# (zeroes); the others stay lost.
h.pwrite(b"N" * 4096, 5 * 4096)
assert h.pread(4096, 5 * 4096) == b"N" * 4096, "rewritten page 5"
h.trim(4096, 6 * 4096)
assert h.pread(4096, 6 * 4096) == bytes(4096), "trimmed page 6"
expect_eio(7 * 4096, 4096, "page 7 after the rewrite of page 5")
expect_eio(4 * 4096, 3 * 4096, "pages 4..6 (4 is lost)")
assert h.pread(2 * 4096, 5 * 4096) == b"N" * 4096 + bytes(4096)
print("ok: rewritten page reads its new data, trimmed page zeroes")
EOF
swt_stop
swt_show_counters
rmt_check_invariant5
grep -F "the server lost its data" "$swt_log" ||
    swt_fail "the token check did not fail d1"
grep -F "page 5 is lost" "$swt_log" >/dev/null ||
    swt_fail "no 'page 5 is lost' in the log"
(( $(swt_stat 0 bad) == 32 )) ||
    swt_fail "d1 has $(swt_stat 0 bad) bad slots, expected the 32 lost pages"
(( $(swt_stat 0 used) == 0 )) || swt_fail "d1 still has pages in use"
(( $(swt_stat 1 used) == 1 )) ||
    swt_fail "the local backend holds $(swt_stat 1 used) pages, expected the rewritten one"
rmt_kill d1
rm -f "$d/d0"

# =============================================================================
section "E: configurations that must be refused"
rmt_start e1 memory 16M
ok_uri=$(rmt_uri e1)
# Run a configuration that must be accepted.
cfg_ok ()
{
    # shellcheck disable=SC2016 # $uri is set by nbdkit for --run
    timeout 30 nbdkit -U - --run 'nbdinfo --size "$uri" >/dev/null' \
        "$swt_plugin" "$@" 2>"$d/ok.log" || {
        cat "$d/ok.log" >&2
        swt_fail "configuration refused, expected it to work: $*"
    }
}
cfg_ok backend="$ok_uri" connections=1 timeout=1 grace=1
cfg_ok backend="$ok_uri" connections=64 timeout=86400 grace=86400
echo "ok: the limits of connections=, timeout=, grace= are accepted"

# Unreachable servers.
swt_expect_error "nbd+unix:///?socket=/nonexistent.sock: cannot connect" \
    backend="nbd+unix:///?socket=/nonexistent.sock"
swt_expect_error "$d/none.sock: cannot connect" \
    backend="$d/l" capacity=8M backend="$(rmt_uri none)"
# A stale socket: its server was killed.
rmt_start e2 memory 16M
rmt_crash e2
[[ -S $d/e2.sock ]] || swt_fail "no stale socket left by the killed server"
swt_expect_error "cannot connect" backend="$(rmt_uri e2)"
grep -q "Connection refused" "$d/nbdkit.$swt_runs.log" ||
    swt_fail "no 'Connection refused' for a socket nobody listens on"
# A server that accepts the connection but never answers: refused within
# timeout= seconds.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
time.sleep(120)' "$d/mute.sock" &
mute_pid=$!
swt_on_exit "kill $mute_pid 2>/dev/null; wait $mute_pid 2>/dev/null"
for ((i = 0; i < 50; i++)); do [[ -S $d/mute.sock ]] && break; sleep 0.1; done
start=$SECONDS
swt_expect_error "cannot connect: no answer within 1000 ms" \
    backend="$(rmt_uri mute)" timeout=1
(( SECONDS - start < 10 )) || swt_fail "timeout=1 took $(( SECONDS - start )) s"
kill "$mute_pid"
{ wait "$mute_pid"; } 2>/dev/null || true

# URIs that libnbd cannot use.
swt_expect_error "cannot parse socket parameter" backend="nbd+unix:///"
swt_expect_error "cannot parse socket parameter" backend="nbd+unix://"
swt_expect_error "unknown NBD URI scheme" backend="nbdx://foo"
swt_expect_error "unable to parse URI" backend="nbd://[::1"
swt_expect_error "unable to parse URI" backend="nbd://host:notaport/"

# Keys that do not fit the backend.
swt_expect_error "capacity=8M: applies to local files only" \
    backend="$ok_uri" capacity=8M
swt_expect_error "connections=0: out of range (1 to 64)" \
    backend="$ok_uri" connections=0
swt_expect_error "connections=65: out of range (1 to 64)" \
    backend="$ok_uri" connections=65
swt_expect_error "timeout=0: out of range (1 to 86400)" \
    backend="$ok_uri" timeout=0
swt_expect_error "timeout=86401: out of range (1 to 86400)" \
    backend="$ok_uri" timeout=86401
swt_expect_error "grace=0: out of range (1 to 86400)" \
    backend="$ok_uri" grace=0
swt_expect_error "connections: " backend="$ok_uri" connections=many
swt_expect_error "grace=2: applies to remote backends (NBD URIs) only" \
    backend="$d/l" capacity=8M grace=2
swt_expect_error "timeout=5: applies to remote backends (NBD URIs) only" \
    backend="$d/l" capacity=8M timeout=5
swt_expect_error "connections=2: applies to remote backends (NBD URIs) only" \
    backend="$d/l" capacity=8M connections=2
swt_expect_error "grace= must follow the backend= it applies to" \
    grace=2 backend="$ok_uri"
# A key for the remote backend placed after a local one applies to the
# local one, and is refused.
swt_expect_error "grace=2: applies to remote backends (NBD URIs) only" \
    backend="$ok_uri" backend="$d/l" capacity=8M grace=2

# Exports that cannot be used.
rmt_start ro -r memory 16M
swt_expect_error "the export is read-only" backend="$(rmt_uri ro)"
rmt_start tiny memory 4096
swt_expect_error "is too small" backend="$(rmt_uri tiny)"
for n in e1 ro tiny; do rmt_kill "$n"; done
rm -f "$d/l"

# =============================================================================
section "F: trim reaches the remote server"
rmt_start f1 memory 16M
swt_start backend="$(rmt_uri f1)" priority=10 backend="$d/f0" capacity=32M \
          priority=1
# Bytes the server reports as allocated (not holes) in its own export.
remote_data ()
{
    nbdinfo --map --json "$(rmt_uri f1)" | python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if not e["type"] & 1))'
}
before=$(remote_data)
echo "f1 allocated at start: $before bytes"
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(os.urandom(1 << 20), 0)'
written=$(remote_data)
echo "f1 allocated after 1 MiB written: $written bytes"
(( written >= before + (1 << 20) )) ||
    swt_fail "1 MiB written through swaptier is not allocated on f1"
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.trim(512 << 10, 0)
assert h.pread(512 << 10, 0) == bytes(512 << 10)'
half=$(remote_data)
echo "f1 allocated after trimming the first 512 KiB: $half bytes"
(( half <= written - (448 << 10) && half >= (512 << 10) )) ||
    swt_fail "trimming 512 KiB did not free about 512 KiB on f1 ($written -> $half)"
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.trim(512 << 10, 512 << 10)'
after=$(remote_data)
echo "f1 allocated after trimming all: $after bytes"
(( after <= before )) ||
    swt_fail "f1 still holds $after bytes after the trim (had $before at start)"
map=$(nbdinfo --map "$swt_uri")
[[ $(wc -l <<<"$map") -eq 1 && $map == *hole,zero* ]] ||
    swt_fail "swaptier's map is not one hole after the trim: $map"
swt_stop
swt_show_counters
swt_check_counters
(( $(swt_stat 0 used) == 0 )) || swt_fail "f1 still has slots in use"
rmt_kill f1
rm -f "$d/f0"

# =============================================================================
section "G: a server that hangs (SIGSTOP) for longer than timeout=1"
rmt_start g1 memory 16M
swt_start backend="$(rmt_uri g1)" priority=10 timeout=1 \
          backend="$d/g0" capacity=32M priority=1
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(b"g" * (16 * 4096), 0)'
kill -STOP "${rmt_pid[g1]}"
# A read of a page on g1: no reply within 1 s, the connection is dropped,
# and the read waits for the reconnection.
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
assert h.pread(4096, 0) == b"g" * 4096, "page 0 after the hang"
print("ok: the read of page 0 returned its data after the hang")' &
reader=$!
log_wait "connection lost" 1 10
# Meanwhile writes go to the local backend: they complete while g1 is
# still stopped.
URI=$swt_uri timeout 10 "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(b"w" * (16 * 4096), 100 * 4096)
assert h.pread(16 * 4096, 100 * 4096) == b"w" * (16 * 4096)' ||
    swt_fail "writing 16 pages failed or waited for the hung server"
kill -0 "$reader" 2>/dev/null ||
    swt_fail "the read of page 0 did not wait for the hung server"
sleep 1
kill -CONT "${rmt_pid[g1]}"
rc=0
wait "$reader" || rc=$?
(( rc == 0 )) || swt_fail "the read of page 0 failed across the hang"
grep -F "no reply within 1000 ms" "$swt_log" >/dev/null ||
    swt_fail "no 'no reply within 1000 ms' in the log"
log_wait "reconnected" 1 10
swt_stop
swt_show_counters
rmt_check_invariant5
check_not_failed 0
(( $(swt_stat 0 bad) == 0 )) || swt_fail "g1 has bad slots after a hang"
(( $(swt_stat 0 used) == 16 )) || swt_fail "g1 holds $(swt_stat 0 used) pages, not 16"
(( $(swt_stat 1 used) == 16 )) ||
    swt_fail "the local backend holds $(swt_stat 1 used) pages, not the 16 written during the hang"
echo "PASS"
