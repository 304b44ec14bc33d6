# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash disable=SC2154
# Shared helpers of the benchmark scripts (copies-bench.sh, tier-bench.sh,
# nbd-bench.sh, codec-bench.sh, compare.sh).  Set bench_name, BENCH_DIR
# and NBDKIT (and FIO for bench_machine), then source this file:
#
#   die MESSAGE            print "$bench_name: MESSAGE" and exit 1
#   bench_start_work       make the work directory $work (in $BENCH_DIR)
#                          and the list pids of what is started; on exit,
#                          every pid still running is stopped and $work
#                          removed (kept with BENCH_KEEP=1)
#   start_nbdkit SOCK ARGS start nbdkit in the foreground on SOCK
#   stop_run               stop the nbdkit processes of the current run
#   cpu_us PID             the CPU time (user + system) of process PID so
#                          far, in microseconds
#   drop_cache FILE        write FILE's dirty pages and drop its pages from
#                          the page cache
#   bench_machine          print "$bench_name: machine" and the facts of
#                          the machine that the figures depend on
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

# The CPU time (utime + stime, all threads) of process $1 so far, in
# microseconds.  The fields are counted after the ") " that ends the
# command name, which may hold spaces.
cpu_us () {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( (${12} + ${13}) * 1000000 / $(getconf CLK_TCK) ))
}

# Write the dirty pages of file $1 and drop all its pages from the page
# cache.
drop_cache () {
    sync "$1"
    dd if="$1" iflag=nocache count=0 status=none
}

# What the figures depend on, for the head of a report.
bench_machine () {
    local fs_source fs_type fs_opts
    read -r fs_source fs_type fs_opts < <(
        findmnt -n -o SOURCE,FSTYPE,OPTIONS -T "$BENCH_DIR" 2>/dev/null ||
        echo "? $(stat -f -c %T "$BENCH_DIR") ?")
    echo "$bench_name: machine"
    echo "  nproc          $(nproc)"
    echo "  cpu            $(sed -n 's/^model name[[:space:]]*: //p' \
                              /proc/cpuinfo | head -1)"
    echo "  memory         $(free -m | awk '/^Mem:/ { print $2 " MiB" }')"
    echo "  kernel         $(uname -r)"
    echo "  load average   $(cut -d' ' -f1-3 /proc/loadavg)" \
         "(other work skews figures)"
    echo "  bench dir      $BENCH_DIR on $fs_source ($fs_type, $fs_opts)"
    echo "  fio            $("$FIO" --version)"
    echo "  nbdkit         $("$NBDKIT" --version)"
}
