#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Backend errors, injected with nbdkit's error filter in front of remote
# memory servers:
#   1. 5% of the writes to one remote backend fail (EIO), next to a healthy
#      one of equal priority: fio verify=crc32c over 256 MiB of 4 KiB
#      random writes passes; every failed write is counted (errors == the
#      errors the filter injected) and its slot marked bad (bad == errors:
#      one slot per 4 KiB write); the healthy backend sees no error; used
#      + free + bad == capacity everywhere; every page holds one slot.
#   2. reads start failing (error-file created) on the backend holding
#      pages 0..254: each page read then fails with EIO and stays LOST
#      (EIO on every later read, also once the error file is removed),
#      never zeroes nor other data; pages not read meanwhile and pages on
#      the other backend read their data; a rewritten lost page reads its
#      new data, a trimmed one zeroes; exactly the lost pages' slots are
#      bad; after max-errors errors in a row the backend is failed.
#   3. every write to one of three backends starts failing in the middle
#      of a fio verify run: the backend is failed after max-errors errors
#      in a row, the writes go on to the others, fio verify passes, and no
#      more than the requests then in flight were still sent to it.
#   4. as 2, with four clients reading at once, so that swaptier opens new
#      connections to the failing server (each checks the claim in slot
#      0) while it answers reads with EIO: still only the pages read are
#      lost, the backend is not declared to have lost its data.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
nbdkit --filter=error null --dump-plugin >/dev/null 2>&1 || {
    echo "SKIP: nbdkit has no error filter" >&2
    exit 77
}
d=$swt_tmpdir

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# Errors the error filter of server NAME injected into requests of kind
# $2 (pread, pwrite) on the data slots, from the log filter in front of
# it (logfile=$d/NAME.req).  Slot 0 holds swaptier's header, whose reads
# and writes (claim checks, heartbeats) are not requests of the engine.
injected_eio ()
{
    "$swt_python" - "$d/$1.req" "$2" <<'PYEOF'
import re, sys
kind = {"pread": "Read", "pwrite": "Write"}[sys.argv[2]]
offset, n = {}, 0
for line in open(sys.argv[1]):
    m = re.search(r"connection=(\d+) (\.\.\.)?%s id=(\d+) (offset=0x([0-9a-f]+))?"
                  % kind, line)
    if not m:
        continue
    key = (m.group(1), m.group(3))
    if m.group(2) is None:
        offset[key] = int(m.group(5), 16)
    elif "error=EIO" in line and offset.get(key, 0) != 0:
        n += 1
print(n)
PYEOF
}

# --- Counter helpers ---------------------------------------------------------

# Fail unless backend $1 of the last run had no error and no bad slot.
check_clean ()
{
    (( $(swt_stat "$1" errors) == 0 )) ||
        swt_fail "backend $1: $(swt_stat "$1" errors) errors"
    (( $(swt_stat "$1" bad) == 0 )) ||
        swt_fail "backend $1: $(swt_stat "$1" bad) bad slots"
}

# Whether the log says backend $1 was failed (printed if so).
is_failed ()
{
    grep -E "backend $1 [^ ]+: failed" "$swt_log"
}

# =============================================================================
section "1: 5% of the writes to one remote backend fail"
# The errors start once swaptier is up (error-file): the header swaptier
# writes to slot 0 at start must get through.
rmt_start w1 --filter=log --filter=error memory 512M \
    logfile="$d/w1.req" error-pwrite-rate=5% error=EIO \
    error-file="$d/w1.on"
rmt_start h1 memory 512M
swt_start backend="$(rmt_uri w1)" backend="$(rmt_uri h1)"
touch "$d/w1.on"
rc=0
rmt_fio_cmd "$d/fio1.json" --name=rand4k --rw=randwrite --bs=4k --iodepth=32 \
    --size=256M || rc=$?
(( rc == 0 )) || { cat "$d/fio1.json" >&2; swt_fail "fio failed (status $rc)"; }
rmt_fio_check "$d/fio1.json" $(( 256 << 20 ))
swt_stop
swt_show_counters
rmt_check_invariant5
check_clean 1
injected=$(injected_eio w1 pwrite)
errors=$(swt_stat 0 errors)
bad=$(swt_stat 0 bad)
echo "w1: $injected write errors injected, $errors counted, $bad bad slots"
(( injected > 0 )) || swt_fail "the error filter injected no error"
(( errors == injected )) ||
    swt_fail "w1: $errors errors counted, $injected injected"
# Each failed 4 KiB write makes its one slot bad.
(( bad == errors )) || swt_fail "w1: $bad bad slots for $errors failed writes"
if is_failed 0; then
    swt_fail "w1 was failed by isolated errors"
fi
(( $(swt_stat 0 used) + $(swt_stat 1 used) == 65536 )) ||
    swt_fail "$(( $(swt_stat 0 used) + $(swt_stat 1 used) )) slots in use for 65536 pages"
(( $(swt_stat 0 used) > 65536 / 4 )) ||
    swt_fail "w1 holds only $(swt_stat 0 used) pages: it should still take writes"
rmt_stop w1
rmt_stop h1

# =============================================================================
section "2: reads start failing on a backend: its pages read are LOST"
# r2 holds 1 MiB, 255 slots after the header: pages 0..254, written first at
# the higher priority, fill it exactly; pages 255..510 go to the local file.
rmt_start r2 --filter=log --filter=error memory 1M \
    logfile="$d/r2.req" error-pread-rate=100% \
    error-file="$d/r2.on"
swt_start backend="$(rmt_uri r2)" priority=10 \
          backend="$d/l2" capacity=32M priority=1
URI=$swt_uri ON=$d/r2.on "$swt_python" - <<'EOF'
import errno
import os
import nbd

PAGE = 4096
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(os.environ["URI"])
data = os.urandom(511 * PAGE)


def page(p):
    return data[p * PAGE:(p + 1) * PAGE]


def expect_eio(p, n, what):
    try:
        buf = h.pread(n, p * PAGE)
    except nbd.Error as e:
        assert e.errno in ("EIO", errno.EIO), "%s: %s" % (what, e)
        return
    kind = "zeroes" if buf == bytes(n) else "data"
    raise AssertionError("%s: read %s instead of EIO" % (what, kind))


h.pwrite(data, 0)
assert h.pread(len(data), 0) == data, "the data written first"
print("ok: pages 0..510 written and read back")

open(os.environ["ON"], "w").close()
for p in range(16):
    expect_eio(p, PAGE, "page %d" % p)
    expect_eio(p, PAGE, "page %d, second read" % p)
expect_eio(16, 16 * PAGE, "pages 16..31 in one read")
for p in range(16, 32):
    expect_eio(p, PAGE, "page %d after the read of 16..31" % p)
for p in (255, 300, 510):
    assert h.pread(PAGE, p * PAGE) == page(p), "local page %d" % p
print("ok: pages 0..31 read as EIO, the local pages read")

os.unlink(os.environ["ON"])
for p in range(32):
    expect_eio(p, PAGE, "lost page %d, once r2 reads again" % p)
    expect_eio(p, 1, "first byte of lost page %d" % p)
expect_eio(0, 64 * PAGE, "pages 0..63 in one read")
print("ok: pages 0..31 stay lost after the errors stopped")
for p in range(32, 511):
    assert h.pread(PAGE, p * PAGE) == page(p), "page %d" % p
assert h.pread(223 * PAGE, 32 * PAGE) == data[32 * PAGE:255 * PAGE]
print("ok: the pages not read during the errors, 32..510, read their data")

h.pwrite(b"R" * PAGE, 3 * PAGE)
assert h.pread(PAGE, 3 * PAGE) == b"R" * PAGE, "rewritten page 3"
h.trim(PAGE, 4 * PAGE)
assert h.pread(PAGE, 4 * PAGE) == bytes(PAGE), "trimmed page 4"
expect_eio(5, PAGE, "page 5, not rewritten")
expect_eio(2, 3 * PAGE, "pages 2..4 (2 is lost)")
assert h.pread(2 * PAGE, 3 * PAGE) == b"R" * PAGE + bytes(PAGE)
print("ok: a rewritten lost page reads its new data, a trimmed one zeroes")
EOF
swt_stop
swt_show_counters
rmt_check_invariant5
check_clean 1
(( $(swt_stat 0 bad) == 32 )) ||
    swt_fail "r2: $(swt_stat 0 bad) bad slots, expected the 32 lost pages"
(( $(swt_stat 0 used) == 255 - 32 )) ||
    swt_fail "r2: $(swt_stat 0 used) slots in use, expected $(( 255 - 32 ))"
(( $(swt_stat 1 used) == 256 + 1 )) ||
    swt_fail "local: $(swt_stat 1 used) slots in use, expected 257"
# A read is tried up to 3 times before its page is lost, and counts one
# error whatever its tries: at least one per lost page, at most one per
# injected error.
injected=$(injected_eio r2 pread)
errors=$(swt_stat 0 errors)
(( errors >= 32 && errors <= injected )) ||
    swt_fail "r2: $errors errors counted, $injected injected, 32 pages lost"
grep -F "page 0 is lost" "$swt_log" >/dev/null || swt_fail "no 'page 0 is lost'"
is_failed 0 || swt_fail "r2 was not failed after its errors"
grep -E "failed \([0-9]+ read errors in a row" "$swt_log" >/dev/null ||
    swt_fail "r2 was failed, but not for its consecutive errors"
rmt_stop r2
rm -f "$d/l2"

# =============================================================================
section "3: every write to one backend fails from the middle of a fio run"
rmt_start w3 --filter=log --filter=error memory 256M \
    logfile="$d/w3.req" error-pwrite-rate=100% \
    error-file="$d/w3.on"
rmt_start h3 memory 256M
swt_start backend="$d/l3" capacity=64M \
          backend="$(rmt_uri w3)" backend="$(rmt_uri h3)"
# 64 MiB of 4 KiB random writes at most 2500 per second: a write phase of
# at least 6.5 s, then the verify phase.
rmt_fio_cmd "$d/fio3.json" --name=midrun --rw=randwrite --bs=4k --iodepth=32 \
    --size=64M --rate_iops=,2500 &
fio_pid=$!
sleep 2
touch "$d/w3.on"
kill -0 "$fio_pid" 2>/dev/null || swt_fail "fio ended before the errors began"
rc=0
wait "$fio_pid" || rc=$?
(( rc == 0 )) || { cat "$d/fio3.json" >&2; swt_fail "fio failed (status $rc)"; }
rmt_fio_check "$d/fio3.json" $(( 64 << 20 ))
swt_stop
swt_show_counters
rmt_check_invariant5
check_clean 0
check_clean 2
is_failed 1 || swt_fail "w3 was not failed"
grep -E "failed \([0-9]+ write errors in a row" "$swt_log" >/dev/null ||
    swt_fail "w3 was failed, but not for its consecutive errors"
injected=$(injected_eio w3 pwrite)
errors=$(swt_stat 1 errors)
echo "w3: $injected write errors injected, $errors counted"
(( errors == injected )) ||
    swt_fail "w3: $errors errors counted, $injected injected"
# max-errors (8) in a row fail it; requests already given a slot there
# (32 at most in flight, plus the 4 on its connections whose success may
# have broken the row) may still fail after that, then nothing more.
(( errors >= 8 && errors <= 8 + 32 + 4 )) ||
    swt_fail "w3: $errors failed writes, expected 8 to 44"
(( $(swt_stat 1 bad) == errors )) ||
    swt_fail "w3: $(swt_stat 1 bad) bad slots for $errors failed writes"
(( $(swt_stat 1 used) > 0 )) || swt_fail "w3 took no writes before its errors"
(( $(swt_stat 0 used) + $(swt_stat 1 used) + $(swt_stat 2 used) == 16384 )) ||
    swt_fail "slots in use != the 16384 pages written"
rmt_stop w3
rmt_stop h3
rm -f "$d/l3"

# =============================================================================
section "4: concurrent reads while reads fail: only the pages read are lost"
# As in 2, but four clients read pages 0..3 at the same time, so swaptier
# opens more connections to r4 (the pool connects lazily, and checks the
# claim in slot 0 on each new connection) while r4 answers every read with
# EIO.  The delay filter makes the four reads overlap.  An error answered
# to the claim read is not a different claim: r4 did not lose its data,
# so only pages 0..3 may be lost.
rmt_start r4 --filter=delay --filter=error memory 1M rdelay=200ms \
    error-pread-rate=100% error-file="$d/r4.on"
swt_start backend="$(rmt_uri r4)" priority=10 \
          backend="$d/l4" capacity=32M priority=1
URI=$swt_uri ON=$d/r4.on "$swt_python" - <<'EOF'
import errno
import os
import threading
import nbd

PAGE = 4096
uri = os.environ["URI"]
h = nbd.NBD()
h.connect_uri(uri)
data = os.urandom(255 * PAGE)
h.pwrite(data, 0)
assert h.pread(len(data), 0) == data

open(os.environ["ON"], "w").close()
clients = []
for i in range(4):
    c = nbd.NBD()
    c.connect_uri(uri)
    clients.append(c)
result = {}


def read(i):
    try:
        clients[i].pread(PAGE, i * PAGE)
        result[i] = "data"
    except nbd.Error as e:
        result[i] = e.errno


threads = [threading.Thread(target=read, args=(i,), daemon=True)
           for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join(20)
    assert not t.is_alive(), "a read blocked while r4 answered reads with EIO"
print("concurrent reads of pages 0..3 while r4 fails reads:", result)
for i in range(4):
    assert result[i] in ("EIO", errno.EIO), "page %d: %s" % (i, result[i])
os.unlink(os.environ["ON"])

# One request for them all: every read of r4 takes 200 ms.
try:
    ok = h.pread(251 * PAGE, 4 * PAGE) == data[4 * PAGE:]
except nbd.Error as e:
    ok = e.errno
assert ok is True, ("pages 4..254, never read while r4 failed reads, do "
                    "not read back now that it reads again: %s" % ok)
print("ok: pages 4..254 read their data")
EOF
swt_stop
swt_show_counters
rmt_check_invariant5
if grep -F "the server lost its data" "$swt_log"; then
    swt_fail "r4 declared dead for a read error of its header"
fi
(( $(swt_stat 0 bad) == 4 )) ||
    swt_fail "r4: $(swt_stat 0 bad) bad slots, expected the 4 pages read"
echo "PASS"
