#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The model-based fault simulation (fault-sim.py, faultsim/*.py) for about
# 90 s: random writes, reads, trims, zeroes and flushes from four
# connections while remotes fail, stall, crash, lose their data and are
# added, reprioritized and removed through swaptierctl.  Every read is
# checked against the shadow model; any wrong byte, zeroes for data, EIO
# for a page that cannot be lost, request without an end or slow shutdown
# fails the test.  The seed is random unless SWAPTIER_SIM_SEED is set,
# and printed first so that a failure can be run again:
#   SWAPTIER_SIM_SEED=N make check TESTS=test-fault-sim.sh
# (timing differs between runs, so a replay is not exact).
# SWAPTIER_SIM_DURATION changes the length (seconds).
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require_python_nbd
nbdkit --filter=error null --dump-plugin >/dev/null 2>&1 || {
    echo "SKIP: nbdkit has no error filter" >&2
    exit 77
}
seed=${SWAPTIER_SIM_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
echo "fault-sim seed: $seed"
TMPDIR=$swt_tmpdir "$swt_python" "$(dirname "$0")/fault-sim.py" \
    --seed "$seed" --duration "${SWAPTIER_SIM_DURATION:-90}" \
    --plugin "$swt_plugin" --ctl "$(dirname "$swt_plugin")/ctl/swaptierctl"
