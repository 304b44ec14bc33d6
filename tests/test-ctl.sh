#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Runtime control with swaptierctl, on a real nbdkit under a fio verify
# load (passes of random 4 KiB writes over the first 32 MiB, read back
# and checked) that never stops while the backends change:
#   1. list shows the three backends (table and JSON), stats shows I/O;
#   2. add a fourth backend of a higher priority: new writes land on it,
#      none on the others; fio writes the last 16 MiB once, there;
#   3. raise an old backend's priority above it: new writes move there;
#   4. remove the fourth: its used space drops to 0 while it drains, then
#      it disappears from the list; every fio pass verifies, and so do
#      the 16 MiB it held;
#   5. on a full device, removing a backend is refused and changes
#      nothing; so are removals of unknown ids.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require nbdcopy cmp

# Sum of field $1 over the backends whose ids are the other arguments.
ctl_sum ()
{
    local field=$1 id sum=0
    shift
    for id in "$@"; do
        sum=$((sum + $(ctl_get "$id" "$field")))
    done
    echo "$sum"
}

# --- A device of 48 MiB over three 64 MiB backends of priority 1.
swt_start backend="$swt_tmpdir/A" capacity=64M priority=1 \
          backend="$swt_tmpdir/B" capacity=64M priority=1 \
          backend="$swt_tmpdir/C" capacity=64M priority=1 \
          size=48M control="$ctl_sock"
[[ -S $ctl_sock ]] || swt_fail "no control socket at $ctl_sock"
[[ $(stat -c %a "$ctl_sock") == 600 ]] ||
    swt_fail "control socket mode $(stat -c %a "$ctl_sock"), expected 600"

ctl_load_start $((32 * 1048576))

# Write (or with --verify_only, check) the last 16 MiB of the device.
static_fio ()
{
    fio --ioengine=nbd --uri="$swt_uri" --name=static --rw=write --bs=64k \
        --offset=32M --size=16M --verify=crc32c --verify_fatal=1 \
        --verify_state_save=0 --output="$swt_tmpdir/static.out" "$@" ||
        { cat "$swt_tmpdir/static.out" >&2; swt_fail "static fio: $*"; }
}

# 1. list: three active backends, the table and the JSON agree.
ctl list | tee "$swt_tmpdir/list.txt"
for x in A B C; do
    grep -q "$swt_tmpdir/$x .*file .* 1 .*active" "$swt_tmpdir/list.txt" ||
        swt_fail "list does not show backend $x as an active file"
done
grep -q '^ *ID  TARGET' "$swt_tmpdir/list.txt" || swt_fail "no list header"
grep -q 'total' "$swt_tmpdir/list.txt" || swt_fail "no totals row"
[[ $(ctl_get total backends) -eq 3 ]] || swt_fail "total backends is not 3"
# 64 MiB less the header slot.
[[ $(ctl_get 2 capacity) -eq $((64 * 1048576 - 4096)) ]] ||
    swt_fail "backend 2 capacity $(ctl_get 2 capacity)"
[[ $(ctl_get drain id) == none ]] || swt_fail "a drain before any remove"
ctl_wait_for '(( $(ctl_sum writes 0 1 2) > 1000 ))' 30 "fio writes nothing"
ctl stats
ctl stats --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
assert len(doc["backends"]) == 3 and doc["total"]["writes"] > 0, doc
'
echo "ok: list and stats show the three backends at work"

# 2. A fourth backend, priority 5: new writes go there and only there.
out=$(ctl add "$swt_tmpdir/D" capacity=64M priority=5)
echo "$out"
[[ $out == "backend 3 added: $swt_tmpdir/D" ]] || swt_fail "add said: $out"
[[ $(ctl_get 3 state) == active && $(ctl_get 3 priority) -eq 5 ]] ||
    swt_fail "backend 3 is not active with priority 5"
ctl_wait_for '(( $(ctl_get 3 writes) > 0 ))' 30 "no write lands on D"
old=$(ctl_sum writes 0 1 2)
d0=$(ctl_get 3 writes)
ctl_wait_for '(( $(ctl_get 3 writes) > d0 + 2000 ))' 60 "D takes no writes"
# Requests in flight when D came may still land on the others.
(( $(ctl_sum writes 0 1 2) - old <= 64 )) ||
    swt_fail "A, B and C took $(( $(ctl_sum writes 0 1 2) - old )) writes" \
             "while D has the highest priority"
static_fio --do_verify=0
ctl list
echo "ok: new writes land on the new backend"

# 3. Raise A above D: new writes move to A (it can hold the device).
out=$(ctl priority 0 10)
[[ $out == "backend 0: priority 10" ]] || swt_fail "priority said: $out"
[[ $(ctl_get 0 priority) -eq 10 ]] || swt_fail "A's priority did not change"
sleep 0.2
d0=$(ctl_get 3 writes)
a0=$(ctl_get 0 writes)
ctl_wait_for '(( $(ctl_get 0 writes) > a0 + 2000 ))' 60 "A takes no writes"
(( $(ctl_get 3 writes) - d0 <= 64 )) ||
    swt_fail "D took $(( $(ctl_get 3 writes) - d0 )) writes after A" \
             "got a higher priority"
ctl list
echo "ok: new writes moved to the backend given a higher priority"

# 4. Remove D under load.  Not on a terminal and without --wait, remove
# returns at once; list shows D draining, its used space falling to 0.
held=$(ctl_get 3 used)
(( held >= 16 * 1048576 )) || swt_fail "D holds only $held bytes"
ctl remove 3 | tee "$swt_tmpdir/remove.txt"
grep -q "^removing backend 3: [0-9]* pages to move" "$swt_tmpdir/remove.txt" ||
    swt_fail "remove did not say it started"
seen=()
while :; do
    used=$(ctl_get 3 used)
    [[ $used == none ]] && break
    seen+=("$used")
    sleep 0.05
done
echo "D's used bytes while it drained: ${seen[*]:-(gone at once)}"
prev=$held
for used in "${seen[@]}"; do
    (( used <= prev )) || swt_fail "D's used space grew while it drained"
    prev=$used
done
ctl drain
[[ $(ctl_get drain state) == done && $(ctl_get drain remaining) -eq 0 &&
   $(ctl_get drain lost) -eq 0 && $(ctl_get drain id) -eq 3 ]] ||
    swt_fail "the drain did not end done with nothing left: $(ctl drain)"
[[ $(ctl_get total backends) -eq 3 ]] || swt_fail "D is still listed"
ctl list | grep -q "$swt_tmpdir/D" && swt_fail "D is still in the table"
# The others hold every page; the load goes on.
a0=$(ctl_get 0 writes)
ctl_wait_for '(( $(ctl_get 0 writes) > a0 + 1000 ))' 60 "no writes after"
# A file in use is refused; D's file, closed, can come back, under a
# new id, and go again.
rc=0
ctl add "$swt_tmpdir/A" 2>"$swt_tmpdir/refused.txt" || rc=$?
[[ $rc -eq 1 ]] && grep -q "is the same file as backend" "$swt_tmpdir/refused.txt" ||
    swt_fail "adding A twice: status $rc, $(cat "$swt_tmpdir/refused.txt")"
[[ $(ctl add "$swt_tmpdir/D") == "backend 4 added: $swt_tmpdir/D" ]] ||
    swt_fail "D could not be added again as backend 4"
ctl remove --wait 4 || swt_fail "removing the empty backend 4 failed"
[[ $(ctl_get 4 state) == none ]] || swt_fail "backend 4 is still listed"
ctl_load_stop 2
static_fio --verify_only
ctl list
swt_stop
swt_show_counters
swt_check_counters
[[ $(swt_nbackends) -eq 3 ]] || swt_fail "D has an unload line"
echo "ok: D drained to 0 and removed under load, every fio pass verified"

# 5. A full device: a backend's pages fit nowhere else, remove refuses.
pages=$(( 2 * 4095 - 512 ))
head -c $((pages * 4096)) /dev/urandom > "$swt_tmpdir/in"
swt_start backend="$swt_tmpdir/X" capacity=16M \
          backend="$swt_tmpdir/Y" capacity=16M control="$ctl_sock"
nbdcopy "$swt_tmpdir/in" "$swt_uri"
rc=0
ctl remove 0 2>"$swt_tmpdir/refused.txt" || rc=$?
cat "$swt_tmpdir/refused.txt"
[[ $rc -eq 1 ]] || swt_fail "remove on a full device exited with $rc"
grep -q "swaptierctl: backend 0 $swt_tmpdir/X cannot be removed: the other backends have" \
    "$swt_tmpdir/refused.txt" || swt_fail "no clear refusal message"
[[ $(ctl_get 0 state) == active && $(ctl_get drain id) == none ]] ||
    swt_fail "a refused remove changed the state"
rc=0
ctl remove 7 2>"$swt_tmpdir/refused.txt" || rc=$?
[[ $rc -eq 1 ]] && grep -q "no backend 7" "$swt_tmpdir/refused.txt" ||
    swt_fail "remove of an unknown id: status $rc, $(cat "$swt_tmpdir/refused.txt")"
nbdcopy "$swt_uri" "$swt_tmpdir/out"
cmp "$swt_tmpdir/in" "$swt_tmpdir/out" || swt_fail "data changed"
swt_stop
swt_check_counters
[[ ! -e $ctl_sock ]] || swt_fail "the control socket was not removed at exit"
echo "ok: removal refused on a full device, the data intact"
echo "PASS"
