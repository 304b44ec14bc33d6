#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What nbdkit's --threads costs and gives with swaptier on one local
# file backend, as the same-host setup runs it (mlock=on: every page the
# process touches stays locked): for each count of BENCH_THREAD_COUNTS,
# random 4 KiB writes then reads at iodepth BENCH_DEPTH through fio's nbd
# engine over a Unix socket, and the memory of the nbdkit process halfway
# through the reads, from /proc/PID/status: VmRSS (resident: with
# mlock=on every resident page is locked, so this is what the kernel
# cannot reclaim), VmLck (the size of the locked mappings, touched or
# not: with MCL_ONFAULT most of it is address space, such as malloc's
# arenas, not memory), and its number of threads.  It prints figures and
# asserts nothing about speed.  Needs root for mlock=on (else it runs
# with mlock=off and says so: VmLck is then 0).
#
# Environment: BENCH_DIR (default /var/tmp), BENCH_SIZE (backend file,
# default 1G), BENCH_RUNTIME (seconds per phase, default 5),
# BENCH_THREAD_COUNTS (default "4 16 32 64"), BENCH_DEPTH (default 64),
# SWAPTIER_PLUGIN, NBDKIT, FIO.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_RUNTIME=${BENCH_RUNTIME:-5}
BENCH_THREAD_COUNTS=${BENCH_THREAD_COUNTS:-4 16 32 64}
BENCH_DEPTH=${BENCH_DEPTH:-64}
SWAPTIER_PLUGIN=${SWAPTIER_PLUGIN:-$top/swaptier.so}
NBDKIT=${NBDKIT:-nbdkit}
FIO=${FIO:-fio}

bench_name=threads-bench
# shellcheck source=bench/functions.sh disable=SC2034
source "$(dirname "$0")/functions.sh"

[ -e "$SWAPTIER_PLUGIN" ] || die "$SWAPTIER_PLUGIN not found (build first)"
"$FIO" --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
mlock=on
if [ "$(id -u)" != 0 ]; then
    mlock=off
    echo "$bench_name: not root: mlock=off, so VmLck is 0" >&2
fi
bench_start_work
bench_machine

# IOPS of one fio phase ($1: randwrite or randread); halfway through it,
# the nbdkit process's VmLck, VmRSS and threads go to $work/$1.status
# (its worker threads exist only while a client is connected).
iops () {
    "$FIO" --name="$1" --ioengine=nbd --uri="nbd+unix:///?socket=$work/sock" \
        --rw="$1" --bs=4k --iodepth="$BENCH_DEPTH" --size="$region" \
        --norandommap --randrepeat=0 --time_based --runtime="$BENCH_RUNTIME" \
        --output-format=json --output="$work/$1.json" >/dev/null &
    local fio_pid=$!
    sleep "$(( (BENCH_RUNTIME + 1) / 2 ))"
    echo "$(status_field "$nbdkit_pid" VmLck)" \
         "$(status_field "$nbdkit_pid" VmRSS)" \
         "$(status_field "$nbdkit_pid" Threads)" >"$work/$1.status"
    wait "$fio_pid" || die "fio $1 failed"
    /usr/bin/python3 -c '
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
print("%.0f" % job[sys.argv[2]]["iops"])' "$work/$1.json" "${1#rand}"
}

# A field of /proc/PID/status (the Vm ones in MiB).
status_field () {
    awk -v k="$2:" '$1 == k { print ($3 == "kB" ? sprintf("%.1f", $2 / 1024) : $2) }' \
        "/proc/$1/status"
}

printf '%s: one file backend, iodepth %s, mlock=%s, %ss per phase\n' \
    "$bench_name" "$BENCH_DEPTH" "$mlock" "$BENCH_RUNTIME"
printf '%8s %10s %10s %10s %10s %8s\n' threads "write IOPS" "read IOPS" \
    "VmRSS MiB" "VmLck MiB" tasks
for t in $BENCH_THREAD_COUNTS; do
    rm -f "$work/a.img"
    start_nbdkit "$work/sock" --threads "$t" "$SWAPTIER_PLUGIN" \
        mlock="$mlock" backend="$work/a.img" capacity="$BENCH_SIZE"
    region=$(nbdinfo --size "nbd+unix:///?socket=$work/sock")
    region=$(( region / 1048576 * 1048576 ))
    "$FIO" --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$work/sock" \
        --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
    w=$(iops randwrite)
    r=$(iops randread)
    read -r lck rss tasks <"$work/randread.status"
    printf '%8s %10s %10s %10s %10s %8s\n' "$t" "$w" "$r" "$rss" "$lck" \
        "$tasks"
    stop_run
done
