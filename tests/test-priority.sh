#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Placement by priority:
#   - two backends of equal priority share the writes about equally (round
#     robin per allocation): each holds 40% to 60% of the slots in use;
#   - a backend of lower priority receives nothing while the higher ones
#     have room, and takes exactly the overflow once they are full;
#   - the data reads back intact (fio verify in run 1, nbdcopy + cmp in
#     run 2).
# Backends start empty at each start of the plugin, so each run sees a
# fresh device over the same files.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require fio nbdcopy nbdinfo cmp
fio --enghelp 2>/dev/null | grep -qw nbd || {
    echo "SKIP: fio has no nbd engine" >&2
    exit 77
}

# A and B: 16 MiB (4095 data slots after the header) each at priority
# 10; C: 64 MiB (16383 data slots) at priority 1.  Spare: max(1% = 246,
# 32 x stripe 16 = 512).
high=$(( 2 * 4095 ))
pages=$(( high + 16383 - 512 ))
tiers=(backend="$swt_tmpdir/A" capacity=16M priority=10
       backend="$swt_tmpdir/B" capacity=16M priority=10
       backend="$swt_tmpdir/C" capacity=64M priority=1)

# Fail unless backend $1 holds between 40% and 60% of $2 slots.
prio_check_share ()
{
    local used
    used=$(swt_stat "$1" used)
    if (( used * 100 < $2 * 40 || used * 100 > $2 * 60 )); then
        swt_fail "backend $1 holds $used of $2 slots, not 40%..60%"
    fi
    echo "ok: backend $1 holds $used of $2 slots"
}

# --- Run 1: 24 MiB (75% of the high tier), random 4 KiB and sequential
# 1 MiB writes, verified by fio.
echo "run 1: 6144 pages into the priority-10 pair"
swt_start "${tiers[@]}"
[[ $(nbdinfo --size "$swt_uri") -eq $(( pages * 4096 )) ]] ||
    swt_fail "export size $(nbdinfo --size "$swt_uri"), expected $(( pages * 4096 ))"
fio --ioengine=nbd --uri="$swt_uri" --verify=crc32c --do_verify=1 \
    --verify_fatal=1 --verify_state_save=0 --output="$swt_tmpdir/fio.out" \
    --name=rand --rw=randwrite --bs=4k --iodepth=32 --offset=0 --size=12M \
    --name=seq --rw=write --bs=1m --iodepth=4 --offset=12M --size=12M ||
    { cat "$swt_tmpdir/fio.out" >&2; swt_fail "fio failed"; }
# Both jobs ran and reported no error (fio exits non-zero on a verify
# error already).
[[ $(grep -c 'err= 0' "$swt_tmpdir/fio.out") -eq 2 ]] ||
    { cat "$swt_tmpdir/fio.out" >&2; swt_fail "fio reported errors"; }
swt_stop
swt_show_counters
swt_check_counters

written=$(( 24 * 256 ))
(( $(swt_stat 0 used) + $(swt_stat 1 used) == written )) ||
    swt_fail "A and B hold $(( $(swt_stat 0 used) + $(swt_stat 1 used) )) slots, expected $written"
prio_check_share 0 "$written"
prio_check_share 1 "$written"
(( $(swt_stat 2 used) == 0 )) ||
    swt_fail "C (priority 1) holds $(swt_stat 2 used) slots while A and B have room"
(( $(swt_stat 2 writes) == 0 )) ||
    swt_fail "C (priority 1) received $(swt_stat 2 writes) writes while A and B have room"

# --- Run 2: fill the whole device with random data; A and B fill up, C
# takes exactly the rest.  Then read it all back and compare.
echo "run 2: $pages pages, the whole device"
head -c $(( pages * 4096 )) /dev/urandom > "$swt_tmpdir/in"
swt_start "${tiers[@]}"
nbdcopy "$swt_tmpdir/in" "$swt_uri"
nbdcopy "$swt_uri" "$swt_tmpdir/out"
cmp "$swt_tmpdir/in" "$swt_tmpdir/out" ||
    swt_fail "the data read back differs from the data written"
echo "ok: $pages pages read back intact"
swt_stop
swt_show_counters
swt_check_counters

for id in 0 1; do
    (( $(swt_stat $id used) == 4095 )) ||
        swt_fail "backend $id (priority 10) holds $(swt_stat $id used) of 4095 slots after a full fill"
done
(( $(swt_stat 2 used) == pages - high )) ||
    swt_fail "C holds $(swt_stat 2 used) slots, expected the overflow $(( pages - high ))"
echo "ok: A and B full, C holds the $(( pages - high )) pages of overflow"
echo "PASS"
