#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fio with its nbd engine writes checksummed blocks and reads them back
# (verify=crc32c) through swaptier:
#   1. 4 KiB random writes at iodepth 32 over the whole device;
#   2. mixed block sizes (bssplit 4k/8k/64k/1m), random reads and writes,
#      two jobs (so two NBD connections) on disjoint halves of the device,
#      with a flush every 32 writes.
# No verify error may occur.  Afterwards the unload counters must be
# consistent (used + free + bad == capacity, no errors), and since phase 1
# wrote every page once and nothing was trimmed, exactly one slot per page
# of the device must be in use.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require fio nbdinfo python3
fio --enghelp 2>/dev/null | grep -qw nbd || {
    echo "SKIP: fio has no nbd engine" >&2
    exit 77
}

# A fast tier of 16 MiB over a slow tier of 48 MiB: the data spills from
# one to the other.  16382 data slots (slot 0 of each file is its
# header), of which max(1% = 164, 32 requests in flight x stripe 16 =
# 512) are kept spare.
pages=$(( (16 + 48) * 256 - 2 - 512 ))
size=$(( pages * 4096 ))
swt_start backend="$swt_tmpdir/fast" capacity=16M priority=10 \
          backend="$swt_tmpdir/slow" capacity=48M priority=5
[[ $(nbdinfo --size "$swt_uri") -eq $size ]] ||
    swt_fail "export size $(nbdinfo --size "$swt_uri"), expected $size"

# Run fio; fail unless it exits 0, and print its JSON result to $1.
fio_run ()
{
    local out=$1 rc=0
    shift
    fio --output-format=json --output="$out" --ioengine=nbd --uri="$swt_uri" \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --randrepeat=0 "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$out" >&2 || true
        swt_fail "fio exited with status $rc: $*"
    fi
}

# Check the JSON of a fio run: no job error and, per job, at least $2
# bytes written and every written byte read back by the verify pass.
fio_check ()
{
    python3 - "$1" "$2" <<'EOF'
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
minimum = int(sys.argv[2])
for j in jobs:
    name, err = j["jobname"], j["error"]
    written, read = j["write"]["io_bytes"], j["read"]["io_bytes"]
    print("%s: error %d, wrote %d bytes, read %d bytes" % (
        name, err, written, read))
    assert err == 0, "%s: error %d" % (name, err)
    assert written >= minimum, "%s: wrote only %d bytes" % (name, written)
    # Verify reads every block written, on top of randrw's own reads.
    assert read >= written, "%s: verify read back less than was written" % name
EOF
}

# Phase 1: every page of the device, 4 KiB at a time, in random order.
echo "phase 1: 4k random writes over $size bytes"
fio_run "$swt_tmpdir/fio1.json" --name=rand4k --rw=randwrite --bs=4k \
    --iodepth=32 --size="$size"
fio_check "$swt_tmpdir/fio1.json" "$size"

# Phase 2: two jobs, each on its own half (whole MiBs, so 1 MiB blocks fit).
half=$(( size / 2 / 1048576 * 1048576 ))
echo "phase 2: mixed sizes, randrw, 2 jobs of $half bytes"
fio_run "$swt_tmpdir/fio2.json" --name=mixed --rw=randrw --rwmixread=30 \
    --bssplit=4k/50:8k/25:64k/15:1m/10 --iodepth=16 --numjobs=2 --fsync=32 \
    --size="$half" --offset_increment="$half" --io_size=$(( half / 2 ))
fio_check "$swt_tmpdir/fio2.json" $(( half / 4 ))

swt_stop
swt_show_counters
swt_check_counters

used=$(( $(swt_stat 0 used) + $(swt_stat 1 used) ))
(( used == pages )) ||
    swt_fail "$used slots in use after writing each of the $pages pages"
(( $(swt_stat 1 used) > 0 )) || swt_fail "nothing spilled to the slow tier"
echo "PASS"
