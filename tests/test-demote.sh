#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Demotion (issue 13): with a small fast tier filled with cold pages, new
# pages written at a swap-like pace still land on the fast tier, because
# the mover moves the coldest pages down to the slow tier, and their reads
# are served from it.  With real components: nbdkit swaptier, fio's nbd
# engine on a Unix socket, swaptierctl.
#
# The scenario, run three times:
#   - region A (20 MiB, more than the 16 MiB fast tier holds) is written at
#     full speed and left alone for a few seconds (ages tick every 1 s),
#     so that the fast tier is full of cold pages;
#   - region B (8 MiB elsewhere on the device) is written at 4 MB/s, 4 KiB
#     requests, as a kernel swaps out under pressure;
#   - B is read back with fio verify=crc32c; the share of those reads
#     served by the fast tier comes from the per-backend read bytes of
#     swaptierctl stats --json, taken before and after that read;
#   - A is read back with verify too: demoted pages must read back exactly.
# Runs:
#   1. default settings (demotion on): share >= 0.9, the fast backend has
#      demoted pages, the demote line of list is not "off";
#   2. demote=off: share < 0.3 (the fast tier stays full of A), which shows
#      that the test can fail; the demote line says "off";
#   3. copies=2 over two fast files (priority 10) and two slow files
#      (priority 1), the fast ones in domains a and b and the slow ones
#      too, so that a demoted copy may only go to the slow file of its own
#      domain: data verifies, no copy is missing, share >= 0.9.
# Then bad demote keys are refused with the expected message, and
# near-identical good ones are accepted.  Both shares are printed.
# Nothing here is timed except the write pace of B; no speed is asserted
# (the share is where pages are, not how fast they are read).
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require nbdinfo timeout
swt_on_exit rmt_cleanup
d=$swt_tmpdir

# The regions, in bytes from the start of the device.
a_size=$(( 20 << 20 ))
b_off=$(( 32 << 20 ))
b_size=$(( 8 << 20 ))
# The swap-like write pace of region B, and how long A is left to cool.
b_rate=4m
cool=3

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# fio over one region with verify=crc32c headers in every 4 KiB block:
# region_fio OUT NAME OFFSET SIZE fio-args...  Writes the region
# sequentially (--do_verify=0: no read back), or with --verify_only reads
# it back and checks every block; the caller checks the status.
region_fio ()
{
    local out=$1 name=$2 off=$3 size=$4
    shift 4
    fio --output-format=json --output="$out" --ioengine=nbd --uri="$swt_uri" \
        --name="$name" --rw=write --bs=4k --offset="$off" --size="$size" \
        --verify=crc32c --verify_fatal=1 --verify_state_save=0 "$@"
}

# Run region_fio, fail with its output unless it succeeds.
region_run ()
{
    local rc=0
    region_fio "$@" || rc=$?
    (( rc == 0 )) || { cat "$1" >&2; swt_fail "fio $2 failed (status $rc)"; }
}

# Save swaptierctl stats --json to file $1.
stats_snap ()
{
    ctl stats --json >"$1" || swt_fail "swaptierctl stats --json failed"
}

# The share of read bytes served by the backends $3 (ids, comma separated)
# between the stats saved in $1 and in $2, of the $4 bytes that fio read
# (JSON $5 checked: no error, verified).  The mover's reads (demotion
# reads from the fast tier) count in the backends' read bytes too: the
# share printed is a lower bound, with any read bytes beyond what fio
# read counted against the fast tier.  Prints "SHARE" on stdout, the
# details on stderr.
read_share ()
{
    python3 - "$@" <<'EOF'
import json, sys
before, after, fast, want, fio_out = sys.argv[1:6]
fast = set(int(i) for i in fast.split(","))
want = int(want)
jobs = json.load(open(fio_out))["jobs"]
got = sum(j["read"]["io_bytes"] for j in jobs)
assert all(j["error"] == 0 for j in jobs), "fio reported an error"
assert got >= want, "fio read and verified %d bytes, expected %d" % (got, want)
b = {x["id"]: x["read_bytes"] for x in json.load(open(before))["backends"]}
a = {x["id"]: x["read_bytes"] for x in json.load(open(after))["backends"]}
delta = {i: a[i] - b.get(i, 0) for i in a}
total = sum(delta.values())
on_fast = sum(v for i, v in delta.items() if i in fast)
extra = max(0, total - got)
share = max(0, on_fast - extra) / got
sys.stderr.write("read phase: fio read %d bytes; backends read %s bytes "
                 "(%d beyond fio's); fast tier %d bytes: share %.3f\n" % (
                     got, ", ".join("%d: %d" % kv for kv in sorted(delta.items())),
                     extra, on_fast, share))
print("%.3f" % share)
EOF
}

# The scenario on the running server: fill A, let it cool, write B at a
# swap-like pace, read B back and measure the share of the fast backends
# $2 (ids, comma separated), then verify A.  $1 names the files, $3 is
# the write pace of B (default b_rate).  Sets share.
scenario ()
{
    local tag=$1 fast=$2 rate=${3:-$b_rate} state i
    region_run "$d/$tag-a.json" a 0 "$a_size" --do_verify=0 --iodepth=8
    echo "wrote region A ($a_size bytes) at full speed; $cool s to cool"
    sleep "$cool"
    ctl list
    region_run "$d/$tag-b.json" b "$b_off" "$b_size" --do_verify=0 \
        --iodepth=1 --rate="$rate"
    echo "wrote region B ($b_size bytes at offset $b_off) at $rate/s"
    # Let a demotion in progress end (the mover's reads of the fast tier
    # would count as its reads), 2 s at most; B is not cold yet.
    for (( i = 0; i < 20; i++ )); do
        state=$(ctl_raw_get demote state)
        [[ $state != running ]] && break
        sleep 0.1
    done
    ctl list
    stats_snap "$d/$tag-before.json"
    region_run "$d/$tag-bread.json" b "$b_off" "$b_size" --verify_only \
        --iodepth=8
    stats_snap "$d/$tag-after.json"
    share=$(read_share "$d/$tag-before.json" "$d/$tag-after.json" "$fast" \
                "$b_size" "$d/$tag-bread.json")
    ctl stats
    region_run "$d/$tag-aread.json" a 0 "$a_size" --verify_only --iodepth=8
    rmt_fio_check_read "$d/$tag-aread.json" "$a_size"
    echo "ok: region A ($a_size bytes) verifies"
}

# Fail unless the share $1 compares with $2 ("ge" or "lt") to $3.
check_share ()
{
    python3 -c 'import sys
s, op, lim = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
sys.exit(0 if (s >= lim if op == "ge" else s < lim) else 1)' "$@" ||
        swt_fail "share of B's reads on the fast tier is $1, expected $2 $3"
}

# Print the demote record of list --json on one line, and check it
# against the demote line of the raw list: state $1 expected ("on" for
# any state but off).
check_demote_line ()
{
    local want=$1 raw json
    raw=$(ctl_raw_get demote state)
    [[ $raw != none ]] || swt_fail "list has no demote line"
    json=$(ctl list --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["demote"]
print(d["state"], d["demoted"], d["rate"], d["limit"], d["low"], d["high"])')
    [[ ${json%% *} == "$raw" ]] ||
        swt_fail "list --json says demote state ${json%% *}, list says $raw"
    if [[ $want == off ]]; then
        [[ $raw == off ]] || swt_fail "demote state is $raw with demote=off"
    else
        [[ $raw =~ ^(idle|running|waiting)$ ]] ||
            swt_fail "demote state is '$raw', expected idle, running or waiting"
    fi
    echo "demote: state demoted rate limit low high = $json"
}

# =============================================================================
section "1: default settings (demotion on), fast 16M file over slow 64M remote"
rmt_start slow1 memory 64M
swt_start backend="$d/fast1" capacity=16M priority=10 \
          backend="$(rmt_uri slow1)" priority=1 control="$ctl_sock"
scenario on 0
share_on=$share
check_demote_line on
demoted=$(ctl_raw_num 0 demoted)
(( demoted > 0 )) || swt_fail "the fast backend has demoted=$demoted"
slow_demoted=$(ctl_raw_num 1 demoted)
(( slow_demoted == 0 )) ||
    swt_fail "the lowest level demoted $slow_demoted pages (it never demotes)"
total_demoted=$(ctl_raw_num demote demoted)
(( total_demoted >= demoted )) ||
    swt_fail "the demote line counts $total_demoted pages, backend 0 $demoted"
ctl list --json | python3 -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    assert "demoted" in b and "rereads" in b, "backend %d: no demoted/rereads" % b["id"]
' || swt_fail "list --json lacks demoted or rereads"
check_share "$share_on" ge 0.9
echo "ok: demotion on: share $share_on, backend 0 demoted $demoted pages"
swt_stop
swt_show_counters
swt_check_counters
rmt_stop slow1

# =============================================================================
section "2: demote=off, same setup"
rmt_start slow2 memory 64M
swt_start backend="$d/fast2" capacity=16M priority=10 \
          backend="$(rmt_uri slow2)" priority=1 control="$ctl_sock" demote=off
scenario off 0
share_off=$share
check_demote_line off
demoted=$(ctl_raw_num 0 demoted)
(( demoted == 0 )) || swt_fail "demote=off, yet backend 0 demoted $demoted pages"
check_share "$share_off" lt 0.3
echo "ok: demotion off: share $share_off"
swt_stop
swt_show_counters
swt_check_counters
rmt_stop slow2

# =============================================================================
section "3: copies=2, two fast files and two slow files in domains a and b"
rm -f "$d"/c-*
swt_start copies=2 control="$ctl_sock" \
          backend="$d/c-fast-a" capacity=16M priority=10 domain=a \
          backend="$d/c-fast-b" capacity=16M priority=10 domain=b \
          backend="$d/c-slow-a" capacity=64M priority=1 domain=a \
          backend="$d/c-slow-b" capacity=64M priority=1 domain=b
scenario copies2 0,1
share_c2=$share
check_demote_line on
d0=$(ctl_raw_num 0 demoted)
d1=$(ctl_raw_num 1 demoted)
(( d0 > 0 && d1 > 0 )) ||
    swt_fail "copies=2: fast backends demoted $d0 and $d1 pages, expected both > 0"
mapped=$(ctl_raw_num total mapped)
degraded=$(ctl_raw_num total degraded)
lost=$(ctl_raw_num total lost)
used=$(ctl_raw_sum_live used)
(( degraded == 0 && lost == 0 )) ||
    swt_fail "copies=2: degraded=$degraded lost=$lost after demotion"
(( used == 2 * mapped )) ||
    swt_fail "copies=2: $used slots used for $mapped pages, expected $(( 2 * mapped ))"
check_share "$share_c2" ge 0.9
echo "ok: copies=2: share $share_c2, fast backends demoted $d0 and $d1," \
     "$mapped pages in $used slots"
swt_stop
swt_show_counters
swt_check_counters

# =============================================================================
section "4: demote keys"
cfg=(backend="$d/k-fast" capacity=16M priority=10
     backend="$d/k-slow" capacity=32M priority=1)
swt_expect_error "demote=maybe: expected on or off" "${cfg[@]}" demote=maybe
swt_expect_error "promote=sometimes: expected on or off" "${cfg[@]}" \
    promote=sometimes
[[ $(swt_config_size "${cfg[@]}" promote=on) -gt 0 ]]
[[ $(swt_config_size "${cfg[@]}" demote=on) -gt 0 ]]
[[ $(swt_config_size "${cfg[@]}" demote=off) -gt 0 ]]
swt_expect_error "demote-low=60: the percentage must be 1 to 50" \
    "${cfg[@]}" demote-low=60
swt_expect_error "demote-low=0: the percentage must be 1 to 50" \
    "${cfg[@]}" demote-low=0
swt_expect_error "demote-low=%: not a percentage" "${cfg[@]}" demote-low=%
[[ $(swt_config_size "${cfg[@]}" demote-low=6) -gt 0 ]]
[[ $(swt_config_size "${cfg[@]}" demote-low=1) -gt 0 ]]
swt_expect_error "demote-high=51: the percentage must be 1 to 50" \
    "${cfg[@]}" demote-high=51
[[ $(swt_config_size "${cfg[@]}" demote-low=49 demote-high=50) -gt 0 ]]
swt_expect_error "demote-low=10% must be below demote-high=5%" \
    "${cfg[@]}" demote-low=10 demote-high=5
swt_expect_error "demote-low=10% must be below demote-high=10%" \
    "${cfg[@]}" demote-low=10 demote-high=10
[[ $(swt_config_size "${cfg[@]}" demote-low=5 demote-high=10) -gt 0 ]]
[[ $(swt_config_size "${cfg[@]}" demote-low=5% demote-high=10%) -gt 0 ]]
swt_expect_error "demote-rate=-1: expected a size a second" "${cfg[@]}" demote-rate=-1
swt_expect_error "demote-rate=100: less than a page" "${cfg[@]}" demote-rate=100
[[ $(swt_config_size "${cfg[@]}" demote-rate=1M) -gt 0 ]]
[[ $(swt_config_size "${cfg[@]}" demote-rate=0) -gt 0 ]]
echo "ok: bad demote keys refused, near-identical good ones accepted"

echo "--- share of B's reads served by the fast tier:" \
     "demotion on $share_on, off $share_off, copies=2 on $share_c2"
echo "PASS (${SECONDS} s)"
