#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptierctl doctor (issue 15) against a real nbdkit swaptier: each of
# its verdicts agrees with what /proc says of the server process it
# names (its pid is that of nbdkit's pid file, the process that serves,
# not the one that first listened): memory locked (VmLck near VmRSS)
# with mlock=on and not with mlock=off (only the key's page), CAP_SYS_RESOURCE (CapEff bit 24) present or
# missing, the cgroup looked at; with no NBD device in /proc/swaps that
# is a problem; the last line counts the problems and the exit status
# is 1 when there is any.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
d=$swt_tmpdir

for mlock in on off; do
    rm -f "$d/a"
    swt_start backend="$d/a" capacity=16M mlock=$mlock control="$ctl_sock"
    pid=$(cat "$swt_tmpdir/nbdkit.$swt_runs.pid")
    rc=0
    ctl doctor >"$d/doctor.txt" || rc=$?
    cat "$d/doctor.txt"
    locked=$(awk '/^VmLck:/ { print $2 }' "/proc/$pid/status")
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
    echo "VmLck $locked kB of VmRSS $rss kB, CapEff $caps"
    # Locked: every page touched (mlock=on), not just the key's.
    if (( 2 * locked >= rss )); then
        grep -q "^ok: nbdkit (pid $pid) has its memory locked" "$d/doctor.txt" ||
            swt_fail "mlock=$mlock: VmLck $locked kB, but doctor says otherwise"
    else
        grep -q "^problem: nbdkit (pid $pid) has no memory locked" "$d/doctor.txt" ||
            swt_fail "mlock=$mlock: nothing locked, but doctor says otherwise"
    fi
    if [[ $mlock == on ]]; then
        (( 2 * locked >= rss )) || swt_fail "mlock=on: VmLck $locked kB"
    else
        (( 2 * locked < rss )) || swt_fail "mlock=off: VmLck $locked kB"
    fi
    if (( (0x$caps >> 24) & 1 )); then
        grep -q "^ok: nbdkit (pid $pid) has CAP_SYS_RESOURCE" "$d/doctor.txt"
    else
        grep -q "^problem: nbdkit (pid $pid) lacks CAP_SYS_RESOURCE" "$d/doctor.txt"
    fi || swt_fail "CapEff $caps: doctor disagrees on CAP_SYS_RESOURCE"
    grep -q "cgroup" "$d/doctor.txt" || swt_fail "doctor says nothing of the cgroup"
    if ! grep -q '^/dev/nbd' /proc/swaps; then
        grep -q "^problem: no NBD device is in use as swap" "$d/doctor.txt" ||
            swt_fail "no NBD swap, and doctor does not say so"
    fi
    problems=$(grep -c '^problem: ' "$d/doctor.txt" || true)
    [[ $(tail -1 "$d/doctor.txt") == "$problems problem"* ]] ||
        swt_fail "the last line does not count $problems problems"
    (( (problems > 0 && rc == 1) || (problems == 0 && rc == 0) )) ||
        swt_fail "$problems problems, exit status $rc"
    rc=0
    ctl doctor extra >/dev/null 2>&1 || rc=$?
    (( rc == 2 )) || swt_fail "doctor with an argument: exit $rc"
    swt_stop
done
echo "ok: doctor's verdicts agree with /proc"
