#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier: what keeping two copies of every page costs, copies=2 against
# copies=1 on the same backends.
#
# Two setups, each with two backends of equal priority:
#
#   local   two files in a temporary directory, given domain=a and
#           domain=b (local files are all in one domain by default, and
#           copies=2 needs two);
#   remote  two nbdkit memory servers on Unix sockets behind nbdkit's
#           delay filter (BENCH_DELAY per read and per write); each
#           server is its own domain.
#
# For each setup and each value of BENCH_COPIES, nbdkit swaptier is
# started afresh on fresh backends, the region is filled with one
# sequential write (so that reads hit mapped pages: swaptier answers
# unmapped pages with zeroes and no I/O), and fio's nbd engine measures
# 4 KiB random writes and random reads at iodepth BENCH_IODEPTH (IOPS),
# then 4 KiB random writes and random reads at iodepth 1 (the p50 and p99
# of the total latency, submission to completion).  The four setups x
# copies print as one table, and the ratio copies=2/copies=1 under it.
#
# With copies=1 the two backends share the pages (round robin); with
# copies=2 each page is on both.  After each run the script prints where
# the pages went and which backends served the I/O (swaptierctl list), which
# shows whether the copies were made and which copy the reads came from.
#
# It prints figures and asserts nothing about speed.  The default run
# takes about 3 minutes.
#
# Environment:
#   BENCH_DIR         where the files and sockets go (default
#                     $TMPDIR, else /var/tmp; a file system that takes
#                     O_DIRECT, so not a tmpfs on older kernels)
#   BENCH_SIZE        the region of the device that fio uses (default 256M);
#                     each backend holds it once, plus 1/8 and 16M
#   BENCH_RUNTIME     seconds per measured phase (default 7; RUNTIME is
#                     accepted too)
#   BENCH_RAMP        seconds of warm up before each phase (default 1)
#   BENCH_IODEPTH     fio iodepth of the IOPS phases (default 32)
#   BENCH_COPIES      the copies= values compared (default "1 2")
#   BENCH_SETUPS      the setups run (default "local remote")
#   BENCH_DELAY       delay-read= and delay-write= of the remote servers
#                     (default 1ms)
#   BENCH_CONNECTIONS connections= per remote backend (default 4)
#   BENCH_THREADS     nbdkit --threads for swaptier (default 32)
#   SWAPTIER_OPTS     extra swaptier keys (default none, e.g. "stripe=1";
#                     "mlock=off" when not root and RLIMIT_MEMLOCK is small)
#   SWAPTIER_PLUGIN   the plugin (default ./swaptier.so at the top of the
#                     tree)
#   SWAPTIERCTL       swaptierctl (default ctl/swaptierctl of the tree)
#   NBDKIT, FIO       the programs (default nbdkit and fio from PATH)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/var/tmp}}
BENCH_SIZE=${BENCH_SIZE:-256M}
BENCH_RUNTIME=${BENCH_RUNTIME:-${RUNTIME:-7}}
BENCH_RAMP=${BENCH_RAMP:-1}
BENCH_IODEPTH=${BENCH_IODEPTH:-32}
BENCH_COPIES=${BENCH_COPIES:-1 2}
BENCH_SETUPS=${BENCH_SETUPS:-local remote}
BENCH_DELAY=${BENCH_DELAY:-1ms}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4}
BENCH_THREADS=${BENCH_THREADS:-32}
SWAPTIER_OPTS=${SWAPTIER_OPTS:-}
SWAPTIER_PLUGIN=${SWAPTIER_PLUGIN:-$top/swaptier.so}
SWAPTIERCTL=${SWAPTIERCTL:-$top/ctl/swaptierctl}
NBDKIT=${NBDKIT:-nbdkit}
FIO=${FIO:-fio}
PYTHON=/usr/bin/python3

bench_name=copies-bench
# shellcheck source=bench/functions.sh disable=SC2034
source "$(dirname "$0")/functions.sh"

for prog in "$NBDKIT" "$FIO" "$PYTHON" nbdinfo; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done
[ -e "$SWAPTIER_PLUGIN" ] ||
    die "$SWAPTIER_PLUGIN not found (build: make -C lib && make -C plugin)"
[ -x "$SWAPTIERCTL" ] || die "$SWAPTIERCTL not found (build: make -C ctl)"
"$FIO" --enghelp=nbd >/dev/null 2>&1 ||
    die "this fio has no nbd engine"
[ -d "$BENCH_DIR" ] || die "BENCH_DIR=$BENCH_DIR is not a directory"
for n in $BENCH_COPIES; do
    case $n in [1-3]) ;; *) die "BENCH_COPIES: $n is not 1, 2 or 3" ;; esac
done
for s in $BENCH_SETUPS; do
    case $s in local|remote) ;; *) die "BENCH_SETUPS: no setup $s" ;; esac
done

region=$(numfmt --from=iec "$BENCH_SIZE") ||
    die "BENCH_SIZE=$BENCH_SIZE is not a size"
# Whole MiB, so that the 1 MiB writes of the fill cover all of it.
region=$(( region / 1048576 * 1048576 ))
[ "$region" -ge $(( 16 * 1024 * 1024 )) ] ||
    die "BENCH_SIZE=$BENCH_SIZE: use at least 16M"
# Each backend holds the whole region (copies=2 puts it on both), plus
# room for the reserve and for the free slots that rewrites go to.
backend_size=$(( (region + region / 8 + 16 * 1048576) / 1048576 * 1048576 ))

# Everything we create lives in work/; everything we start is in pids.
bench_start_work


# Run fio; $1 names the JSON output, the rest are fio options.  A fio
# that outlives its phase by two minutes is stopped: the device hangs.
run_fio () {
    local out=$work/$1.json
    shift
    timeout -k 10 $(( BENCH_RUNTIME + BENCH_RAMP + 120 )) \
        "$FIO" --output-format=json --output="$out" "$@" >/dev/null ||
        die "fio $* failed or hung (see $work; swaptier's log:" \
            "$swaptier_log)"
}

# One run: setup $1 (local or remote) with copies=$2.  Results land in
# $1-c$2.{fill,randwrite,randread,qd1write,qd1read}.json and the
# placement in $1-c$2.list.json.
bench_run () {
    local setup=$1 copies=$2 name=$1-c$2 i sock args=() domains=(a b)
    run_pids=()
    for i in 1 2; do
        case $setup in
        local)
            # capacity= creates the file, allocated; fresh for each run.
            rm -f "$work/$name-$i.img"
            args+=(backend="$work/$name-$i.img" capacity="$backend_size")
            # domain= only where needed, so that copies=1 runs on a
            # plugin without copies= as well.
            [ "$copies" = 1 ] || args+=(domain="${domains[i-1]}")
            ;;
        remote)
            sock=$work/$name-r$i.sock
            start_nbdkit "$sock" --filter=delay memory "$backend_size" \
                delay-read="$BENCH_DELAY" delay-write="$BENCH_DELAY"
            args+=(backend="nbd+unix:///?socket=$sock"
                   connections="$BENCH_CONNECTIONS")
            ;;
        esac
    done
    [ "$copies" = 1 ] || args+=(copies="$copies")
    # shellcheck disable=SC2206
    args+=(control="$work/$name.ctl" $SWAPTIER_OPTS)
    run_args[$name]="${args[*]//$work\//}"

    sock=$work/$name.sock
    local uri="nbd+unix:///?socket=$sock"
    echo "copies-bench: $setup, copies=$copies" >&2
    start_nbdkit "$sock" --threads "$BENCH_THREADS" "$SWAPTIER_PLUGIN" \
        "${args[@]}"
    swaptier_log=$nbdkit_log
    local device_size
    device_size=$(nbdinfo --size "$uri")
    [ "$device_size" -ge "$region" ] ||
        die "$name: the device has $device_size bytes, less than the region" \
            "$region (the backends are too small for copies=$copies?)"

    local common=(--ioengine=nbd --uri="$uri" --bs=4k --size="$region")
    local timed=(--norandommap --randrepeat=0 --time_based
                 --ramp_time="$BENCH_RAMP" --runtime="$BENCH_RUNTIME")
    echo "  filling $region bytes" >&2
    run_fio "$name.fill" --name="$name-fill" "${common[@]}" \
        --rw=write --bs=1M --iodepth=8
    for rw in randwrite randread; do
        echo "  $rw, iodepth $BENCH_IODEPTH, ${BENCH_RUNTIME}s" >&2
        run_fio "$name.$rw" --name="$name-$rw" "${common[@]}" "${timed[@]}" \
            --rw="$rw" --iodepth="$BENCH_IODEPTH"
    done
    for rw in write read; do
        echo "  rand$rw, iodepth 1, ${BENCH_RUNTIME}s" >&2
        run_fio "$name.qd1$rw" --name="$name-qd1$rw" "${common[@]}" \
            "${timed[@]}" --rw="rand$rw" --iodepth=1 \
            --lat_percentiles=1 --percentile_list=50:99
    done
    "$SWAPTIERCTL" -s "$work/$name.ctl" -j list >"$work/$name.list.json" ||
        die "$name: swaptierctl list failed"
    stop_run
    run_load[$name]=$(cut -d' ' -f1 /proc/loadavg)
    grep -v -e 'PR_SET_IO_FLUSHER' -e '^swaptier: backend ' \
         -e 'aborting sleep because of server shut down' "$swaptier_log" \
         >"$work/$name.errors" || :
}

bench_machine
echo "  runs           region $region bytes, backends $backend_size bytes," \
     "${BENCH_RUNTIME}s (+${BENCH_RAMP}s ramp) per phase, bs 4k," \
     "nbdkit --threads $BENCH_THREADS"

declare -A run_args run_load
runs=()
start=$SECONDS
for setup in $BENCH_SETUPS; do
    for copies in $BENCH_COPIES; do
        bench_run "$setup" "$copies"
        runs+=("$setup-c$copies")
    done
done

echo "copies-bench: runs ($(( SECONDS - start ))s)"
for run in "${runs[@]}"; do
    printf '  %-10s load %s at the end; nbdkit --threads %s swaptier %s\n' \
        "$run" "${run_load[$run]}" "$BENCH_THREADS" "${run_args[$run]}"
done
case " $BENCH_SETUPS " in
*" remote "*)
    echo "  remote     servers: nbdkit --filter=delay memory $backend_size" \
         "delay-read=$BENCH_DELAY delay-write=$BENCH_DELAY" ;;
esac
"$PYTHON" - "$work" "$BENCH_RUNTIME" "$BENCH_IODEPTH" "${runs[@]}" <<'EOF'
import json, os, sys

work, runtime, iodepth = sys.argv[1:4]
runs = sys.argv[4:]

def job (name):
    with open (os.path.join (work, name + ".json")) as f:
        text = f.read ()
    # fio's nbd engine may say "connected to NBD server" before the JSON.
    return json.loads (text[text.index ("{"):])["jobs"][0]

def k (x):
    return "%.1fk" % (x / 1000) if x >= 1000 else "%.0f" % x

def lat (run, d):
    p = job (run + ".qd1" + d)[d]["lat_ns"].get ("percentile", {})
    def us (key):
        return "%.0f" % (p[key] / 1000) if key in p else "-"
    return "%s/%s" % (us ("50.000000"), us ("99.000000"))

rows = {}
for run in runs:
    setup, copies = run.rsplit ("-c", 1)
    w = job (run + ".randwrite")["write"]
    r = job (run + ".randread")["read"]
    rows[run] = (setup, copies, w["iops"], r["iops"],
                 lat (run, "write"), lat (run, "read"))

print ("copies-bench: 4k random; IOPS at iodepth %s, latency at iodepth 1 "
       "(p50/p99 us, submission to completion); %ss per phase"
       % (iodepth, runtime))
head = ("setup", "copies", "write IOPS", "read IOPS",
        "QD1 write p50/p99 us", "QD1 read p50/p99 us")
fmt = "  %-7s %6s %11s %10s %21s %20s"
print (fmt % head)
for run in runs:
    setup, copies, wi, ri, wl, rl = rows[run]
    print (fmt % (setup, copies, k (wi), k (ri), wl, rl))

# copies=N against copies=1 of the same setup.
ratios = []
for run in runs:
    setup, copies, wi, ri, wl, rl = rows[run]
    base = rows.get (setup + "-c1")
    if copies == "1" or base is None:
        continue
    ratios.append ("  %-7s copies=%s/copies=1: write IOPS %.2f, read IOPS %.2f"
                   % (setup, copies, wi / base[2] if base[2] else 0,
                      ri / base[3] if base[3] else 0))
if ratios:
    print ("copies-bench: ratios")
    print ("\n".join (ratios))

# Where the pages are at the end of each run, and who served the I/O.
print ("copies-bench: backends at the end of each run (swaptierctl list)")
for run in runs:
    with open (os.path.join (work, run + ".list.json")) as f:
        ls = json.load (f)
    t = ls["total"]
    extra = ""
    if "copies" in t:
        extra = ", copies %s, mapped %s pages, degraded %s" % (
            t["copies"], t.get ("mapped", "-"), t.get ("degraded", "-"))
    print ("  %-10s used %dM%s" % (run, t["used"] >> 20, extra))
    for b in ls["backends"]:
        bad = b["bad"] + b["lost"] + b["errors"]
        domain = b.get ("domain", "-").replace (work + "/", "")
        print ("    backend %d %-7s used %4dM  reads %6s  writes %6s  "
               "domain %s%s"
               % (b["id"], b["state"], b["used"] >> 20, k (b["reads"]),
                  k (b["writes"]), domain,
                  "  bad %d lost %d errors %d" % (b["bad"], b["lost"],
                                                  b["errors"])
                  if bad else ""))
    errors = open (os.path.join (work, run + ".errors")).read ().strip ()
    if errors:
        print ("    nbdkit said: " + errors.replace ("\n", "\n    nbdkit said: "))
EOF
