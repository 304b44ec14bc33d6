#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Scaling of remote backends: four equal-priority remote backends against
# one, each an nbdkit memory server behind the delay filter (2 ms per read
# and per write by default), 4 KiB random writes then random reads at
# iodepth 32 through fio's nbd engine.  Prints IOPS and the ratio.  A
# benchmark: it asserts nothing about speed.
#
# Environment: BENCH_RUNTIME (seconds per fio run, default 15),
# BENCH_DELAY (default 2ms), BENCH_SIZE (device region used, default 256M),
# BENCH_CONNECTIONS (connections= per remote backend, default 4),
# BENCH_THREADS (nbdkit --threads for swaptier, default 32),
# BENCH_IODEPTH (fio's iodepth, default 32).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
plugin="$top/swaptier.so"
runtime=${BENCH_RUNTIME:-15}
delay=${BENCH_DELAY:-2ms}
size=${BENCH_SIZE:-256M}
connections=${BENCH_CONNECTIONS:-4}
threads=${BENCH_THREADS:-32}
iodepth=${BENCH_IODEPTH:-32}

[ -e "$plugin" ] || { echo "remote-bench: build first ($plugin missing)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/swaptier-remote-bench.XXXXXX")
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Start nbdkit with the given arguments on socket $1; wait for the socket.
bench_nbdkit () {
  local sock=$1; shift
  nbdkit -f -U "$sock" "$@" >/dev/null 2>>"$dir/nbdkit.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
  echo "remote-bench: nbdkit on $sock did not start" >&2
  cat "$dir/nbdkit.log" >&2
  exit 1
}

# IOPS of one fio run ($1: randwrite or randread) against socket $2.
bench_fio () {
  fio --name=bench --ioengine=nbd --uri="nbd+unix:///?socket=$2" \
    --rw="$1" --bs=4k --iodepth="$iodepth" --size="$size" --time_based \
    --runtime="$runtime" --output-format=json \
  | /usr/bin/python3 -c '
import json, sys
text = sys.stdin.read()
job = json.loads(text[text.index("{"):])["jobs"][0]   # skip fio chatter
side = "write" if sys.argv[1] == "randwrite" else "read"
print("%.0f" % job[side]["iops"])' "$1"
}

# Measure with n remote backends; sets write_iops and read_iops.
bench_tiers () {
  local n=$1 args=() i
  for i in $(seq "$n"); do
    bench_nbdkit "$dir/r$n-$i.sock" --filter=delay memory 1G \
      wdelay="$delay" rdelay="$delay"
    args+=(backend="nbd+unix:///?socket=$dir/r$n-$i.sock"
           connections="$connections")
  done
  bench_nbdkit "$dir/sw$n.sock" --threads "$threads" "$plugin" "${args[@]}"
  # Fill the region first so that reads find mapped pages.
  fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$dir/sw$n.sock" \
    --rw=write --bs=1m --iodepth=8 --size="$size" >/dev/null
  write_iops=$(bench_fio randwrite "$dir/sw$n.sock")
  read_iops=$(bench_fio randread "$dir/sw$n.sock")
}

echo "remote-bench: $(nproc) cores; delay $delay per request; $connections" \
     "connections per backend; nbdkit --threads $threads; iodepth $iodepth;" \
     "${runtime}s per run"
bench_tiers 1
w1=$write_iops r1=$read_iops
bench_tiers 4
/usr/bin/python3 - "$w1" "$r1" "$write_iops" "$read_iops" <<'PY'
import sys
w1, r1, w4, r4 = map(float, sys.argv[1:])
print("randwrite  1 backend %7.0f IOPS   4 backends %7.0f IOPS   scaling %.2fx"
      % (w1, w4, w4 / w1))
print("randread   1 backend %7.0f IOPS   4 backends %7.0f IOPS   scaling %.2fx"
      % (r1, r4, r4 / r1))
PY
