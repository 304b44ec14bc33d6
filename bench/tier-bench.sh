#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier: what demotion (issue 13) buys and what it costs, demote=on
# (the default settings) against demote=off on the same setup.
#
# The setup: a fast tier, a local file of BENCH_FAST bytes at priority
# 10, above a slow tier, an nbdkit memory server of BENCH_SLOW bytes on a
# Unix socket at priority 1.  nbdkit swaptier is started afresh, on fresh
# backends, for each part and each mode.
#
# (a) Placement.  Region A, 5/4 of the fast tier, is written sequentially
#     at full speed and left BENCH_COOL seconds to cool (age ticks are
#     1 s): the fast tier is full of cold pages.  Then region B is written
#     at a swap-like pace (4 KiB requests at BENCH_RATE bytes a second for
#     BENCH_RUNTIME seconds), as a kernel swaps out under pressure, and
#     read back at once with verify=crc32c.  The share of B's read bytes
#     served by the fast tier comes from the per-backend read bytes of
#     swaptierctl stats --json before and after that read (the mover's
#     own reads, if any happen then, are counted against the fast tier:
#     a lower bound).  The goal of the issue: at least 0.9 with demotion
#     on; without it about 0.  Region A is verified at the end too.
#
# (b) The mover's cost in client IOPS.  Region R, twice the fast tier, is
#     written sequentially at full speed and left BENCH_COOL seconds to
#     cool: the fast tier is full of cold pages and half of R is on the
#     slow tier.  Then fio measures 4 KiB random writes, then a 50/50 mix
#     of random reads and writes, over R at iodepth BENCH_IODEPTH for
#     BENCH_RUNTIME seconds each.  Writes go to the fast tier while it has
#     room; with demotion on, every write of a page that was on the slow
#     tier takes a fast slot for good, so the mover keeps demoting cold
#     pages (at most demote-rate, 64M/s by default) while the client
#     runs.  A sampler polls the control socket every 100 ms to show how
#     busy the mover was (share of samples with state=running) and how
#     many pages it demoted during each phase.
#
# The mover's own rate is shown as the demote line's rate= field; the
# pages it demoted during a phase come from its demoted= counter.
#
# It prints figures and asserts nothing.  The default run takes about
# 1.5 minutes (RUNTIME=3 about a minute); on a busy host the IOPS swing
# from run to run: BENCH_REPEAT=3 takes the median of three.
#
# Environment:
#   BENCH_DIR        where the fast file and the sockets go (default
#                    $TMPDIR, else /var/tmp)
#   BENCH_FAST       size of the fast tier (default 256M)
#   BENCH_SLOW       size of the slow tier (default 1G; at least 3 x fast)
#   BENCH_RUNTIME    seconds per measured phase (default 7; RUNTIME is
#                    accepted too): B's writes in (a), each fio phase in (b)
#   BENCH_RATE       the write pace of region B in (a) (default 8m, fio
#                    rate=)
#   BENCH_COOL       seconds the filled region is left to cool (default 3)
#   BENCH_IODEPTH    fio iodepth of (b) (default 8)
#   BENCH_MODES      the modes compared (default "on off")
#   BENCH_PARTS      the parts run (default "share iops": (a) and (b))
#   BENCH_REPEAT     runs of (b) per mode, alternating the modes; the
#                    summary gives the median (default 1; 3 on a busy host)
#   BENCH_KEEP       1: keep the work directory (logs, fio JSON) at the end
#   BENCH_DELAY      delay-read= and delay-write= of the slow server
#                    (nbdkit's delay filter; default none)
#   BENCH_THREADS    nbdkit --threads for swaptier (default 16)
#   SWAPTIER_OPTS    extra swaptier keys (default none, e.g.
#                    "demote-rate=16M"; "mlock=off" when not root)
#   SWAPTIER_PLUGIN  the plugin (default ./swaptier.so at the top of the
#                    tree)
#   SWAPTIERCTL      swaptierctl (default ctl/swaptierctl of the tree)
#   NBDKIT, FIO      the programs (default nbdkit and fio from PATH)

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/var/tmp}}
BENCH_FAST=${BENCH_FAST:-256M}
BENCH_SLOW=${BENCH_SLOW:-1G}
BENCH_RUNTIME=${BENCH_RUNTIME:-${RUNTIME:-7}}
BENCH_RATE=${BENCH_RATE:-8m}
BENCH_COOL=${BENCH_COOL:-3}
BENCH_IODEPTH=${BENCH_IODEPTH:-8}
BENCH_MODES=${BENCH_MODES:-on off}
BENCH_PARTS=${BENCH_PARTS:-share iops}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_REPEAT=${BENCH_REPEAT:-1}
BENCH_DELAY=${BENCH_DELAY:-}
BENCH_THREADS=${BENCH_THREADS:-16}
SWAPTIER_OPTS=${SWAPTIER_OPTS:-}
SWAPTIER_PLUGIN=${SWAPTIER_PLUGIN:-$top/swaptier.so}
SWAPTIERCTL=${SWAPTIERCTL:-$top/ctl/swaptierctl}
NBDKIT=${NBDKIT:-nbdkit}
FIO=${FIO:-fio}
PYTHON=/usr/bin/python3

bench_name=tier-bench
# shellcheck source=bench/functions.sh disable=SC2034
source "$(dirname "$0")/functions.sh"

for prog in "$NBDKIT" "$FIO" "$PYTHON" nbdinfo numfmt timeout; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done
[ -e "$SWAPTIER_PLUGIN" ] ||
    die "$SWAPTIER_PLUGIN not found (build: make -C lib && make -C plugin)"
[ -x "$SWAPTIERCTL" ] || die "$SWAPTIERCTL not found (build: make -C ctl)"
"$FIO" --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
[ -d "$BENCH_DIR" ] || die "BENCH_DIR=$BENCH_DIR is not a directory"
for m in $BENCH_MODES; do
    case $m in on|off) ;; *) die "BENCH_MODES: $m is not on or off" ;; esac
done
for p in $BENCH_PARTS; do
    case $p in share|iops) ;; *) die "BENCH_PARTS: $p is not share or iops" ;; esac
done
[[ $BENCH_RUNTIME =~ ^[1-9][0-9]*$ ]] ||
    die "BENCH_RUNTIME=$BENCH_RUNTIME is not a whole number of seconds"
[[ $BENCH_COOL =~ ^[0-9]+$ ]] || die "BENCH_COOL=$BENCH_COOL is not seconds"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] ||
    die "BENCH_REPEAT=$BENCH_REPEAT is not a whole number"

mib () {
    local v
    v=$(numfmt --from=iec "$2") || die "$1=$2 is not a size"
    echo $(( v / 1048576 * 1048576 ))
}
fast=$(mib BENCH_FAST "$BENCH_FAST")
slow=$(mib BENCH_SLOW "$BENCH_SLOW")
rate=$(numfmt --from=iec "${BENCH_RATE^^}") ||
    die "BENCH_RATE=$BENCH_RATE is not a rate"
(( fast >= 32 << 20 )) || die "BENCH_FAST=$BENCH_FAST: use at least 32M"
(( slow >= 3 * fast )) || die "BENCH_SLOW must be at least 3 x BENCH_FAST"
# The regions: A (5/4 of fast) and B (rate x runtime, whole MiB) in (a),
# R (2 x fast) in (b); B starts at the first MiB after A.
a_size=$(( fast * 5 / 4 ))
b_off=$(( a_size + (1 << 20) ))
b_size=$(( rate * BENCH_RUNTIME / 1048576 * 1048576 ))
(( b_size >= 1 << 20 )) || die "BENCH_RATE x BENCH_RUNTIME is under 1 MiB"
(( b_size <= fast / 2 )) ||
    die "BENCH_RATE x BENCH_RUNTIME ($b_size bytes) is over half the fast tier"
r_size=$(( 2 * fast ))

# Everything we create lives in work/; everything we start is in pids
# (the sampler too).
bench_start_work
sampler_pid=


# Start a fresh run: the slow server and swaptier over a fresh fast file,
# with demote=$2 (on: the default settings, no demote key at all).  $1
# names the run.  Sets uri and ctl_sock.
start_run () {
    local name=$1 mode=$2 sock args=()
    run_pids=()
    sock=$work/$name-slow.sock
    if [ -n "$BENCH_DELAY" ]; then
        start_nbdkit "$sock" --filter=delay memory "$slow" \
            delay-read="$BENCH_DELAY" delay-write="$BENCH_DELAY"
    else
        start_nbdkit "$sock" memory "$slow"
    fi
    rm -f "$work/$name-fast.img"
    args=(backend="$work/$name-fast.img" capacity="$fast" priority=10
          backend="nbd+unix:///?socket=$sock" priority=1)
    [ "$mode" = on ] || args+=(demote=off)
    ctl_sock=$work/$name.ctl
    # shellcheck disable=SC2206
    args+=(control="$ctl_sock" $SWAPTIER_OPTS)
    run_args[$name]="${args[*]//$work\//}"
    sock=$work/$name.sock
    uri="nbd+unix:///?socket=$sock"
    start_nbdkit "$sock" --threads "$BENCH_THREADS" "$SWAPTIER_PLUGIN" \
        "${args[@]}"
    swaptier_log=$nbdkit_log
    local device_size
    device_size=$(nbdinfo --size "$uri")
    if (( device_size < b_off + b_size || device_size < r_size )); then
        die "$name: the device has only $device_size bytes"
    fi
}

# Run fio; $1 names the JSON output, the rest are fio options.  A fio
# that outlives its phase by two minutes is stopped: the device hangs.
run_fio () {
    local out=$work/$1.json
    shift
    timeout -k 10 $(( BENCH_RUNTIME + 120 )) \
        "$FIO" --output-format=json --output="$out" --ioengine=nbd \
        --uri="$uri" "$@" >"$work/fio.err" 2>&1 ||
        die "fio $* failed or hung: $(tail -n 5 "$work/fio.err") (see" \
            "$work; swaptier's log: $swaptier_log)"
}

# fio over a region with crc32c verify headers: region_fio JSON NAME
# OFFSET SIZE options...  Sequential 4 KiB writes (--do_verify=0) or,
# with --verify_only, the read back and check of what it wrote.
region_fio () {
    local out=$1 name=$2 off=$3 size=$4
    shift 4
    run_fio "$out" --name="$name" --rw=write --bs=4k --offset="$off" \
        --size="$size" --verify=crc32c --verify_fatal=1 \
        --verify_state_save=0 "$@"
}

ctl () {
    "$SWAPTIERCTL" -s "$ctl_sock" "$@"
}

# Poll the control socket's list every 100 ms into $1 (one JSON line per
# sample: time, demote record, demoted per backend) until killed.
sampler_start () {
    "$PYTHON" - "$ctl_sock" "$1" <<'EOF' &
import json, socket, sys, time
sock, out = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
f = s.makefile("rb")
o = open(out, "w", buffering=1)
while True:
    s.sendall(b"list\n")
    rec = {"t": time.time(), "demote": None, "backends": {}}
    while True:
        line = f.readline().decode("latin-1").rstrip("\n")
        if not line or line == "ok" or line.startswith(("ok ", "error ")):
            break
        words = line.split()
        fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if words[0] == "demote":
            rec["demote"] = fields
        elif words[0] == "backend":
            rec["backends"][fields["id"]] = fields.get("demoted")
    o.write(json.dumps(rec) + "\n")
    time.sleep(0.1)
EOF
    sampler_pid=$!
    pids+=("$sampler_pid")
}

sampler_stop () {
    kill -TERM "$sampler_pid" 2>/dev/null || :
    wait "$sampler_pid" 2>/dev/null || :
    sampler_pid=
}

# Part (a) in mode $1.
bench_share () {
    local mode=$1 name=share-$1
    echo "tier-bench: (a) placement, demote=$mode" >&2
    start_run "$name" "$mode"
    echo "  writing region A ($a_size bytes) at full speed," \
         "${BENCH_COOL}s to cool" >&2
    region_fio "$name.a" a 0 "$a_size" --do_verify=0 --iodepth=8
    sleep "$BENCH_COOL"
    echo "  writing region B ($b_size bytes) at $BENCH_RATE/s" >&2
    region_fio "$name.b" b "$b_off" "$b_size" --do_verify=0 --iodepth=1 \
        --rate="$BENCH_RATE"
    ctl -j stats >"$work/$name.before.json"
    ctl -j list >"$work/$name.list.json"
    echo "  reading region B back, verify" >&2
    region_fio "$name.bread" b "$b_off" "$b_size" --verify_only --iodepth=8
    ctl -j stats >"$work/$name.after.json"
    echo "  verifying region A" >&2
    region_fio "$name.aread" a 0 "$a_size" --verify_only --iodepth=8
    ctl -j list >"$work/$name.end.json"
    stop_run
    grep -v -e 'PR_SET_IO_FLUSHER' -e '^swaptier: backend ' \
         -e 'aborting sleep because of server shut down' "$swaptier_log" \
         >"$work/$name.errors" || :
}

# Part (b) in mode $1, run $2.
bench_iops () {
    local mode=$1 name=iops-$1-$2 rw
    local timed=(--bs=4k --offset=0 --size="$r_size" --norandommap
                 --randrepeat=0 --time_based --runtime="$BENCH_RUNTIME"
                 --iodepth="$BENCH_IODEPTH")
    echo "tier-bench: (b) IOPS, demote=$mode, run $2" >&2
    start_run "$name" "$mode"
    echo "  writing region R ($r_size bytes) at full speed," \
         "${BENCH_COOL}s to cool" >&2
    run_fio "$name.fill" --name=fill --rw=write --bs=1M --iodepth=8 \
        --offset=0 --size="$r_size"
    sleep "$BENCH_COOL"
    for rw in randwrite randrw; do
        echo "  $rw, iodepth $BENCH_IODEPTH, ${BENCH_RUNTIME}s" >&2
        sampler_start "$work/$name.$rw.samples"
        run_fio "$name.$rw" --name="$name-$rw" --rw="$rw" --rwmixread=50 \
            "${timed[@]}"
        sampler_stop
    done
    ctl -j list >"$work/$name.end.json"
    stop_run
    grep -v -e 'PR_SET_IO_FLUSHER' -e '^swaptier: backend ' \
         -e 'aborting sleep because of server shut down' "$swaptier_log" \
         >"$work/$name.errors" || :
}

bench_machine
echo "  setup          fast: file $fast bytes priority 10; slow: nbdkit" \
     "memory $slow bytes${BENCH_DELAY:+ (delay $BENCH_DELAY)} on a Unix" \
     "socket, priority 1"
echo "  (a)            A $a_size bytes, cool ${BENCH_COOL}s, B $b_size bytes" \
     "at $BENCH_RATE/s, 4k"
echo "  (b)            R $r_size bytes, cool ${BENCH_COOL}s, 4k random," \
     "iodepth $BENCH_IODEPTH, ${BENCH_RUNTIME}s per phase"

declare -A run_args
start=$SECONDS
for part in $BENCH_PARTS; do
    if [ "$part" = share ]; then
        for mode in $BENCH_MODES; do
            bench_share "$mode"
        done
    else
        for (( rep = 1; rep <= BENCH_REPEAT; rep++ )); do
            for mode in $BENCH_MODES; do
                bench_iops "$mode" "$rep"
            done
        done
    fi
done

echo "tier-bench: runs ($(( SECONDS - start ))s)"
for run in "${!run_args[@]}"; do
    printf '  %-9s nbdkit --threads %s swaptier %s\n' \
        "$run" "$BENCH_THREADS" "${run_args[$run]}"
done | sort
# shellcheck disable=SC2086
"$PYTHON" - "$work" "$b_size" "$BENCH_PARTS" "$BENCH_REPEAT" $BENCH_MODES <<'EOF'
import json, os, sys

work, b_size, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3].split ()
repeat, modes = int (sys.argv[4]), sys.argv[5:]

def load (name):
    with open (os.path.join (work, name)) as f:
        text = f.read ()
    # fio's nbd engine may say "connected to NBD server" before the JSON.
    return json.loads (text[text.index ("{"):])

def job (name):
    return load (name + ".json")["jobs"][0]

def k (x):
    return "%.1fk" % (x / 1000) if x >= 1000 else "%.0f" % x

def demote_of (ls):
    return ls.get ("demote") or {}

def fast_demoted (ls):
    return ls["backends"][0].get ("demoted", 0)

share, iops = {}, {}
if "share" in parts:
    print ("tier-bench: (a) reads of recently written pages (region B, %d "
           "bytes) served by the fast tier" % b_size)
    fmt = "  %-7s %6s %9s %10s %14s %s"
    print (fmt % ("demote", "share", "fio read", "fast tier",
                  "pages demoted", "verify"))
    for m in modes:
        n = "share-" + m
        got = job (n + ".bread")["read"]["io_bytes"]
        b = {x["id"]: x["read_bytes"]
             for x in load (n + ".before.json")["backends"]}
        a = {x["id"]: x["read_bytes"]
             for x in load (n + ".after.json")["backends"]}
        d = {i: a[i] - b.get (i, 0) for i in a}
        extra = max (0, sum (d.values ()) - got)
        share[m] = max (0, d[0] - extra) / got if got else 0
        ok = all (job (n + x)["error"] == 0 for x in (".bread", ".aread"))
        end = load (n + ".end.json")
        print (fmt % (m, "%.3f" % share[m], "%dM" % (got >> 20),
                      "%dM" % (max (0, d[0] - extra) >> 20),
                      fast_demoted (end), "A and B ok" if ok else "FAILED"))
        dm = demote_of (end)
        if dm:
            print ("          demote line at the end: " + " ".join (
                "%s=%s" % kv for kv in dm.items ()))

def samples (name):
    rows = []
    p = os.path.join (work, name + ".samples")
    if os.path.exists (p):
        for line in open (p):
            try:
                rows.append (json.loads (line))
            except ValueError:
                pass
    return [r for r in rows if r.get ("demote")]

def busy (rows):
    """Share of samples with the mover running, pages demoted between the
    first and last sample, the highest rate seen (pages a second)."""
    if not rows:
        return "-", "-", "-"
    st = [r["demote"]["state"] for r in rows]
    dem = [int (r["demote"].get ("demoted", 0)) for r in rows]
    rate = max (int (r["demote"].get ("rate", 0)) for r in rows)
    return ("%.0f%%" % (100.0 * st.count ("running") / len (st)),
            str (dem[-1] - dem[0]), str (rate))

if "iops" in parts:
    print ("tier-bench: (b) client 4k random IOPS over R while the mover "
           "demotes")
    fmt = "  %-7s %3s %-10s %10s %10s %11s %14s %11s"
    print (fmt % ("demote", "run", "phase", "read IOPS", "write IOPS",
                  "mover busy", "pages demoted", "top rate/s"))
    got = {}
    for m in modes:
        for rep in range (1, repeat + 1):
            for rw in ("randwrite", "randrw"):
                n = "iops-%s-%d.%s" % (m, rep, rw)
                j = job (n)
                r, w = j["read"]["iops"], j["write"]["iops"]
                got.setdefault ((m, rw), []).append ((r, w))
                bz, dem, rate = busy (samples (n))
                print (fmt % (m, rep, rw, k (r) if r else "-", k (w), bz,
                              dem, rate))
            end = load ("iops-%s-%d.end.json" % (m, rep))
            print ("              at the end: " + ", ".join (
                "backend %d used %dM of %dM, %d demoted" % (
                    b["id"], b["used"] >> 20, (b["used"] + b["free"]) >> 20,
                    b.get ("demoted", 0))
                for b in end["backends"]))

def median (xs):
    xs = sorted (xs)
    n = len (xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

if "iops" in parts:
    for key, vals in got.items ():
        iops[key] = (median ([v[0] for v in vals]),
                     median ([v[1] for v in vals]))

print ("tier-bench: summary%s" % (
    " (IOPS: median of %d runs)" % repeat if "iops" in parts and repeat > 1
    else ""))
cols = [m for m in ("on", "off") if m in modes]
fmt = "  %-36s" + " %10s" * len (cols) + (" %7s" if len (cols) == 2 else "")
print (fmt % tuple ([""] + ["demote=" + m for m in cols]
                    + (["on/off"] if len (cols) == 2 else [])))
rows = []
if share:
    rows.append (("share of B's reads on the fast tier",
                  [share[m] for m in cols], "%.3f", False))
for rw, idx, label in (("randwrite", 1, "randwrite IOPS (mover busy)"),
                       ("randrw", 0, "randrw read IOPS (mover busy)"),
                       ("randrw", 1, "randrw write IOPS (mover busy)")):
    if iops:
        rows.append ((label, [iops[m, rw][idx] for m in cols], None, True))
for label, vals, f, ratio in rows:
    cells = [f % v if f else k (v) for v in vals]
    if len (cols) == 2:
        cells.append ("%.2f" % (vals[0] / vals[1]) if ratio and vals[1]
                      else "-")
    print (fmt % tuple ([label] + cells))

# What nbdkit said besides the usual (each message once, with a count).
for name in sorted (os.listdir (work)):
    if not name.endswith (".errors"):
        continue
    seen = {}
    for line in open (os.path.join (work, name)):
        key = " ".join (w if not w[:1].isdigit () else "N"
                        for w in line.split ())
        seen.setdefault (key, [0, line.strip ()])[0] += 1
    for key, (count, first) in seen.items ():
        print ("  %s: nbdkit said %d time(s): %s" % (name[:-7], count, first))
EOF
