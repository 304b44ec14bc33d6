#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Monitoring (issue 15): swaptierctl check and swaptierctl metrics against
# a real nbdkit swaptier over a local file and a remote `nbdkit memory`
# server on a Unix socket.
#
#   1. metrics parses with Prometheus' own OpenMetrics parser
#      (python3-prometheus-client), ends with # EOF, has one family per
#      counter with a sample per backend labelled id, target, kind and
#      domain, and its values are those of list --json (sizes in bytes)
#      and stats --json; a target with a quote and a backslash in its
#      name is escaped.  Read and write latencies are summaries per
#      backend (p50, p99 over the last second, count and sum); while
#      reads go on, backend 0's read p50 and p99 are there, in metrics,
#      stats --json and stats.
#   2. check, in each state, with its exit code and its line:
#      OK (0) while all is well; WARNING (1) once the remote server is
#      killed (-9), once a backend failed (nbdkit's error filter failing
#      its writes: list and list --json say why, and so does check; once
#      its writes work again, swaptierctl revive puts it back in service,
#      where new pages go, but not one whose header slot was overwritten
#      meanwhile, nor one that is not failed; one whose only connected
#      connection is busy is revived on another, and list is answered
#      while the revive waits), once an idle server hangs
#      (SIGSTOP; the heartbeat notices it) and once it is killed past
#      grace= (the backend fails with no request; revive refuses while it
#      is away, and once it is back revives it with its pages but for
#      one read meanwhile, which stays lost), and once
#      90% of the
#      device is in use; CRITICAL (2) once
#      a page is lost (a byte flipped in the local file, then read);
#      UNKNOWN (3) without a server on the socket, or with an argument.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
rmt_setup
swt_require_python_nbd
swt_on_exit rmt_cleanup
d=$swt_tmpdir
prom=
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
        prom=$py
        break
    fi
done
[[ -n $prom ]] || {
    echo "SKIP: no python3 with prometheus_client (python3-prometheus-client)"
    exit 77
}

section () { echo "=== $* (at ${SECONDS} s)"; }

# Run check; sets check_code and check_line.
run_check ()
{
    check_code=0
    check_line=$(ctl check "$@") || check_code=$?
    echo "check: exit $check_code: $check_line"
}

# =============================================================================
section "1: metrics"
local_file="$d/odd\"name\\x.img"
rmt_start r1 memory 32M
# No demotion: it would move pages between the requests compared.
swt_start backend="$local_file" capacity=16M priority=10 \
          backend="$(rmt_uri r1)" priority=5 demote=off control="$ctl_sock"
# 5000 pages: the local file (about 4000 slots) fills, the rest goes to
# the remote; 100 are read back.
"$swt_python" - "$swt_uri" <<'EOF'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(os.urandom(5000 * 4096), 0)
h.flush()
h.pread(4096 * 100, 0)
h.shutdown()
EOF
# Reads go on while the figures are taken, so that the last second has
# latencies to show.
"$swt_python" - "$swt_uri" <<'EOF' &
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
end = time.time() + 4
while time.time() < end:
    for p in range(0, 5000, 37):
        h.pread(4096, p * 4096)
h.shutdown()
EOF
load=$!
sleep 2.5
ctl metrics >"$d/metrics.txt"
ctl list --json >"$d/list.json"
ctl stats --json >"$d/stats.json"
ctl stats >"$d/stats.txt"
wait "$load"
"$prom" - "$d/metrics.txt" "$d/list.json" "$d/stats.json" <<'EOF'
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
assert text.endswith("# EOF\n"), "metrics do not end with # EOF"
fams = {f.name: f for f in text_string_to_metric_families(text)}
lst, st = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
backends = {str(b["id"]): b for b in lst["backends"]}
stats = {str(b["id"]): b for b in st["backends"]}

def samples(name, kind):
    f = fams.get(name)
    assert f is not None, "no family %s" % name
    assert f.type == kind, "%s is a %s, not a %s" % (name, f.type, kind)
    return f.samples

per_backend = {
    "swaptier_backend_capacity_bytes": ("gauge", "capacity", lst),
    "swaptier_backend_used_bytes": ("gauge", "used", lst),
    "swaptier_backend_free_bytes": ("gauge", "free", lst),
    "swaptier_backend_bad_bytes": ("gauge", "bad", lst),
    "swaptier_backend_priority": ("gauge", "priority", lst),
    "swaptier_backend_reads": ("counter", "reads", lst),
    "swaptier_backend_writes": ("counter", "writes", lst),
    "swaptier_backend_errors": ("counter", "errors", lst),
    "swaptier_backend_lost_pages": ("counter", "lost", lst),
    "swaptier_backend_corrupt_pages": ("counter", "corrupt", lst),
    "swaptier_backend_demoted_pages": ("counter", "demoted", lst),
    "swaptier_backend_promoted_pages": ("counter", "promoted", lst),
    "swaptier_backend_rereads": ("counter", "rereads", lst),
    "swaptier_backend_read_bytes": ("counter", "read_bytes", st),
    "swaptier_backend_written_bytes": ("counter", "write_bytes", st),
}
for name, (kind, key, doc) in per_backend.items():
    got = samples(name, kind)
    assert len(got) == len(backends), "%s: %d samples" % (name, len(got))
    for s in got:
        b = backends[s.labels["id"]]
        assert s.labels["target"] == b["target"], (s.labels, b["target"])
        assert s.labels["kind"] == b["kind"] and \
            s.labels["domain"] == b["domain"], s.labels
        assert s.name == name + ("_total" if kind == "counter" else ""), s
        src = (backends if doc is lst else stats)[s.labels["id"]]
        # Counters keep moving between the three requests: the metrics
        # came first, so they are at most what list/stats said.
        if kind == "counter":
            assert s.value <= src[key], (name, s.value, src[key])
        else:
            assert s.value == src[key], (name, s.value, src[key])
for name in ("swaptier_backend_up",):
    for s in samples(name, "gauge"):
        assert s.value == 1, s
assert [s.value for s in samples("swaptier_device_pages", "gauge")] == \
    [lst["total"]["pages"]]
assert [s.value for s in samples("swaptier_device_mapped_pages", "gauge")] \
    == [lst["total"]["mapped"]]
assert [s.value for s in samples("swaptier_device_lost_pages", "counter")] \
    == [0]
writes = {s.labels["id"]: s.value
          for s in samples("swaptier_backend_writes", "counter")}
assert all(v > 0 for v in writes.values()), writes
for kind in ("read", "write"):
    name = "swaptier_backend_%s_latency_seconds" % kind
    got = samples(name, "summary")
    for bid, b in backends.items():
        mine = {(s.name, s.labels.get("quantile")): s.value for s in got
                if s.labels["id"] == bid}
        assert set(mine) == {(name, "0.5"), (name, "0.99"),
                             (name + "_sum", None),
                             (name + "_count", None)}, mine
        count = mine[(name + "_count", None)]
        # One latency per request: the count is that of the requests.
        assert count <= stats[bid][kind + "s"], (count, stats[bid])
        p50, p99 = mine[(name, "0.5")], mine[(name, "0.99")]
        if kind == "read" and bid == "0":
            # Reads of the local file went on during the last second.
            assert 0 < p50 <= p99 < 1, (p50, p99)
            assert 0 < stats[bid]["read_p50_us"] <= stats[bid]["read_p99_us"]
            assert mine[(name + "_sum", None)] > 0
names = [b["target"] for b in lst["backends"]]
assert any('"' in n and "\\" in n for n in names), names
print("ok: %d families parsed; values match list and stats; labels "
      "escaped; latencies" % len(fams))
EOF
head -2 "$d/stats.txt"
grep -q 'READ p50/p99' "$d/stats.txt" || swt_fail "stats shows no latencies"
awk '$1 == 0 { exit !($(NF-1) ~ /^[0-9]+\/[0-9]+us$/) }' "$d/stats.txt" ||
    swt_fail "stats: no read percentiles for backend 0"

# =============================================================================
section "2: check"
run_check
(( check_code == 0 )) && [[ $check_line == "SWAPTIER OK: 2 backends serving"* ]] ||
    swt_fail "check while all is well"
run_check extra
(( check_code == 3 )) && [[ $check_line == "SWAPTIER UNKNOWN: check takes no arguments" ]] ||
    swt_fail "check with an argument"
if ctl metrics extra >/dev/null 2>&1; then
    swt_fail "metrics with an argument succeeded"
fi

# The remote server dies: the backend is away.
rmt_kill r1
ctl_wait_for '! ctl check >/dev/null' 30 "check still OK after the kill"
run_check
(( check_code == 1 )) && [[ $check_line == "SWAPTIER WARNING: backend 1 ("* ]] ||
    swt_fail "check with the remote server killed"
[[ $check_line == *"server is"* ]] || swt_fail "check does not say why"
swt_stop

# A backend that fails every write: failed after max-errors=3, and list,
# list --json and check say why.
# (The errors start once the claim of the export is written.)
rmt_start e1 --filter=error memory 32M error=EIO error-pwrite-rate=100% \
    error-file="$d/e1.on"
rm -f "$d/b" "$d/e1.on"
swt_start backend="$(rmt_uri e1)" priority=10 backend="$d/b" capacity=16M \
          priority=5 max-errors=3 control="$ctl_sock"
touch "$d/e1.on"
"$swt_python" - "$swt_uri" <<'EOF'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(16):
    h.pwrite(os.urandom(4096), i * 4096)
h.flush()
h.shutdown()
EOF
[[ $(ctl_get 0 state) == failed ]] || swt_fail "backend 0 is $(ctl_get 0 state)"
why=$(ctl_get 0 failure)
echo "failure: $why"
[[ $why == "3 write errors in a row (max-errors=), the last: Input/output error" ]] ||
    swt_fail "list --json: failure '$why'"
ctl list --json | python3 -c '
import json, sys
sys.exit("failure" in json.load(sys.stdin)["backends"][1])' ||
    swt_fail "backend 1, which works, has a failure field"
ctl list | grep -qxF "backend 0 failed: $why" ||
    swt_fail "list does not say why backend 0 failed"
run_check
(( check_code == 1 )) && [[ $check_line == *"backend 0 ("*") failed: $why"* ]] ||
    swt_fail "check does not give the failure"

# Revive: refused while it is not failed, then, its writes working
# again, it takes new pages, and check is OK.
expect_revive ()
{
    local want=$1 rc=0
    shift
    ctl revive "$@" >"$d/revive.out" 2>&1 || rc=$?
    echo "revive $*: exit $rc: $(cat "$d/revive.out")"
    (( rc == want )) || swt_fail "revive $*: exit $rc, not $want"
}
expect_revive 1 1
grep -q "backend 1 .* is not failed" "$d/revive.out" || swt_fail "no reason"
rm -f "$d/e1.on"
writes=$(ctl_get 0 writes)
expect_revive 0 0
[[ $(cat "$d/revive.out") == "backend 0 revived: new pages go there again" ]] ||
    swt_fail "revive said: $(cat "$d/revive.out")"
[[ $(ctl_get 0 state) == active ]] || swt_fail "revived, backend 0 is $(ctl_get 0 state)"
ctl list --json | python3 -c '
import json, sys
sys.exit("failure" in json.load(sys.stdin)["backends"][0])' ||
    swt_fail "a revived backend still shows its failure"
swt_write_random 16 100
(( $(ctl_get 0 writes) > writes )) || swt_fail "no new page went to the revived backend"
run_check
(( check_code == 0 )) || swt_fail "check after the revival"
grep -q "control: uid 0 pid [0-9]*: revive 0: ok id=0" "$swt_log" ||
    swt_fail "the revival is not in the audit trail"
swt_stop
rmt_stop e1

# A backend whose header slot was overwritten meanwhile is not revived.
truncate -s 32M "$d/e3.img"
rmt_start e3 --filter=error file "$d/e3.img" error=EIO error-pwrite-rate=100% \
    error-file="$d/e3.on"
rm -f "$d/b" "$d/e3.on"
swt_start backend="$(rmt_uri e3)" priority=10 backend="$d/b" capacity=16M \
          priority=5 max-errors=3 control="$ctl_sock"
touch "$d/e3.on"
for i in 0 1 2 3; do
    swt_write_random 1 "$i"            # a write each: an error each
done
[[ $(ctl_get 0 state) == failed ]] || swt_fail "e3 did not fail"
rm -f "$d/e3.on"
dd if=/dev/zero of="$d/e3.img" bs=4096 count=1 conv=notrunc status=none
expect_revive 1 0
grep -q "no longer holds this instance's claim" "$d/revive.out" ||
    swt_fail "an overwritten claim was not the reason"
[[ $(ctl_get 0 state) == failed ]] || swt_fail "e3 was revived"
swt_stop
rmt_stop e3

# Revive while the one connected connection is held by a read that
# waits on a paused server (nbdkit's pause filter): the claim is checked
# on another connection, connected for it (it crashed nbdkit on a NULL
# handle), and the revive, a job of its own, does not hold up list.
truncate -s 32M "$d/v.img"
rmt_start v --filter=error --filter=pause file "$d/v.img" \
    pause-control="$d/pause.sock" \
    error=EIO error-pwrite-rate=100% error-file="$d/v.err"
rm -f "$d/b" "$d/v.err"
swt_start backend="$(rmt_uri v)" priority=10 timeout=20 \
          backend="$d/b" capacity=16M priority=5 max-errors=3 control="$ctl_sock"
pause_ctl ()
{
    "$swt_python" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.recv(1)' "$d/pause.sock" "$1"
}
swt_write_random 8 0
touch "$d/v.err"
for i in 8 9 10 11; do
    swt_write_random 1 "$i"
done
[[ $(ctl_get 0 state) == failed ]] || swt_fail "v did not fail"
rm -f "$d/v.err"
pause_ctl p
"$swt_python" -c '
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(4096, 0)' "$swt_uri" &
reader=$!
sleep 0.5
rc=0
ctl revive 0 >"$d/revive.out" 2>&1 &
reviver=$!
sleep 0.5
ctl list >/dev/null || swt_fail "list while a revive waits"
kill -0 "$reviver" 2>/dev/null ||
    swt_fail "the revive did not wait for the paused server (or list waited for it)"
pause_ctl r
wait "$reviver" || rc=$?
echo "revive with the connection busy: exit $rc: $(cat "$d/revive.out")"
wait "$reader" || swt_fail "the read across the pause failed"
kill -0 "$swt_pid" 2>/dev/null || swt_fail "nbdkit died during the revive"
(( rc == 0 )) || swt_fail "revive with the connection busy: exit $rc"
[[ $(ctl_get 0 state) == active ]] || swt_fail "v was not revived"
swt_stop
rmt_stop v

# An idle server that hangs (SIGSTOP) is noticed by the heartbeat, with
# no request: check warns within timeout= and a beat.  Killed past
# grace=, it is failed with the reason, still with no request.  Revive is
# refused while it is away; once it is back with its data, the backend
# is revived: a page read meanwhile stays lost, the others read back (a
# checksum would refuse any other bytes), new pages go there.
truncate -s 32M "$d/g.img"
rmt_start g file "$d/g.img"
rm -f "$d/b"
swt_start backend="$(rmt_uri g)" priority=10 timeout=1 grace=3 \
          backend="$d/b" capacity=16M priority=5 control="$ctl_sock"
"$swt_python" - "$swt_uri" "$d/g.pages" <<'EOF2'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
data = os.urandom(32 * 4096)
h.pwrite(data, 0)
h.flush()
h.shutdown()
open(sys.argv[2], "wb").write(data)
EOF2
(( $(ctl_get 0 used) > 0 )) || swt_fail "no page went to the remote"
run_check
(( check_code == 0 )) || swt_fail "check before the hang"
kill -STOP "${rmt_pid[g]}"
ctl_wait_for '! ctl check >/dev/null' 10 "an idle hung server was not noticed"
run_check
(( check_code == 1 )) && [[ $check_line == *"backend 0 ("*"away"* ]] ||
    swt_fail "check with an idle hung server"
kill -CONT "${rmt_pid[g]}"
ctl_wait_for 'ctl check >/dev/null' 10 "the server, going on, was not found again"
rmt_kill g
# (The state says failed once the server is given up; the reason follows
# at the control thread's next tick, within a second.)
ctl_wait_for 'ctl list --json | grep -q "\"failure\""' 15 \
    "a server gone past grace= while idle did not fail its backend"
[[ $(ctl_get 0 state) == failed ]] || swt_fail "given up, backend 0 is $(ctl_get 0 state)"
why=$(ctl_get 0 failure)
[[ $why == "its server is gone (unreachable past grace=)" ]] ||
    swt_fail "failure of a backend whose server is gone: '$why'"
run_check
(( check_code == 1 )) && [[ $check_line == *"failed: $why"* ]] ||
    swt_fail "check with a server given up"
expect_revive 1 0
grep -q "still not reachable" "$d/revive.out" ||
    swt_fail "a revive with the server away did not say why"
[[ $(ctl_get 0 state) == failed ]] || swt_fail "revived with no server"
# A page read meanwhile is lost (its one copy is unreachable), and stays
# lost after the revival.
"$swt_python" - "$swt_uri" <<'EOF2'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 0)
    sys.exit("page 0 read with its server gone")
except nbd.Error as e:
    print("ok: page 0 with its server gone:", e.string)
EOF2
(( $(ctl_get total lost) == 1 )) || swt_fail "lost: $(ctl_get total lost), not 1"
rmt_start g file "$d/g.img"
expect_revive 0 0
[[ $(ctl_get 0 state) == active && $(ctl_get 0 health) == up ]] ||
    swt_fail "revived, backend 0 is $(ctl_get 0 state) $(ctl_get 0 health)"
"$swt_python" - "$swt_uri" "$d/g.pages" <<'EOF2'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 0)
    sys.exit("page 0, lost, read after the revival")
except nbd.Error:
    pass
assert h.pread(31 * 4096, 4096) == open(sys.argv[2], "rb").read()[4096:], \
    "the pages on the revived backend"
h.shutdown()
print("ok: page 0 stays lost; 31 pages read back from the revived remote")
EOF2
writes=$(ctl_get 0 writes)
swt_write_random 16 100
(( $(ctl_get 0 writes) > writes )) || swt_fail "no new page went to the revived remote"
run_check
(( check_code == 2 )) || swt_fail "check after reviving the remote, a page lost"
swt_stop
rmt_stop g

# A lost page: one copy, its byte flipped in the file, then read.
rm -f "$d/a"
swt_start backend="$d/a" capacity=16M control="$ctl_sock"
swt_write_random 8
run_check
(( check_code == 0 )) || swt_fail "check before the loss"
"$swt_python" - "$d/a" "$swt_uri" <<'EOF'
import mmap, nbd, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
os.preadv(fd, [buf], 3 * 4096)              # page 2 is in slot 3
buf[10] ^= 1
os.pwritev(fd, [buf], 3 * 4096)
os.close(fd)
h = nbd.NBD()
h.connect_uri(sys.argv[2])
try:
    h.pread(4096, 2 * 4096)
    sys.exit("a flipped page read")
except nbd.Error:
    pass
h.shutdown()
EOF
run_check
(( check_code == 2 )) && [[ $check_line == "SWAPTIER CRITICAL: 1 page lost"* ]] ||
    swt_fail "check with a lost page"

# 90% in use: the lost page plus enough pages to reach it.
pages=$(ctl_get total pages)
"$swt_python" - "$swt_uri" "$pages" <<'EOF'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
n = int(sys.argv[2]) * 92 // 100
h.pwrite(b"\1" * (n * 4096), 8 * 4096)
h.flush()
h.shutdown()
EOF
run_check
(( check_code == 2 )) || swt_fail "check: the loss is the worst"
[[ $check_line == *"% of the device in use"* ]] ||
    swt_fail "check does not name the space"
swt_stop

# A fresh device, filled to 92%: a warning alone.
rm -f "$d/a"
swt_start backend="$d/a" capacity=16M control="$ctl_sock"
"$swt_python" - "$swt_uri" "$pages" <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\2" * (int(sys.argv[2]) * 92 // 100 * 4096), 0)
h.flush()
h.shutdown()
EOF
run_check
(( check_code == 1 )) && [[ $check_line == "SWAPTIER WARNING: 9"*"% of the device in use" ]] ||
    swt_fail "check with the device 92% full"
swt_stop

# No server at all.
run_check
(( check_code == 3 )) && [[ $check_line == "SWAPTIER UNKNOWN: cannot connect"* ]] ||
    swt_fail "check without a server"
echo "ok: check's exit codes and lines in each state"
