#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier: what checksums and encryption (issue 14) cost a client, side
# by side in one run: the defaults (CRC32C and AES-256-XTS), encrypt=off
# (checksums only) and encrypt=off checksum=off (neither), on the same
# local file backend.  For each: 4 KiB random write and read IOPS at
# iodepth 32, the server's CPU time per request in each of those two
# phases (utime + stime of the nbdkit process from /proc), and the p50
# and p99 latency of 4 KiB random reads at queue depth 1 (the swap-in
# fault).  The modes take turns, ROUNDS times, each round starting with
# the next mode, and each figure is the median of its rounds, so that a
# slow minute of this machine does not land on one mode only; the last line gives the defaults against
# neither.  All that twice: with the backend file in BENCH_DIR (a disk:
# what a user runs) and in /dev/shm (memory, where no device hides what
# the codec costs the CPU).  Prints figures; asserts nothing.
#
# Environment: BENCH_DIR (default $TMPDIR, else /var/tmp), BENCH_PLACES
# (the directories for the backend file, default "$BENCH_DIR /dev/shm"),
# BENCH_SIZE (the backend, default 1G), BENCH_RUNTIME (seconds per phase, default
# 5), ROUNDS (default 3), SWAPTIER_PLUGIN (default ../swaptier.so from
# this directory), NBDKIT (default nbdkit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench_name=codec-bench
NBDKIT=${NBDKIT:-nbdkit}
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/var/tmp}}
# shellcheck source=functions.sh
source "$here/functions.sh"

plugin=${SWAPTIER_PLUGIN:-$here/../swaptier.so}
size=${BENCH_SIZE:-1G}
runtime=${BENCH_RUNTIME:-${RUNTIME:-5}}
rounds=${ROUNDS:-3}
modes=("defaults" "encrypt=off" "encrypt=off checksum=off")
read -r -a places <<<"${BENCH_PLACES:-$BENCH_DIR /dev/shm}"

for tool in fio python3; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
bench_start_work

# Run fio with the nbd engine on the device; JSON to $1, then options.
run_fio ()
{
    local out=$1
    shift
    fio --output-format=json --output="$out" --name=bench --ioengine=nbd \
        --uri="nbd+unix:///?socket=$work/sock" --bs=4k --size="$size" \
        --time_based --runtime="$runtime" "$@" >/dev/null
}

# A field of fio's JSON $1: iops of job 0 for $2 (read/write), or a
# percentile ($3) of its completion latency in microseconds.
fio_get ()
{
    python3 - "$@" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
if len(sys.argv) > 3:
    print("%.1f" % (j["clat_ns"]["percentile"][sys.argv[3]] / 1000))
else:
    print("%.0f" % j["iops"])
EOF
}

# One round of mode $1 (index $2) with the backend file $3: a line of
# figures appended to $work/figures.$2.
run_mode ()
{
    local keys=() c0 c1 c2 w r p50 p99
    [[ $1 == defaults ]] || read -r -a keys <<<"$1"
    rm -f "$3"
    start_nbdkit "$work/sock" --threads 32 "$plugin" "${keys[@]}" \
        backend="$3" capacity="$size" mlock=off
    # Fill the device, so that reads read backend slots.
    fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$work/sock" \
        --rw=write --bs=1M --iodepth=8 --size="$size" >/dev/null
    c0=$(cpu_us "$nbdkit_pid")
    run_fio "$work/w.json" --rw=randwrite --iodepth=32
    c1=$(cpu_us "$nbdkit_pid")
    run_fio "$work/r.json" --rw=randread --iodepth=32
    c2=$(cpu_us "$nbdkit_pid")
    run_fio "$work/q.json" --rw=randread --iodepth=1 \
        --percentile_list=50:99
    w=$(fio_get "$work/w.json" write)
    r=$(fio_get "$work/r.json" read)
    p50=$(fio_get "$work/q.json" read 50.000000)
    p99=$(fio_get "$work/q.json" read 99.000000)
    awk -v w="$w" -v r="$r" -v t="$runtime" -v a="$c0" -v b="$c1" \
        -v c="$c2" -v p50="$p50" -v p99="$p99" 'BEGIN {
        printf "%d %d %.2f %.2f %s %s\n", w, r, (b - a) / (w * t),
               (c - b) / (r * t), p50, p99 }' >>"$work/figures.$2"
    stop_run
    rm -f "$3"
}

for place in "${places[@]}"; do
    [[ -d $place && -w $place ]] || die "$place: not a writable directory"
    rm -f "$work"/figures.*
    # Round r starts with mode r mod 3, so that no mode always runs first.
    for (( round = 0; round < rounds; round++ )); do
        for (( j = 0; j < ${#modes[@]}; j++ )); do
            i=$(( (round + j) % ${#modes[@]} ))
            echo "$bench_name: $place: round $(( round + 1 )) of $rounds:" \
                 "${modes[i]}" >&2
            run_mode "${modes[i]}" "$i" "$place/codec-bench.$$.img"
        done
    done
    echo "backend file in $place ($(stat -f -c %T "$place"))"
    python3 - "$work" "${modes[@]}" <<'EOF'
import statistics, sys
work, modes = sys.argv[1], sys.argv[2:]
med = []
for i, _ in enumerate(modes):
    rows = [list(map(float, l.split())) for l in open("%s/figures.%d" % (work, i))]
    med.append([statistics.median(c) for c in zip(*rows)])
head = ("mode", "write IOPS", "read IOPS", "CPU us/write", "CPU us/read",
        "QD1 p50 us", "QD1 p99 us")
print("median of %d rounds, 4 KiB random, iodepth 32 (QD1: iodepth 1)"
      % len(rows))
print("%-26s %10s %10s %12s %12s %10s %10s" % head)
for m, f in zip(modes, med):
    print("%-26s %10.0f %10.0f %12.2f %12.2f %10.1f %10.1f" % (m, *f))
d, n = med[0], med[-1]
print("%-26s %9.1f%% %9.1f%% %+12.2f %+12.2f %+10.1f %+10.1f" %
      ("defaults against neither", 100 * (d[0] / n[0] - 1),
       100 * (d[1] / n[1] - 1), d[2] - n[2], d[3] - n[3], d[4] - n[4],
       d[5] - n[5]))
EOF
done
