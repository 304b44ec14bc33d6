#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What the admin sees and can do while backends fail, on real nbdkit
# processes:
#   1. an add that connects to a server that does not answer (stopped
#      with SIGSTOP) does not hold up the other control clients: list
#      answers at once, and the add completes once the server runs again;
#   2. pages lost on a remote backend whose reads fail (error filter) are
#      counted on it in list and stats (table and JSON), the count stays
#      in the totals after the backend is removed, and reading a lost
#      page again and again logs a few lines, not one per read;
#   3. a removal keeps the reserve (reserve=) free on the other backends
#      and list --json reports that reserve as the spare;
#   4. a drain writes the pages it moves with FUA: their old copies are
#      freed at once;
#   5. SIGTERM while an add waits for a stopped server ends nbdkit
#      within seconds, not after the add's timeout=.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
rmt_setup
ctl_setup
d=$swt_tmpdir

section ()
{
    echo "=== $*"
}

# =============================================================================
section "1: a slow add does not block the control socket"
rmt_start s1 memory 64M
kill -STOP "${rmt_pid[s1]}"
swt_start backend="$d/l1" capacity=16M control="$ctl_sock"
ctl add "$(rmt_uri s1)" timeout=20 >"$d/add1.out" 2>&1 &
add_pid=$!
sleep 1
kill -0 "$add_pid" 2>/dev/null || {
    cat "$d/add1.out" >&2
    swt_fail "the add ended while its server was stopped"
}
timeout 5 "$ctl_tool" -s "$ctl_sock" list >"$d/list1.out" ||
    swt_fail "list did not answer within 5 s while an add was connecting"
kill -0 "$add_pid" 2>/dev/null ||
    swt_fail "list answered only once the add had ended"
grep -q "$d/l1" "$d/list1.out" || swt_fail "list does not show l1"
timeout 5 "$ctl_tool" -s "$ctl_sock" stats >/dev/null ||
    swt_fail "stats did not answer while an add was connecting"
echo "ok: list and stats answer while the add waits for its server"
# A client that sends an add and leaves at once: its add goes on without
# it, and does not hold up the others either.
CTL=$ctl_sock URI="$(rmt_uri s1)" python3 - <<'EOF'
import os
import socket

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["CTL"])
uri = os.environ["URI"].replace("%", "%25").replace(" ", "%20")
s.sendall(b"list\nadd " + uri.encode() + b" timeout=20\n")
s.close()
EOF
sleep 1
timeout 5 "$ctl_tool" -s "$ctl_sock" list >/dev/null ||
    swt_fail "list did not answer within 5 s after a client left its add"
echo "ok: a client that left during its add holds up nobody"
kill -CONT "${rmt_pid[s1]}"
wait "$add_pid" || { cat "$d/add1.out" >&2; swt_fail "the add failed"; }
cat "$d/add1.out"
# The add of the client that left was of the same export: refused or
# not, the first add's backend is there.
[[ $(ctl_get 1 state) == active ]] || swt_fail "the add left no backend"
[[ $(ctl_get 1 state) == active ]] || swt_fail "backend 1 is not active"
echo "ok: the add completed once its server ran again"
swt_stop
rmt_stop s1

# =============================================================================
section "2: lost pages are counted, also after a removal; messages limited"
rmt_start r2 --filter=error memory 64M error-pread-rate=100% \
    error-file="$d/r2.on"
swt_start backend="$(rmt_uri r2)" priority=10 \
          backend="$d/l2" capacity=64M priority=1 control="$ctl_sock"
URI=$swt_uri ON=$d/r2.on "$swt_python" - <<'EOF'
import os
import nbd

PAGE = 4096
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(os.urandom(20 * PAGE), 0)
h.flush()
open(os.environ["ON"], "w").close()
for p in range(20):
    try:
        h.pread(PAGE, p * PAGE)
    except nbd.Error:
        continue
    raise AssertionError("page %d read while its only copy fails" % p)
# The same lost page, many times.
for i in range(50):
    try:
        h.pread(PAGE, 0)
    except nbd.Error:
        continue
    raise AssertionError("lost page 0 read")
print("ok: 20 pages lost, page 0 read 50 more times, all EIO")
EOF
rm -f "$d/r2.on"
[[ $(ctl_get 0 lost) -eq 20 ]] || swt_fail "backend 0 lost $(ctl_get 0 lost), not 20"
[[ $(ctl_get 1 lost) -eq 0 ]] || swt_fail "backend 1 lost $(ctl_get 1 lost)"
[[ $(ctl_get total lost) -eq 20 ]] || swt_fail "total lost $(ctl_get total lost)"
ctl list | tee "$d/list2.out"
grep -q LOST "$d/list2.out" || swt_fail "list has no LOST column"
ctl stats --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
assert doc["backends"][0]["lost"] == 20, doc
assert doc["total"]["lost"] == 20, doc
'
n=$(grep -c "the page is lost" "$swt_log" || true)
echo "the log says $n times that a page read is lost"
((n >= 1 && n <= 10)) ||
    swt_fail "$n messages for 70 reads of lost pages: not rate limited"
echo "ok: lost pages counted per backend and in total, messages limited"

ctl remove --force 0 --wait
[[ $(ctl_get 0 state) == none ]] || swt_fail "backend 0 still listed"
[[ $(ctl_get total lost) -eq 20 ]] ||
    swt_fail "total lost $(ctl_get total lost) after the removal, not 20"
echo "ok: the lost pages stay counted after their backend is gone"
swt_stop
rmt_stop r2

# =============================================================================
section "3: a removal keeps the reserve free"
# Two 8 MiB files (about 2048 slots each), a reserve of 1024 slots.
swt_start backend="$d/a3" capacity=8M priority=1 \
          backend="$d/b3" capacity=8M priority=0 \
          reserve=4M control="$ctl_sock"
[[ $(ctl_get total spare) -eq 1024 ]] ||
    swt_fail "spare is $(ctl_get total spare), not the reserve of 1024 slots"
URI=$swt_uri "$swt_python" - <<'EOF'
import os
import nbd

h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(os.urandom(1100 * 4096), 0)
h.flush()
EOF
[[ $(ctl_get 0 used) -ge 1100 ]] || swt_fail "a3 holds $(ctl_get 0 used) pages"
# 1100 pages and the reserve of 1024 do not fit in b3's 2048 slots.
if ctl remove 0 >"$d/remove3.out" 2>&1; then
    cat "$d/remove3.out" >&2
    swt_fail "a removal that eats into the reserve was accepted"
fi
cat "$d/remove3.out"
grep -q "kept spare" "$d/remove3.out" || swt_fail "the refusal does not say why"
[[ $(ctl_get 0 state) == active ]] || swt_fail "a3 is $(ctl_get 0 state)"
echo "ok: the removal was refused and a3 stays active"
swt_stop

# =============================================================================
section "4: a drain writes the pages it moves with FUA"
# The old copy is freed as soon as the new one is published: the new one
# must be durable by then, not at some later flush.
rmt_start d4 --filter=log memory 64M logfile="$d/d4.log"
swt_start backend="$d/a4" capacity=16M priority=1 \
          backend="$(rmt_uri d4)" priority=0 control="$ctl_sock"
URI=$swt_uri "$swt_python" - <<'EOF2'
import os
import nbd

h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(os.urandom(300 * 4096), 0)
h.flush()
EOF2
# Writes at offset 0 are swaptier's header (claim, heartbeats).
data_writes ()
{
    grep ' Write ' "$d/d4.log" | grep -vc 'offset=0x0 ' || true
}
[[ $(data_writes) -eq 0 ]] ||
    swt_fail "d4 took $(data_writes) data writes before the drain"
ctl remove --force 0 --wait
python3 - "$d/d4.log" <<'EOF2'
import sys
writes = [l for l in open(sys.argv[1])
          if " Write " in l and "offset=0x0 " not in l]
assert writes, "the drain moved nothing to d4"
plain = [l for l in writes if "fua=1" not in l]
assert not plain, "moved without FUA: %s" % plain[0]
print("ok: %d writes of moved pages to d4, all with FUA" % len(writes))
EOF2
swt_stop

# =============================================================================
section "5: SIGTERM during an add to a stopped server ends promptly"
rmt_start s5 memory 64M
kill -STOP "${rmt_pid[s5]}"
swt_start backend="$d/l5" capacity=16M control="$ctl_sock"
ctl add "$(rmt_uri s5)" timeout=60 >"$d/add5.out" 2>&1 &
add_pid=$!
sleep 1
kill -0 "$add_pid" 2>/dev/null || swt_fail "the add ended before SIGTERM"
start=$SECONDS
kill -TERM "$swt_pid"
swt_wait_gone "$swt_pid" 10 ||
    swt_fail "nbdkit still runs 10 s after SIGTERM, an add connecting"
wait "$swt_pid" 2>/dev/null || true
swt_pid=
echo "ok: nbdkit exited $((SECONDS - start)) s after SIGTERM"
wait "$add_pid" 2>/dev/null || true
kill -CONT "${rmt_pid[s5]}"
rmt_stop s5
