#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What swaptierctl does on its own side (issue 15), against a real nbdkit
# swaptier:
#
#   1. add resolves a relative path from swaptierctl's directory, not
#      the plugin's (which is another).
#   2. Usage errors exit with 2, also those only the plugin's parser
#      knows (an unknown key, an unknown command, a bad id); a refusal
#      of a well-formed command exits with 1.
#   3. drain --json before any removal prints an empty object.
#   4. list shows a USE% column (used / size of each backend, as
#      swapctl -l) and a line on the device: its size, spare, use.
#   5. help lists the commands, swaptierctl's own too, and every key
#      of add.
#   6. The audit trail: each add, priority and remove, and each line
#      refused, is logged with the uid and pid that sent it and the
#      outcome, as a notice (not as nbdkit's "error:"); a client of
#      another user (through a socket opened to all) is told why it is
#      refused, and that is logged; warnings print as "warning:", not
#      "error: warning:".
#   7. Steering a removal: one that leaves the device overcommitted is
#      refused without --force, saying so; rate= paces it (progress
#      lines give the rate and the time left); cancel stops it and the
#      backend is back in service; the end gives one count of what
#      became of every page, and remove --wait exits with 1 when pages
#      were lost (reads of a remote failing with nbdkit's error filter).
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require_python_nbd
d=$swt_tmpdir
mkdir "$d/elsewhere"

swt_start backend="$d/a" capacity=16M control="$ctl_sock"

# --- 1 ----------------------------------------------------------------------
out=$(cd "$d/elsewhere" && ctl add rel.img capacity=8M)
echo "$out"
[[ $out == "backend 1 added: $d/elsewhere/rel.img" ]] || swt_fail "add said: $out"
[[ $(ctl_get 1 target) == "$d/elsewhere/rel.img" && -f $d/elsewhere/rel.img ]] ||
    swt_fail "the relative path was not made absolute: $(ctl_get 1 target)"
echo "ok: a relative path is resolved on swaptierctl's side"

# --- 2 ----------------------------------------------------------------------
expect_code ()
{
    local want=$1 rc=0
    shift
    ctl "$@" >"$d/out" 2>&1 || rc=$?
    echo "swaptierctl $*: exit $rc: $(head -1 "$d/out")"
    (( rc == want )) || swt_fail "swaptierctl $*: exit $rc, not $want"
}
expect_code 2 add "$d/x" bogus=1
grep -q "unknown key 'bogus'" "$d/out" || swt_fail "no reason for bogus="
expect_code 2 frobnicate
expect_code 2 priority x 1
expect_code 2 remove
expect_code 2 add "$d/x" capacity=1Q
[[ ! -e $d/x ]] || swt_fail "a refused add created its file"
expect_code 1 add "$d/a"
grep -q "same file as backend" "$d/out" || swt_fail "no reason for the refusal"
expect_code 1 remove 9
echo "ok: usage errors exit with 2, refusals with 1"

# --- 3 ----------------------------------------------------------------------
[[ $(ctl drain --json) == "{}" ]] ||
    swt_fail "drain --json without a removal: $(ctl drain --json)"
echo "ok: drain --json prints {} before any removal"

# --- 4 ----------------------------------------------------------------------
swt_write_random 1000
ctl list | tee "$d/list.txt"
head -1 "$d/list.txt" | grep -q 'USE%$' || swt_fail "list has no USE% column"
ctl list --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = {l.split()[0]: l.split()[-1] for l in open(sys.argv[1])
        if l.split() and l.split()[0].isdigit()}
for b in doc["backends"]:
    want = "%d%%" % (b["used"] * 100 // b["capacity"])
    assert rows[str(b["id"])] == want, (b["id"], rows, want)
t = doc["total"]
line = [l for l in open(sys.argv[1]) if l.startswith("device: ")]
assert len(line) == 1, line
assert line[0].rstrip().endswith(", %d%% in use" % (t["mapped"] * 100 // t["pages"])), line
print("ok: USE% per backend and the device line agree with list --json")
' "$d/list.txt"

# --- 5 ----------------------------------------------------------------------
ctl help >"$d/help.txt"
cat "$d/help.txt"
for verb in list stats add priority remove drain help check metrics; do
    grep -q "^$verb\b" "$d/help.txt" || swt_fail "help does not list $verb"
done
grep -q "^add .*domain=NAME.*encrypt=BOOL" "$d/help.txt" ||
    swt_fail "help does not give every key of add"
echo "ok: help lists the commands"

# --- 6 ----------------------------------------------------------------------
ctl priority 1 3 >/dev/null
ctl remove 1 --wait >/dev/null
# A typo sent as is (swaptierctl would refuse it itself).
ctl_raw frobnicate >/dev/null || true
# Open to all: the socket, and the way to it.
chmod 0666 "$ctl_sock"
chmod o+x "$d"
swt_require setpriv
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$ctl_tool" -s "$ctl_sock" list >"$d/nobody.out" 2>&1 || rc=$?
cat "$d/nobody.out"
(( rc == 1 )) && grep -q "not allowed: uid 65534 is neither root nor the plugin's user" \
    "$d/nobody.out" || swt_fail "a client of another user was not told why"
swt_stop
grep 'control: uid' "$swt_log"
for want in "add $d/elsewhere/rel.img capacity=8M: ok id=1" \
            "priority 1 3: ok id=1 priority=3" "remove 1: ok" \
            "add $d/a: error backend $d/a is the same file as backend" \
            "frobnicate: error unknown command 'frobnicate'"; do
    grep -q "^nbdkit: swaptier: control: uid 0 pid [0-9]*: $want" "$swt_log" ||
        swt_fail "the audit trail lacks: $want"
done
# swaptierctl parses before it sends: its refusals never reach the log.
if grep -q "bogus" "$swt_log"; then
    swt_fail "a line swaptierctl refused reached the plugin"
fi
grep -q "^nbdkit: swaptier: control: uid 65534 pid [0-9]*: refused: not allowed" \
    "$swt_log" || swt_fail "the refused client is not in the log"
if grep -q "error:.*same file as backend\|error: warning" "$swt_log"; then
    swt_fail "a refusal or a warning is logged as an error"
fi
# A warning: mlock=off with encryption.
swt_start backend="$d/a" capacity=16M mlock=off
swt_stop
grep -q "^nbdkit: swaptier: warning: mlock=off" "$swt_log" ||
    swt_fail "the mlock=off warning is not a warning: $(grep mlock "$swt_log")"
echo "ok: the audit trail, the refused client, warnings"

# --- 7 ----------------------------------------------------------------------
source "$(dirname "$0")/remote-functions.sh"
rmt_setup
swt_on_exit rmt_cleanup
rm -f "$d/a" "$d/b"
swt_start backend="$d/a" capacity=16M backend="$d/b" capacity=16M \
          demote=off control="$ctl_sock"
swt_write_random 2000
expect_code 1 remove 1
grep -q "give force=true (swaptierctl remove --force)" "$d/out" ||
    swt_fail "an overcommitting removal was not refused with the reason"
[[ $(ctl_get 1 state) == active ]] || swt_fail "the refusal changed backend 1"
# 16K a second: 4 pages a second, about four minutes for its pages.
ctl remove --force --wait 1 rate=16K >"$d/follow.out" 2>&1 &
follower=$!
ctl_wait_for 'grep -q "pages/s, about" "$d/follow.out"' 20 \
    "no rate and time left in the progress"
cat "$d/follow.out"
[[ $(ctl_get drain state) == running && $(ctl_get drain limit) -eq 16384 ]] ||
    swt_fail "drain: $(ctl drain --json)"
out=$(ctl cancel)
[[ $out == "removal of backend 1 cancelled: it is back in service" ]] ||
    swt_fail "cancel said: $out"
rc=0
wait "$follower" || rc=$?
(( rc == 1 )) || swt_fail "remove --wait of a cancelled removal exited with $rc"
[[ $(ctl_get drain state) == cancelled && $(ctl_get 1 state) == active ]] ||
    swt_fail "after cancel: drain $(ctl_get drain state), backend 1 $(ctl_get 1 state)"
expect_code 1 cancel
grep -q "no removal is under way" "$d/out" || swt_fail "cancel twice: $(cat "$d/out")"
swt_stop

# Pages lost during a removal: its reads fail.
rmt_start e2 --filter=error memory 32M error=EIO error-pread-rate=100% \
    error-file="$d/e2.on"
rm -f "$d/a" "$d/e2.on"
swt_start backend="$(rmt_uri e2)" priority=10 backend="$d/a" capacity=64M \
          priority=5 demote=off control="$ctl_sock"
swt_write_random 64
touch "$d/e2.on"
rc=0
ctl remove --force 0 --wait >"$d/lost.out" 2>&1 || rc=$?
cat "$d/lost.out"
(( rc == 1 )) || swt_fail "a removal that lost pages exited with $rc"
grep -q "^backend 0 removed: of its [0-9]* pages, [0-9]* moved, [1-9][0-9]* lost" "$d/lost.out" &&
grep -q "pages were lost" "$d/lost.out" ||
    swt_fail "the end of a removal that lost pages does not say so"
swt_stop
rmt_stop e2
echo "ok: removals refused without --force, paced, cancelled; losses exit 1"
