# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash disable=SC2154
# Shared helpers of the benchmark scripts (copies-bench.sh, tier-bench.sh,
# nbd-bench.sh).  Set bench_name and NBDKIT, then source this file:
#
#   die MESSAGE            print "$bench_name: MESSAGE" and exit 1
#   bench_start_work       make the work directory $work (in $BENCH_DIR)
#                          and the list pids of what is started; on exit,
#                          every pid still running is stopped and $work
#                          removed (kept with BENCH_KEEP=1)
#   start_nbdkit SOCK ARGS start nbdkit in the foreground on SOCK
#   stop_run               stop the nbdkit processes of the current run
#
# Every name outside these is the script's own.

die () { echo "$bench_name: $*" >&2; exit 1; }

# Stop what is still running (in pids) and remove the work directory.
bench_cleanup () {
    local pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || :
            wait "$pid" 2>/dev/null || :
        fi
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "$bench_name: the work directory is kept: $work" >&2
    else
        rm -rf "$work"
    fi
}

bench_start_work () {
    work=$(mktemp -d "$BENCH_DIR/$bench_name.XXXXXX")
    pids=()
    run_pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Start nbdkit in the foreground on socket $1 with the rest as arguments;
# sets nbdkit_pid and nbdkit_log and adds the pid to pids and run_pids.
start_nbdkit () {
    local sock=$1
    shift
    nbdkit_log=$work/nbdkit.$(basename "$sock").log
    rm -f "$sock"
    "$NBDKIT" -f --exit-with-parent -U "$sock" "$@" 2>"$nbdkit_log" &
    nbdkit_pid=$!
    pids+=("$nbdkit_pid")
    run_pids+=("$nbdkit_pid")
    for _ in $(seq 100); do
        [ -S "$sock" ] && return 0
        kill -0 "$nbdkit_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$nbdkit_log" >&2
    die "nbdkit $* did not start"
}

# Stop every nbdkit of the current run (the last started first) and wait
# for them to exit.
stop_run () {
    local i pid
    for (( i = ${#run_pids[@]} - 1; i >= 0; i-- )); do
        pid=${run_pids[i]}
        kill -TERM "$pid" 2>/dev/null || :
        wait "$pid" 2>/dev/null || :
    done
    run_pids=()
}
