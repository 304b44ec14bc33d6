#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# copies=2 (issue 12): every page on two backends of different failure
# domains, lost copies re-created in the background, with real nbdkit
# servers on Unix sockets (each server its own domain) next to a local
# file (domain "local").  A 64 MiB device; fio writes every 4 KiB block
# once (two jobs, two NBD connections) and reads it all back with
# verify=crc32c:
#   1. one remote server is killed with kill -9 in the middle of the
#      writes and never comes back: fio sees no error and no verify
#      error; once the backend is failed (grace=2) its copies are
#      re-created on the local file, until the total shows degraded=0
#      and the live backends hold exactly 2 * mapped slots.  Then the
#      other remote server is killed under a verifying read load: still
#      no error, every block verifies, no page is lost.
#   2. the same, but the memory server is restarted at once (its data is
#      gone; the claim check makes its backend failed).
#   3. 20% of the reads of the remote holding the preferred copies fail
#      (error filter): every read and verify succeeds from the other
#      copy, the copies dropped are re-created (degraded back to 0), the
#      backend stays active, and a second pass with the errors still on
#      verifies too.
#   4. configuration: copies=2 over local files only (one domain), and
#      over two exports of one server (one domain), is refused with
#      "fewer failure domains", but works with domain= naming two; copies
#      out of 1..3 and bad domain names are refused.
# The time each re-creation took, for how many copies, is printed.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
rmt_setup
ctl_setup
swt_require nbdinfo timeout truncate
nbdkit --filter=error null --dump-plugin >/dev/null 2>&1 || {
    echo "SKIP: nbdkit has no error filter" >&2
    exit 77
}
d=$swt_tmpdir
dev=$(( 64 << 20 ))
pages=$(( dev / 4096 ))

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# fio over the whole device: two jobs on its two halves, each writing
# every 4 KiB block of its half once in random order at iodepth 16, then
# reading them all back and checking them.  $1 is the JSON output, the
# other arguments are passed on (--rate_iops=N to last longer,
# --verify_only to check what an earlier run wrote).
fio_job ()
{
    rmt_fio_cmd "$1" --name=copies --rw=randwrite --bs=4k --iodepth=16 \
        --numjobs=2 --size=$(( dev / 2 )) --offset_increment=$(( dev / 2 )) \
        "${@:2}"
}

# A random read load over the whole device for $2 seconds, every block
# read checked against the crc32c fio_job wrote there; JSON to $1.
fio_reads ()
{
    rmt_fio_cmd "$1" --name=reads --rw=randread --bs=4k --iodepth=16 \
        --numjobs=2 --size=$(( dev / 2 )) --offset_increment=$(( dev / 2 )) \
        --time_based --runtime="$2" --rate_iops=3000
}

# Fail unless fio (pid $1, JSON $2) exits 0.
fio_wait ()
{
    local rc=0
    wait "$1" || rc=$?
    (( rc == 0 )) || { cat "$2" >&2; swt_fail "fio failed (status $rc): $3"; }
}

# Start swaptier with copies=2 over the remote servers $1 and $2
# (backends 0 and 1, priority 10, given up 2 s after their server goes)
# and the local file $d/local (backend 2, priority 5), and the other
# arguments.
start_copies ()
{
    rm -f "$d/local"
    swt_start copies=2 \
              backend="$(rmt_uri "$1")" priority=10 grace=2 \
              backend="$(rmt_uri "$2")" priority=10 grace=2 \
              backend="$d/local" capacity=128M priority=5 \
              size=$dev control="$ctl_sock" "${@:3}"
    [[ $(nbdinfo --size "$swt_uri") -eq $dev ]] ||
        swt_fail "export size $(nbdinfo --size "$swt_uri"), expected $dev"
}

# Wait up to $3 seconds until backend $1 is failed (or given up: its
# server is dead) and its copies are
# re-created (the total shows degraded=0 after it was above 0), polling
# the control socket every 20 ms; status 1 if that does not happen.  $2
# is the time of the loss ($EPOCHREALTIME).  Prints how long the failure
# and the re-creation took and how many copies were re-created, and
# appends that to $d/timings.  Run it in the background from the loss
# on: the re-creation may be over before the client's workload is.
watch_repair ()
{
    python3 - "$ctl_sock" "$1" "$2" "$3" "$d/timings" <<'EOF'
import socket, sys, time
sock, bid, t_loss, limit, out = sys.argv[1:]
t_loss, limit = float(t_loss), float(limit)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sock)
f = s.makefile("rb")


def poll():
    s.sendall(b"list\n")
    recs = {}
    while True:
        line = f.readline().decode("latin-1").rstrip("\n")
        assert line, "control socket closed"
        if line == "ok" or line.startswith(("ok ", "error ")):
            assert line.startswith("ok"), line
            return recs
        words = line.split()
        fields = dict(w.split("=", 1) for w in words[1:])
        name = words[0]
        if name == "backend":
            name = "backend" + fields["id"]
        recs[name] = fields


t_fail = rec_fail = rec_loss = None
most = rate = 0
while True:
    now = time.time()
    assert now - t_loss < limit, (
        "backend %s: %s after %.0f s (failed: %s, degraded %s)" % (
            bid, "not failed" if t_fail is None else "copies not re-created",
            limit, t_fail is not None, most))
    recs = poll()
    total, repair = recs["total"], recs["repair"]
    if rec_loss is None:
        rec_loss = int(repair["recreated"])
    degraded = int(total["degraded"])
    b = recs["backend" + bid]
    if t_fail is None and (b["state"] == "failed" or b["health"] == "dead"):
        t_fail, rec_fail = now, int(repair["recreated"])
    if t_fail is not None:
        most = max(most, degraded)
        rate = max(rate, int(repair["rate"]))
        if most > 0 and degraded == 0:
            break
    time.sleep(0.02)
copies = int(repair["recreated"]) - rec_fail
took = now - t_fail
msg = ("re-creation: backend %s failed %.2f s after the loss; then %d "
       "copies (at most %d degraded) re-created in %.2f s, %.0f copies/s "
       "(the repair line showed up to %d/s); %d re-created since the loss "
       "in all; mapped %s, repair-rate limit %s bytes/s" % (
           bid, t_fail - t_loss, copies, most, took, copies / took, rate,
           int(repair["recreated"]) - rec_loss, total["mapped"],
           repair["limit"]))
print(msg)
open(out, "a").write(msg + "\n")
EOF
}

# Fail unless every page of the device is mapped, none lacks a copy or
# is lost, and the live backends (active, not given up) hold exactly 2
# slots per page.
check_two_copies ()
{
    local list=$d/list.raw mapped degraded used lost
    ctl_raw list >"$list"
    cat "$list"
    mapped=$(ctl_raw_num total mapped "$list")
    degraded=$(ctl_raw_num total degraded "$list")
    lost=$(ctl_raw_num total lost "$list")
    used=$(ctl_raw_sum_live used "$list")
    [[ $(ctl_raw_get total copies "$list") == 2 ]] ||
        swt_fail "the total shows copies=$(ctl_raw_get total copies "$list")"
    (( mapped == pages )) ||
        swt_fail "mapped=$mapped after fio wrote each of the $pages pages"
    (( degraded == 0 )) || swt_fail "degraded=$degraded"
    (( lost == 0 )) || swt_fail "$lost pages lost"
    (( used == 2 * mapped )) ||
        swt_fail "the live backends hold $used slots for $mapped pages," \
                 "expected $(( 2 * mapped ))"
    # swaptierctl list --json says the same.
    ctl list --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
t, r = doc["total"], doc["repair"]
got = (t["copies"], t["mapped"], t["degraded"], r["degraded"])
assert got == (2, int(sys.argv[1]), 0, 0), "copies, mapped, degraded: %s" % (got,)
' "$mapped" || swt_fail "swaptierctl list --json disagrees with the raw list"
    echo "ok: $mapped pages mapped, $used slots on the live backends," \
         "none degraded, none lost"
}

# Sections 1 and 2: under fio, remote server $2 (backend $3) is lost at
# 1.5 s, killed for good ($1 = crash) or restarted empty ($1 =
# restart); then its copies are re-created; then server $4 (backend $5)
# is killed under a read load.
loss_run ()
{
    local how=$1 victim=$2 vid=$3 other=$4 oid=$5 fio_pid watch_pid t_loss
    local rc lost
    fio_job "$d/$how.json" --rate_iops=2000 &
    fio_pid=$!
    sleep 1.5
    kill -0 "$fio_pid" 2>/dev/null || swt_fail "fio ended before the loss"
    t_loss=$EPOCHREALTIME
    if [[ $how == crash ]]; then
        rmt_crash "$victim"
        echo "killed $victim with SIGKILL, for good"
    else
        rmt_kill "$victim"
        rmt_start "$victim" memory 128M
        echo "killed $victim with SIGKILL and started it again, empty"
    fi
    watch_repair "$vid" "$t_loss" 30 &
    watch_pid=$!
    kill -0 "$fio_pid" 2>/dev/null || swt_fail "fio ended during the loss"
    fio_wait "$fio_pid" "$d/$how.json" "writes and verify across the loss of $victim"
    rmt_fio_check "$d/$how.json" "$dev"
    echo "ok: fio wrote and verified $dev bytes across the loss of $victim"
    wait "$watch_pid" || swt_fail "the copies of backend $vid were not re-created"
    check_two_copies

    # The second loss: every page must still have its copy on the local
    # file.  The reads go on while the server dies and after.
    fio_reads "$d/$how-reads.json" 3 &
    fio_pid=$!
    sleep 1
    rmt_crash "$other"
    echo "killed $other with SIGKILL"
    fio_wait "$fio_pid" "$d/$how-reads.json" "reads across the loss of $other"
    rmt_fio_check_read "$d/$how-reads.json" $(( 8 << 20 ))
    ctl_wait_for '[[ $(ctl_raw_get '"$oid"' health) == dead ]]' 15 \
        "backend $oid ($other) was not given up"
    rc=0
    fio_job "$d/$how-verify.json" --verify_only || rc=$?
    (( rc == 0 )) || { cat "$d/$how-verify.json" >&2;
                       swt_fail "verify after the loss of $other (status $rc)"; }
    rmt_fio_check_read "$d/$how-verify.json" "$dev"
    ctl_raw list >"$d/list.raw"
    cat "$d/list.raw"
    lost=$(ctl_raw_num total lost "$d/list.raw")
    (( lost == 0 )) || swt_fail "$lost pages lost after the second loss"
    lost=$(ctl_raw_num repair lost "$d/list.raw")
    (( lost == 0 )) || swt_fail "the repairer lost $lost pages"
    echo "ok: all $dev bytes verify on the local file alone, none lost"
    swt_stop
    swt_show_counters
    rmt_check_invariant5
}

# =============================================================================
section "1: copies=2, a remote server killed for good under fio verify"
rmt_start k1 memory 128M
rmt_start k2 memory 128M
start_copies k1 k2
ctl_raw list >"$d/list.raw"
for want in 0="unix:$d/k1.sock" 1="unix:$d/k2.sock" 2=local; do
    got=$(ctl_raw_get "${want%%=*}" domain "$d/list.raw")
    [[ $got == "${want#*=}" ]] ||
        swt_fail "backend ${want%%=*} is in domain $got, expected ${want#*=}"
done
ctl list | tee "$d/list.txt"
grep -q '^ *ID  TARGET  *KIND  *DOMAIN ' "$d/list.txt" ||
    swt_fail "swaptierctl list has no DOMAIN column"
grep -q "k2.sock  *nbd  *unix:$d/k2.sock " "$d/list.txt" ||
    swt_fail "swaptierctl list does not show the domain of k2"
echo "ok: each server is its own domain, the file is in domain local"
loss_run crash k1 0 k2 1

# =============================================================================
section "2: copies=2, a memory server restarted empty under fio verify"
rmt_start r1 memory 128M
rmt_start r2 memory 128M
start_copies r1 r2 -v
loss_run restart r1 0 r2 1
rmt_stop r1

# =============================================================================
section "3: read errors on the copies of one remote"
rmt_start e1 --filter=error memory 128M \
    error-pread-rate=20% error=EIO error-file="$d/e1.on"
rmt_start e2 memory 128M
rm -f "$d/local"
# The preferred copies are on e1 (priority 10), the others on e2; many
# errors in a row must not fail e1 here.
swt_start copies=2 max-errors=100000 \
          backend="$(rmt_uri e1)" priority=10 \
          backend="$(rmt_uri e2)" priority=5 \
          backend="$d/local" capacity=128M priority=1 \
          size=$dev control="$ctl_sock"
rc=0
fio_job "$d/e-write.json" || rc=$?
(( rc == 0 )) || { cat "$d/e-write.json" >&2; swt_fail "fio (status $rc)"; }
rmt_fio_check "$d/e-write.json" "$dev"
check_two_copies
rec0=$(ctl_raw_num repair recreated)
touch "$d/e1.on"
for pass in 1 2; do
    rc=0
    fio_job "$d/e-verify.$pass.json" --verify_only || rc=$?
    (( rc == 0 )) || { cat "$d/e-verify.$pass.json" >&2;
                       swt_fail "verify pass $pass with read errors (status $rc)"; }
    rmt_fio_check_read "$d/e-verify.$pass.json" "$dev"
    ctl_wait_for '[[ $(ctl_raw_get total degraded) == 0 ]]' 30 \
        "the copies dropped by read errors were not re-created"
    ctl_raw list >"$d/list.raw"
    errors=$(ctl_raw_num 0 errors "$d/list.raw")
    (( errors > 0 )) || swt_fail "no read error was injected on e1"
    state=$(ctl_raw_get 0 state "$d/list.raw")
    [[ $state == active ]] || swt_fail "e1 is $state after isolated read errors"
    recreated=$(ctl_raw_num repair recreated "$d/list.raw")
    recreated=$(( recreated - rec0 ))
    bad=$(ctl_raw_num 0 bad "$d/list.raw")
    (( bad > 0 )) || swt_fail "no copy on e1 was given up after read errors"
    # Each copy given up (its slot made bad) is re-created once.
    (( recreated == bad )) ||
        swt_fail "$recreated copies re-created for $bad copies given up"
    echo "ok: pass $pass verified $dev bytes with e1 failing reads:" \
         "$errors errors on e1, $bad copies given up (bad slots)," \
         "$recreated re-created in all"
    check_two_copies
done
rm -f "$d/e1.on"
swt_stop
swt_show_counters
rmt_check_invariant5
rmt_stop e1
rmt_stop e2

# =============================================================================
section "4: configurations with too few failure domains, bad keys"
swt_expect_error "fewer failure domains" copies=2 \
    backend="$d/f1" capacity=16M backend="$d/f2" capacity=16M
[[ $(swt_config_size copies=1 \
       backend="$d/f1" capacity=16M backend="$d/f2" capacity=16M) -gt 0 ]]
[[ $(swt_config_size copies=2 \
       backend="$d/f1" capacity=16M domain=disk1 \
       backend="$d/f2" capacity=16M domain=disk2) -gt 0 ]]
echo "ok: two local files are one domain, unless domain= says otherwise"
swt_expect_error "fewer failure domains" copies=3 \
    backend="$d/f1" capacity=16M domain=disk1 \
    backend="$d/f2" capacity=16M domain=disk2
four=(backend="$d/f1" capacity=16M domain=a backend="$d/f2" capacity=16M domain=b
      backend="$d/f3" capacity=16M domain=c backend="$d/f4" capacity=16M domain=d)
[[ $(swt_config_size copies=3 "${four[@]}") -gt 0 ]]
swt_expect_error "copies=4" copies=4 "${four[@]}"
swt_expect_error "copies=0" copies=0 "${four[@]}"
swt_expect_error "copies" copies=two "${four[@]}"
long=$(printf 'd%.0s' {1..64})
[[ $(swt_config_size copies=2 backend="$d/f1" capacity=16M domain="$long" \
       backend="$d/f2" capacity=16M domain="A-z_0.9:/@x") -gt 0 ]]
echo "ok: copies=3 over four domains, 64-byte and odd domain names work"
swt_expect_error "domain" backend="$d/f1" capacity=16M domain="${long}d"
swt_expect_error "domain" backend="$d/f1" capacity=16M domain=
swt_expect_error "domain" backend="$d/f1" capacity=16M domain="a b"
swt_expect_error "domain" backend="$d/f1" capacity=16M domain="a*b"
swt_expect_error "domain" domain=disk1 backend="$d/f1" capacity=16M

# Two exports (files of one directory) of one nbdkit server.
mkdir -p "$d/exports"
truncate -s 32M "$d/exports/x1" "$d/exports/x2"
rmt_start two file dir="$d/exports"
x1="nbd+unix:///x1?socket=$d/two.sock"
x2="nbd+unix:///x2?socket=$d/two.sock"
swt_expect_error "fewer failure domains" copies=2 backend="$x1" backend="$x2"
[[ $(swt_config_size copies=2 backend="$x1" domain=rack1 \
       backend="$x2" domain=rack2) -gt 0 ]]
[[ $(swt_config_size copies=2 backend="$x1" backend="$d/f1" capacity=16M) \
   -gt 0 ]]
swt_expect_error "fewer failure domains" copies=3 \
    backend="$x1" backend="$x2" backend="$d/f1" capacity=16M
echo "ok: two exports of one server are one domain, unless domain= says otherwise"
rmt_stop two

echo "--- re-creation timings"
cat "$d/timings"
echo "PASS (${SECONDS} s)"
