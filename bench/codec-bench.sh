#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier: what checksums and encryption (issue 14) cost a client, side
# by side in one run: the defaults (CRC32C and AES-256-XTS), encrypt=off
# (checksums only) and encrypt=off checksum=off (neither), on the same
# local file backend.  For each: 4 KiB random write and read IOPS at
# iodepth 32, the p50 and p99 latency of 4 KiB random reads at queue
# depth 1 (the swap-in fault), and the server's CPU time per request
# (utime + stime of the nbdkit process from /proc, over the iodepth 32
# phases).  Prints figures; asserts nothing.
#
# Environment: BENCH_DIR (default $TMPDIR, else /var/tmp), BENCH_SIZE
# (the backend, default 1G), BENCH_RUNTIME (seconds per phase, default
# 5), SWAPTIER_PLUGIN (default ../swaptier.so from this directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
plugin=${SWAPTIER_PLUGIN:-$here/../swaptier.so}
dir=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/codec-bench.XXXXXX")
size=${BENCH_SIZE:-1G}
runtime=${BENCH_RUNTIME:-${RUNTIME:-5}}
hz=$(getconf CLK_TCK)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

# The CPU time of process $1 so far, in microseconds.
cpu_us ()
{
    awk -v hz="$hz" '{ print ($14 + $15) * 1000000 / hz }' "/proc/$1/stat"
}

# Run fio with the nbd engine on the device; JSON to $1, then options.
run_fio ()
{
    local out=$1
    shift
    fio --output-format=json --output="$out" --name=bench --ioengine=nbd \
        --uri="nbd+unix:///?socket=$dir/sock" --bs=4k --size="$size" \
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

printf '%-28s %10s %10s %8s %8s %10s\n' mode "write IOPS" "read IOPS" \
    "QD1 p50" "QD1 p99" "CPU us/req"
for mode in "defaults" "encrypt=off" "encrypt=off checksum=off"; do
    keys=()
    [[ $mode == defaults ]] || read -r -a keys <<<"$mode"
    rm -f "$dir/backend" "$dir/pid"
    rm -f "$dir/sock"
    nbdkit -U "$dir/sock" -P "$dir/pid" --threads 32 "$plugin" \
        "${keys[@]}" backend="$dir/backend" capacity="$size" mlock=off \
        2>"$dir/log" || { cat "$dir/log" >&2; exit 1; }
    pid=$(cat "$dir/pid")
    # Fill the device, so that reads read backend slots.
    fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$dir/sock" \
        --rw=write --bs=1M --iodepth=8 --size="$size" >/dev/null
    c0=$(cpu_us "$pid")
    run_fio "$dir/w.json" --rw=randwrite --iodepth=32
    run_fio "$dir/r.json" --rw=randread --iodepth=32
    c1=$(cpu_us "$pid")
    run_fio "$dir/q.json" --rw=randread --iodepth=1 \
        --percentile_list=50:99
    w=$(fio_get "$dir/w.json" write)
    r=$(fio_get "$dir/r.json" read)
    p50=$(fio_get "$dir/q.json" read 50.000000)
    p99=$(fio_get "$dir/q.json" read 99.000000)
    per=$(awk -v c="$(echo "$c1 - $c0" | bc)" -v n="$(( (w + r) * runtime ))" \
          'BEGIN { printf "%.1f", c / n }')
    printf '%-28s %10s %10s %8s %8s %10s\n' "$mode" "$w" "$r" "$p50" "$p99" \
        "$per"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    pid=
done
