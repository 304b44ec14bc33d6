#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier beside what surrounds it, in one table: 4 KiB random I/O on
# one file system, from the device itself through the NBD transport and
# stock nbdkit to swaptier in its usual setups.  The rows (BENCH_ROWS):
#
#   limit         the device: fio ioengine=libaio direct=1 on a file, no
#                 NBD at all
#   memory        nbdkit memory: what the NBD transport carries at most
#   file          stock nbdkit file on that file, buffered (cache=default)
#   file-nocache  the same with cache=none
#   swaptier      swaptier on one local file backend, its defaults: pages
#                 checksummed (CRC32C) and encrypted (AES-256-XTS)
#   encrypt-off   the same with encrypt=off (checksums only)
#   striped       two file backends of equal priority: pages striped
#   copies        two file backends, domain=a and domain=b, copies=2
#
# The columns: IOPS of random reads and of random writes at iodepth 32;
# the p50 and p99 latency (submission to completion, microseconds) of
# random reads and of random writes at queue depth 1 (a swap-in fault
# waits on one); and the server's CPU time per request in the two
# iodepth 32 phases: utime + stime of the nbdkit process (all its
# threads) from /proc over the phase, divided by the requests fio
# completed in it.  The limit row has no server.
#
# Every NBD row runs nbdkit --threads BENCH_THREADS, fio's nbd engine
# over a Unix socket; swaptier runs with mlock=off (no root needed).
# Each file is BENCH_SIZE bytes, in a temporary directory of BENCH_DIR,
# and every row uses the same region: what swaptier exports on one such
# file (the file less its reserve), in whole MiB.  Reads hit mapped data:
# the file of the limit and file rows is written in full once at the
# start, and the devices of the memory and swaptier rows (fresh for each
# of their runs: swaptier and nbdkit memory answer unwritten pages with
# zeroes and no I/O) before their phases.  Before each row the file's
# dirty pages are written back and its pages dropped from the page cache.
# The rows take turns, BENCH_ROUNDS times, each round starting one row
# further, and each figure is the median of its rounds, so that a slow
# minute of the machine does not land on one row only.
#
# The machine, the table and the command of each row go to stdout and to
# $BENCH_OUT/compare.txt; a plot, IOPS and QD1 p50 latency per row, to
# $BENCH_OUT/compare.png, drawn by gnuplot (Debian: gnuplot-nox; without
# it, the text only).  It prints figures and asserts nothing about speed.
# The default run takes about 10 minutes.
#
# Environment:
#   BENCH_DIR        where the files and sockets go (default /var/tmp; a
#                    file system that takes O_DIRECT)
#   BENCH_SIZE       size of each file (default 1G; at least 16M)
#   BENCH_RUNTIME    seconds per measured phase (default 5)
#   BENCH_ROUNDS     rounds (default 3)
#   BENCH_THREADS    nbdkit --threads of every NBD row (default 32)
#   BENCH_ROWS       the rows, in the order of the table (default all:
#                    "limit memory file file-nocache swaptier encrypt-off
#                    striped copies")
#   BENCH_OUT        where compare.txt and compare.png go (default the
#                    current directory)
#   BENCH_KEEP       1: keep the work directory (fio's JSON, the logs)
#   SWAPTIER_PLUGIN  the plugin (default ./swaptier.so at the top of the
#                    tree)
#   NBDKIT, FIO      the programs (default nbdkit and fio from PATH)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

all_rows="limit memory file file-nocache swaptier encrypt-off striped copies"
BENCH_DIR=${BENCH_DIR:-/var/tmp}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_RUNTIME=${BENCH_RUNTIME:-5}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_THREADS=${BENCH_THREADS:-32}
BENCH_ROWS=${BENCH_ROWS:-$all_rows}
BENCH_OUT=${BENCH_OUT:-.}
SWAPTIER_PLUGIN=${SWAPTIER_PLUGIN:-$top/swaptier.so}
NBDKIT=${NBDKIT:-nbdkit}
FIO=${FIO:-fio}
PYTHON=/usr/bin/python3

bench_name=compare
# shellcheck source=bench/functions.sh disable=SC2034
source "$(dirname "$0")/functions.sh"

declare -A label=(
    [limit]="device: fio libaio direct=1"
    [memory]="nbdkit memory"
    [file]="nbdkit file cache=default"
    [file-nocache]="nbdkit file cache=none"
    [swaptier]="swaptier 1 backend"
    [encrypt-off]="swaptier 1 backend encrypt=off"
    [striped]="swaptier 2 backends striped"
    [copies]="swaptier 2 backends copies=2"
)

for prog in "$NBDKIT" "$FIO" "$PYTHON" nbdinfo; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done
[ -e "$SWAPTIER_PLUGIN" ] || die "$SWAPTIER_PLUGIN not found (build first)"
"$FIO" --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
[ -d "$BENCH_DIR" ] || die "BENCH_DIR=$BENCH_DIR is not a directory"
[[ -d $BENCH_OUT && -w $BENCH_OUT ]] ||
    die "BENCH_OUT=$BENCH_OUT is not a writable directory"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] ||
    die "BENCH_ROUNDS=$BENCH_ROUNDS is not a count of rounds"
read -r -a rows <<<"$BENCH_ROWS"
[ ${#rows[@]} -gt 0 ] || die "BENCH_ROWS is empty"
for row in "${rows[@]}"; do
    [ -n "${label[$row]:-}" ] || die "BENCH_ROWS: no row $row ($all_rows)"
done
size=$(numfmt --from=iec "$BENCH_SIZE") ||
    die "BENCH_SIZE=$BENCH_SIZE is not a size"
[ "$size" -ge $(( 16 * 1048576 )) ] ||
    die "BENCH_SIZE=$BENCH_SIZE: use at least 16M"

# Everything we create lives in work/; everything we start is in pids.
bench_start_work
data=$work/data.img

# Run fio; $1 names the JSON output, the rest are fio options.
run_fio () {
    local out=$work/$1.json
    shift
    if "$FIO" --output-format=json --output="$out" "$@" >"$work/fio.err" 2>&1
    then
        return
    fi
    cat "$work/fio.err" >&2
    [ -z "$nbdkit_log" ] || tail -n 5 "$nbdkit_log" >&2
    die "fio failed: $*"
}

# One run of row $1 in round $2: its server started (none for limit) and
# its device filled where it is new, then the four phases.  fio's results
# land in ROW.ROUND.PHASE.json, PHASE one of randwrite32, randread32,
# randread1 and randwrite1, and the server's CPU time (microseconds)
# before and after each iodepth 32 phase in ROW.ROUND.PHASE.cpu.
run_row () {
    local row=$1 name=$1.$2 args=() target fill phase rw depth before
    local st=("$SWAPTIER_PLUGIN" mlock=off)
    local a=(backend="$work/a.img" capacity="$size")
    local b=(backend="$work/b.img" capacity="$size")
    case $row in
    limit) ;;
    memory) args=(memory size="$region") ;;
    file) args=(file file="$data" cache=default) ;;
    file-nocache) args=(file file="$data" cache=none) ;;
    swaptier) args=("${st[@]}" "${a[@]}") ;;
    encrypt-off) args=("${st[@]}" encrypt=off "${a[@]}") ;;
    striped) args=("${st[@]}" "${a[@]}" "${b[@]}") ;;
    copies) args=("${st[@]}" copies=2 "${a[@]}" domain=a "${b[@]}" domain=b) ;;
    esac
    # The limit and file rows use the file written at the start; the
    # devices of the others are new, and filled before they are read.
    case $row in limit|file|file-nocache) fill=0 ;; *) fill=1 ;; esac

    drop_cache "$data"
    nbdkit_log=
    if [ "$row" = limit ]; then
        target=(--ioengine=libaio --direct=1 --filename="$data")
        command_of[$row]="fio ${target[*]//$work\//}"
    else
        start_nbdkit "$work/sock" --threads "$BENCH_THREADS" "${args[@]}"
        target=(--ioengine=nbd --uri="nbd+unix:///?socket=$work/sock")
        command_of[$row]="nbdkit --threads $BENCH_THREADS ${args[*]//$work\//}"
        command_of[$row]=${command_of[$row]//$top\//}
    fi
    if [ "$fill" = 1 ]; then
        run_fio "$name.fill" --name=fill "${target[@]}" --rw=write --bs=1M \
            --iodepth=8 --size="$region"
    fi
    for phase in randwrite32 randread32 randread1 randwrite1; do
        rw=${phase%%[0-9]*} depth=${phase#"$rw"}
        before=
        [[ $row = limit || $depth = 1 ]] || before=$(cpu_us "$nbdkit_pid")
        run_fio "$name.$phase" --name="$row-$phase" "${target[@]}" \
            --rw="$rw" --iodepth="$depth" --bs=4k --size="$region" \
            --norandommap --randrepeat=0 --time_based \
            --runtime="$BENCH_RUNTIME" --lat_percentiles=1 \
            --percentile_list=50:99
        [ -z "$before" ] ||
            echo "$before $(cpu_us "$nbdkit_pid")" >"$work/$name.$phase.cpu"
    done
    stop_run
    rm -f "$work/a.img" "$work/b.img"
}

# The region: what swaptier exports on one file of BENCH_SIZE, in whole
# MiB so that the 1 MiB writes of the fills cover it.
start_nbdkit "$work/sock" "$SWAPTIER_PLUGIN" backend="$work/a.img" \
    capacity="$size" mlock=off
region=$(nbdinfo --size "nbd+unix:///?socket=$work/sock")
stop_run
rm -f "$work/a.img"
region=$(( region / 1048576 * 1048576 ))

# The file of the limit and file rows: allocated, then written once, so
# that no row pays for converting unwritten extents.
echo "$bench_name: writing $size bytes to the file of the limit and file" \
     "rows" >&2
fallocate -l "$size" "$data" 2>/dev/null || truncate -s "$size" "$data"
nbdkit_log=
run_fio prepare --name=prepare --filename="$data" --ioengine=libaio \
    --direct=1 --rw=write --bs=1M --iodepth=8 --size="$size"

# Round r starts with row r mod the number of rows.
declare -A command_of
for (( round = 0; round < BENCH_ROUNDS; round++ )); do
    for (( j = 0; j < ${#rows[@]}; j++ )); do
        row=${rows[(round + j) % ${#rows[@]}]}
        echo "$bench_name: round $(( round + 1 )) of $BENCH_ROUNDS:" \
             "${label[$row]}" >&2
        run_row "$row" "$round"
    done
done

# The report; the medians for the plot go to plot.dat.
args=()
for row in "${rows[@]}"; do
    args+=("$row" "${label[$row]}")
done
{
    bench_machine
    echo "  runs           files of $size bytes, region $region bytes," \
         "${BENCH_RUNTIME}s per phase, bs 4k, nbdkit --threads $BENCH_THREADS"
    "$PYTHON" - "$work" "$BENCH_ROUNDS" "${args[@]}" <<'EOF'
import json, os, statistics, sys

work, rounds, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = list(zip(args[0::2], args[1::2]))

def result(row, r, phase):
    """What fio measured in one phase: the read or write part of its job."""
    with open("%s/%s.%d.%s.json" % (work, row, r, phase)) as f:
        text = f.read()
    # fio's nbd engine may say "connected to NBD server" before the JSON.
    j = json.loads(text[text.index("{"):])["jobs"][0]
    return j["write" if "write" in phase else "read"]

def figures(row, r):
    """The figures of one run, in the order of the columns; None for the
    server's CPU where there is no server."""
    out = [result(row, r, p)["iops"] for p in ("randread32", "randwrite32")]
    for phase in ("randread1", "randwrite1"):
        pct = result(row, r, phase)["lat_ns"]["percentile"]
        out += [pct["50.000000"] / 1000, pct["99.000000"] / 1000]
    for phase in ("randread32", "randwrite32"):
        path = "%s/%s.%d.%s.cpu" % (work, row, r, phase)
        if os.path.exists(path):
            with open(path) as f:
                before, after = map(int, f.read().split())
            ios = result(row, r, phase)["total_ios"]
            out.append((after - before) / max(ios, 1))
        else:
            out.append(None)
    return out

def median(xs):
    return None if None in xs else statistics.median(xs)

def cell(x, width, fmt):
    return ("%*s" % (width, "-")) if x is None else ("%*" + fmt) % (width, x)

print("%s: 4 KiB random I/O, the median of %d round%s" %
      ("compare", rounds, "" if rounds == 1 else "s"))
print("%-31s" % "", " ".join(h.center(17) for h in (
    "IOPS, iodepth 32", "QD1 read us", "QD1 write us", "server CPU us/req")))
print("%-31s %8s %8s %8s %8s %8s %8s %8s %8s" %
      ("row", "read", "write", "p50", "p99", "p50", "p99", "read", "write"))
with open(os.path.join(work, "plot.dat"), "w") as plot:
    for row, label in rows:
        runs = [figures(row, r) for r in range(rounds)]
        m = [median(list(c)) for c in zip(*runs)]
        print("%-31s %s %s %s %s" % (label,
              " ".join(cell(x, 8, ".0f") for x in m[0:2]),
              " ".join(cell(x, 8, ".1f") for x in m[2:6]),
              cell(m[6], 8, ".2f"), cell(m[7], 8, ".2f")))
        plot.write('"%s" %f %f %f %f\n' % (label, m[0], m[1], m[2], m[4]))
EOF
    echo "$bench_name: the rows (in $BENCH_DIR/$bench_name.XXXXXX; nbdkit -f" \
         "-U SOCK, fio's nbd engine on it)"
    for row in "${rows[@]}"; do
        printf '  %-31s %s\n' "${label[$row]}" "${command_of[$row]}"
    done
} | tee "$BENCH_OUT/compare.txt"

# The plot: IOPS above, QD1 p50 latency below, bars by row.
png=$BENCH_OUT/compare.png
rm -f "$png"
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "$bench_name: gnuplot is not installed (Debian: apt-get install" \
         "gnuplot-nox), so no plot; the table is in $BENCH_OUT/compare.txt" >&2
    exit 0
fi
fs=$(findmnt -n -o FSTYPE -T "$BENCH_DIR" 2>/dev/null ||
     stat -f -c %T "$BENCH_DIR")
rounds="$BENCH_ROUNDS round$([ "$BENCH_ROUNDS" = 1 ] || echo s)"
title="swaptier bench/compare.sh: 4 KiB random I/O, $(nproc) cores, $fs"
title+=" file system, medians of $rounds of ${BENCH_RUNTIME}s per phase"
gnuplot <<EOF || die "gnuplot failed: no plot"
set terminal pngcairo size 1200,1000 font "DejaVu Sans,10"
set output "$png"
set multiplot layout 2,1 title "$title" font ",13"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set grid ytics
set key top center horizontal
set xtics rotate by 20 right scale 0 nomirror
set xrange [-0.6:${#rows[@]} - 0.4]
set yrange [0:*]
set offsets 0, 0, graph 0.15, 0
set lmargin 12
set ylabel "IOPS, 4 KiB at iodepth 32"
set title "Throughput (higher is better)"
plot "$work/plot.dat" using 2:xtic(1) title "randread" lc rgb "#3b75af", \
     "" using 3 title "randwrite" lc rgb "#ef8636", \
     "" using (\$0 - 1/6.):2:(sprintf("%.1fk", \$2 / 1000)) with labels \
        offset 0,0.7 font ",8" notitle, \
     "" using (\$0 + 1/6.):3:(sprintf("%.1fk", \$3 / 1000)) with labels \
        offset 0,0.7 font ",8" notitle
set ylabel "p50 latency at queue depth 1 (µs)"
set title "Latency of one request (lower is better)"
plot "$work/plot.dat" using 4:xtic(1) title "randread" lc rgb "#3b75af", \
     "" using 5 title "randwrite" lc rgb "#ef8636", \
     "" using (\$0 - 1/6.):4:(sprintf("%.0f", \$4)) with labels \
        offset 0,0.7 font ",8" notitle, \
     "" using (\$0 + 1/6.):5:(sprintf("%.0f", \$5)) with labels \
        offset 0,0.7 font ",8" notitle
unset multiplot
EOF
echo "$bench_name: the plot is in $png" >&2
