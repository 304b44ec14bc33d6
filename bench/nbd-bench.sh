#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier: random 4 KiB I/O through swaptier, compared with stock nbdkit
# and with the device itself.
#
# On one local file it measures fio random writes and random reads
# (bs=4k, iodepth 32, time based) three ways:
#
#   swaptier  nbdkit + swaptier.so with the file as its only backend,
#             fio's nbd engine over a Unix socket;
#   stock     nbdkit's own file plugin on the same file, default options,
#             fio's nbd engine over a Unix socket;
#   limit     fio with ioengine=libaio direct=1 on the file itself.
#
# Each target is first filled with one sequential write of the whole
# region, so that random reads hit mapped data everywhere (swaptier
# answers reads of unmapped pages with zeroes and no I/O at all).  The
# same region size is used for all three: what swaptier exports (the file
# less its reserve), rounded down to whole MiB.  Before every measured
# phase the file's pages are dropped from the page cache, so each phase
# starts cold.
#
# It prints figures and asserts nothing about speed.
#
# Environment:
#   BENCH_DIR       where the test file and sockets go (default /var/tmp)
#   BENCH_SIZE      size of the test file (default 1G; K, M, G suffixes)
#   BENCH_RUNTIME   seconds per measured phase (default 15)
#   BENCH_RAMP      seconds of warm up before each phase (default 2)
#   BENCH_IODEPTH   fio iodepth (default 32)
#   BENCH_JOBS      fio jobs of the random phases, each with its own NBD
#                   connection (or thread, for the limit) and BENCH_IODEPTH
#                   requests in flight (default 1)
#   BENCH_CEILING   1: also measure nbdkit's null plugin (no storage at
#                   all), the most the NBD path can carry here (default 0)
#   BENCH_THREADS   nbdkit --threads for both nbdkit runs (default 16)
#   BENCH_STOCK_OPTS  extra options for the stock file plugin (default
#                   none, e.g. "cache=none fadvise=random")
#   SWAPTIER_OPTS   extra swaptier keys (default none, e.g. "stripe=1";
#                   "mlock=off" when not root and RLIMIT_MEMLOCK is small)
#   SWAPTIER_PLUGIN the plugin (default ./swaptier.so at the top of the tree)
#   NBDKIT, FIO     the programs (default nbdkit and fio from PATH)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH_DIR=${BENCH_DIR:-/var/tmp}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_RUNTIME=${BENCH_RUNTIME:-15}
BENCH_RAMP=${BENCH_RAMP:-2}
BENCH_IODEPTH=${BENCH_IODEPTH:-32}
BENCH_JOBS=${BENCH_JOBS:-1}
BENCH_CEILING=${BENCH_CEILING:-0}
BENCH_THREADS=${BENCH_THREADS:-16}
BENCH_STOCK_OPTS=${BENCH_STOCK_OPTS:-}
SWAPTIER_OPTS=${SWAPTIER_OPTS:-}
SWAPTIER_PLUGIN=${SWAPTIER_PLUGIN:-$top/swaptier.so}
NBDKIT=${NBDKIT:-nbdkit}
FIO=${FIO:-fio}
PYTHON=/usr/bin/python3

bench_name=nbd-bench
# shellcheck source=bench/functions.sh disable=SC2034
source "$(dirname "$0")/functions.sh"

for prog in "$NBDKIT" "$FIO" "$PYTHON"; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done
[ -e "$SWAPTIER_PLUGIN" ] ||
    die "$SWAPTIER_PLUGIN not found (build: make -C lib && make -C plugin)"
"$FIO" --enghelp=nbd >/dev/null 2>&1 ||
    die "this fio has no nbd engine"
[ -d "$BENCH_DIR" ] || die "BENCH_DIR=$BENCH_DIR is not a directory"

size_bytes=$(numfmt --from=iec "$BENCH_SIZE") ||
    die "BENCH_SIZE=$BENCH_SIZE is not a size"
size_bytes=$(( size_bytes / 4096 * 4096 ))
[ "$size_bytes" -ge $(( 64 * 1024 * 1024 )) ] ||
    die "BENCH_SIZE=$BENCH_SIZE: use at least 64M"

# Everything we create lives in work/; everything we start is in pids.
bench_start_work
file=$work/disk.img

# Stop the nbdkit started last and wait for it to exit.
stop_nbdkit () {
    kill -TERM "$nbdkit_pid" 2>/dev/null || :
    wait "$nbdkit_pid" 2>/dev/null || :
}

# Run fio; $1 names the JSON output, the rest are fio options.
run_fio () {
    local out=$work/$1.json
    shift
    "$FIO" --output-format=json --output="$out" "$@" >/dev/null ||
        die "fio $* failed"
}

# The phases on target $1 (the fill, except for the ceiling, then random
# writes and random reads); the rest are fio options naming it.  Results
# land in $1.fill.json, $1.randwrite.json, $1.randread.json, and nbdkit's
# CPU time (microseconds) before and after each random phase in $1.RW.cpu.
bench_target () {
    local name=$1
    shift
    local common=(--bs=4k --size="$region" --group_reporting)

    if [ "$name" != ceiling ]; then
        echo "  $name: filling $region bytes" >&2
        run_fio "$name.fill" --name="$name-fill" "$@" "${common[@]}" \
            --numjobs=1 --rw=write --bs=1M --iodepth=8
    fi
    for rw in randwrite randread; do
        drop_cache "$file"
        echo "  $name: $rw for ${BENCH_RUNTIME}s" >&2
        [ "$name" = limit ] || cpu_us "$nbdkit_pid" >"$work/$name.$rw.cpu"
        run_fio "$name.$rw" --name="$name-$rw" "$@" "${common[@]}" \
            --rw="$rw" --numjobs="$BENCH_JOBS" --iodepth="$BENCH_IODEPTH" \
            --norandommap \
            --randrepeat=0 --time_based --ramp_time="$BENCH_RAMP" \
            --runtime="$BENCH_RUNTIME"
        [ "$name" = limit ] || cpu_us "$nbdkit_pid" >>"$work/$name.$rw.cpu"
    done
}

bench_machine
echo "  file           $size_bytes bytes, runtime ${BENCH_RUNTIME}s" \
     "(+${BENCH_RAMP}s ramp) per phase, bs 4k, $BENCH_JOBS job(s) x" \
     "iodepth $BENCH_IODEPTH," \
     "nbdkit --threads $BENCH_THREADS"

# The test file: allocated, then written once, so that no target pays for
# converting unwritten extents.
echo "nbd-bench: preparing $file" >&2
fallocate -l "$size_bytes" "$file" 2>/dev/null ||
    truncate -s "$size_bytes" "$file"
run_fio prepare --name=prepare --filename="$file" --ioengine=libaio \
    --direct=1 --rw=write --bs=1M --iodepth=8 --size="$size_bytes"

# (a) swaptier.  Its export (the file less the reserve) is the region for
# all three targets.
sock=$work/swaptier.sock
uri="nbd+unix:///?socket=$sock"
# shellcheck disable=SC2206
swaptier_args=("$SWAPTIER_PLUGIN" backend="$file" $SWAPTIER_OPTS)
echo "nbd-bench: swaptier" >&2
start_nbdkit "$sock" --threads "$BENCH_THREADS" "${swaptier_args[@]}"
if command -v nbdinfo >/dev/null 2>&1; then
    region=$(nbdinfo --size "$uri")
else
    # Exported pages: slots less max(1% of slots, 32 requests x 16 pages).
    slots=$(( size_bytes / 4096 ))
    spare=$(( (slots + 99) / 100 ))
    [ "$spare" -ge 512 ] || spare=512
    region=$(( (slots - spare) * 4096 ))
fi
# Whole MiB, so that the 1 MiB writes of the fill cover all of it.
region=$(( region / 1048576 * 1048576 ))
bench_target swaptier --ioengine=nbd --uri="$uri"
stop_nbdkit
swaptier_stats=$(grep '^swaptier: backend' "$nbdkit_log" || :)

# (b) stock nbdkit file plugin, default options (plus BENCH_STOCK_OPTS).
sock=$work/stock.sock
uri="nbd+unix:///?socket=$sock"
# shellcheck disable=SC2206
stock_args=(file file="$file" $BENCH_STOCK_OPTS)
echo "nbd-bench: stock nbdkit file" >&2
start_nbdkit "$sock" --threads "$BENCH_THREADS" "${stock_args[@]}"
bench_target stock --ioengine=nbd --uri="$uri"
stop_nbdkit

# (c) the device limit: libaio, O_DIRECT, on the file.
echo "nbd-bench: limit (libaio direct=1)" >&2
bench_target limit --filename="$file" --ioengine=libaio --direct=1

# The ceiling of the NBD path: nbdkit's null plugin, same threads.
if [ "$BENCH_CEILING" = 1 ]; then
    sock=$work/ceiling.sock
    echo "nbd-bench: ceiling (nbdkit null)" >&2
    start_nbdkit "$sock" --threads "$BENCH_THREADS" null size="$region"
    bench_target ceiling --ioengine=nbd --uri="nbd+unix:///?socket=$sock"
    stop_nbdkit
fi

drop_cache "$file"

# The table.
echo "nbd-bench: targets"
echo "  swaptier  nbdkit -f --threads $BENCH_THREADS -U SOCK" \
     "${swaptier_args[*]/#$top\//}"
echo "  stock     nbdkit -f --threads $BENCH_THREADS -U SOCK" \
     "${stock_args[*]}"
if [ -z "$BENCH_STOCK_OPTS" ]; then
    echo "            (file plugin defaults: cache=default fadvise=normal:" \
         "buffered I/O, writes land in the page cache, reads may hit it)"
fi
echo "  limit     fio ioengine=libaio direct=1 on the file"
echo "  region    $region bytes ($(( region / 4096 )) pages) for all three"
"$PYTHON" - "$work" "$BENCH_RUNTIME" "$BENCH_RAMP" \
         "$BENCH_JOBS x $BENCH_IODEPTH" <<'EOF'
import json, os, sys

work, runtime, ramp, iodepth = sys.argv[1:]
runtime, ramp = float (runtime), float (ramp)
targets = ("swaptier", "stock", "limit")

def job (name):
    with open (os.path.join (work, name + ".json")) as f:
        return json.load (f)["jobs"][0]

def k (x):
    return "%.1fk" % (x / 1000) if x >= 1000 else "%.0f" % x

def ratio (a, b):
    return "%.2f" % (a / b) if b > 0 else "-"

print ("nbd-bench: fill (sequential write, bs 1M, iodepth 8)")
for t in targets:
    print ("  %-9s %8.1f MiB/s" % (t, job (t + ".fill")["write"]["bw_bytes"]
                                   / 1048576))

print ("nbd-bench: random 4k, jobs x iodepth %s, %gs each" % (iodepth, runtime))
ceiling = os.path.exists (os.path.join (work, "ceiling.randwrite.json"))
cpu = []
for rw, d in (("randwrite", "write"), ("randread", "read")):
    iops = {t: job (t + "." + rw)[d]["iops"] for t in targets}
    print ("  %-10s swaptier %s IOPS  stock %s  limit %s  swaptier/limit %s  "
           "swaptier/stock %s" % (rw, k (iops["swaptier"]), k (iops["stock"]),
                                  k (iops["limit"]),
                                  ratio (iops["swaptier"], iops["limit"]),
                                  ratio (iops["swaptier"], iops["stock"])))
    # CPU per I/O.  nbdkit's comes from /proc and covers the ramp too, so
    # it is divided by the I/Os of the run scaled up to the ramp as well;
    # fio's comes from its own report.
    words = []
    for t in targets + (("ceiling",) if ceiling else ()):
        j = job (t + "." + rw)
        ios = max (j[d]["total_ios"], 1)
        secs = j["job_runtime"] / 1000
        fio_us = (j["usr_cpu"] + j["sys_cpu"]) / 100 * secs * 1e6 / ios
        path = os.path.join (work, t + "." + rw + ".cpu")
        if os.path.exists (path):
            with open (path) as f:
                before, after = (int (x) for x in f.read ().split ())
            ops = ios * (runtime + ramp) / runtime
            nbdkit_us = (after - before) / ops
            words.append ("%s nbdkit %.0f + fio %.0f" % (t, nbdkit_us, fio_us))
        else:
            words.append ("%s fio %.0f" % (t, fio_us))
    if ceiling:
        c = job ("ceiling." + rw)
        print ("  %-10s ceiling (nbdkit null) %s IOPS  swaptier/ceiling %s"
               % ("", k (c[d]["iops"]), ratio (iops["swaptier"], c[d]["iops"])))
    cpu.append ("  %-10s %s" % (rw, "  ".join (words)))
print ("nbd-bench: CPU microseconds per I/O (nbdkit approximate)")
print ("\n".join (cpu))
EOF
if [ -n "$swaptier_stats" ]; then
    echo "nbd-bench: swaptier counters at exit"
    while read -r line; do echo "  $line"; done <<<"$swaptier_stats"
fi
