#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The model-based fault simulation (fault-sim.py, faultsim/*.py) for about
# 90 s: random writes, reads, trims, zeroes and flushes from four
# connections while remotes fail, stall, crash, lose their data and are
# added, reprioritized and removed through swaptierctl.  Every read is
# checked against the shadow model; any wrong byte, zeroes for data, EIO
# for a page that cannot be lost, request without an end or slow shutdown
# fails the test.  The time is split in two runs: copies=1 (the default
# device), then copies=2 over three failure domains, where a fault on
# another domain waits until the copies are complete again and no page
# may be lost at all (then one remote is killed for good at the end: the
# device must still read back exactly).  The seed is random unless
# SWAPTIER_SIM_SEED is set, and printed first so that a failure can be
# run again (both runs use it):
#   SWAPTIER_SIM_SEED=N make check TESTS=test-fault-sim.sh
# (timing differs between runs, so a replay is not exact).
# SWAPTIER_SIM_DURATION changes the length (seconds, both runs together);
# SWAPTIER_SIM_COPIES=1 or 2 runs only that mode, for the whole length.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require_python_nbd
nbdkit --filter=error null --dump-plugin >/dev/null 2>&1 || {
    echo "SKIP: nbdkit has no error filter" >&2
    exit 77
}
seed=${SWAPTIER_SIM_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
duration=${SWAPTIER_SIM_DURATION:-90}
echo "fault-sim seed: $seed"

# Each run gets 4/9 of the time: the copies=2 run ends with about 15 s of
# checks of its own (the copies re-created after a remote is killed for
# good), so that both together last about the duration plus 10 s.
case ${SWAPTIER_SIM_COPIES:-both} in
    1) runs="1:$duration" ;;
    2) runs="2:$duration" ;;
    both) share=$(( duration * 4 / 9 ))
          runs="1:$share 2:$share" ;;
    *) echo "SWAPTIER_SIM_COPIES must be 1 or 2" >&2; exit 1 ;;
esac

failed=
for run in $runs; do
    copies=${run%%:*}
    echo "=== fault-sim copies=$copies for ${run#*:} s (seed $seed)"
    rc=0
    TMPDIR=$swt_tmpdir "$swt_python" "$(dirname "$0")/fault-sim.py" \
        --seed "$seed" --duration "${run#*:}" --copies "$copies" \
        --plugin "$swt_plugin" \
        --ctl "$(dirname "$swt_plugin")/ctl/swaptierctl" || rc=$?
    case $rc in
        0) ;;
        77) exit 77 ;;
        *) failed="$failed copies=$copies" ;;
    esac
done
if [ -n "$failed" ]; then
    echo "FAIL: fault-sim seed $seed:$failed (SWAPTIER_SIM_SEED=$seed)" >&2
    exit 1
fi
