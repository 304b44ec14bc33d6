# SPDX-License-Identifier: BSD-3-Clause
# Shared helpers for the shell tests of swaptier.  Source it from a test:
#
#   source "$(dirname "$0")/functions.sh"
#   swt_setup                      # temp dir, cleanup trap, plugin path
#   swt_start backend="$swt_tmpdir/a" capacity=16M
#   ... use "$swt_uri" or "$swt_sock" ...
#   swt_stop                       # SIGTERM, wait, unload lines in the log
#   swt_stat 0 used                # counters of backend 0 from that log
#
# Every helper is prefixed swt_ (swaptier test).  Only Unix sockets are used.
# A test exits 0 on success, 77 (skip) when a tool it needs is missing, and
# anything else on failure.

# The swt_ variables set here are read by the tests.
# shellcheck disable=SC2034,SC2119,SC2120

# The plugin under test: $abs_top_builddir/swaptier.so, else
# $top_builddir/swaptier.so, else the parent of the directory of the test.
swt_find_plugin ()
{
    local top
    if [[ -n ${abs_top_builddir:-} ]]; then
        top=$abs_top_builddir
    elif [[ -n ${top_builddir:-} ]]; then
        top=$top_builddir
    else
        top=$(dirname "$0")/..
    fi
    swt_plugin=$(cd "$top" && pwd)/swaptier.so
    if [[ ! -e $swt_plugin ]]; then
        swt_fail "plugin not found: $swt_plugin (build it first)"
    fi
}

# Print a message on stderr and fail the test.
swt_fail ()
{
    echo "FAIL: $*" >&2
    exit 1
}

# Skip the whole test (exit 77) unless every named program is installed.
swt_require ()
{
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "SKIP: $tool is not installed" >&2
            exit 77
        fi
    done
}

# Set swt_python to a python3 that can import the libnbd bindings (nbdsh
# only works with the system python3; a pyenv shim may come first in
# PATH), or skip the test.
swt_require_python_nbd ()
{
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
           "$py" -c 'import nbd' >/dev/null 2>&1; then
            swt_python=$py
            return 0
        fi
    done
    echo "SKIP: no python3 with the nbd module (python3-libnbd)" >&2
    exit 77
}

# Write N pages of random bytes from page FIRST (default 0) through the
# device of the running server, then flush (needs swt_require_python_nbd).
swt_write_random ()
{
    "$swt_python" - "$swt_uri" "$1" "${2:-0}" <<'EOF'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(os.urandom(int(sys.argv[2]) * 4096), int(sys.argv[3]) * 4096)
h.flush()
h.shutdown()
EOF
}

# Temp dir, cleanup on exit, plugin path, and the tools every test needs.
swt_setup ()
{
    swt_require nbdkit
    swt_find_plugin
    swt_tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/swaptier-test.XXXXXX")
    swt_pid=
    swt_runs=0
    swt_exit_cmds=()
    trap swt_cleanup EXIT
}

# Run a command (a string for eval) at exit, after the server is stopped
# and before the temp dir is removed, e.g. to detach a loop device.
swt_on_exit ()
{
    swt_exit_cmds+=("$1")
}

# Stop a server left running (a failed test) and remove the temp dir.
swt_cleanup ()
{
    local rc=$?
    if [[ -n ${swt_pid:-} ]]; then
        kill -TERM "$swt_pid" 2>/dev/null || true
        # Do not hang the harness on a server that ignores SIGTERM.
        swt_wait_gone "$swt_pid" 10 || kill -KILL "$swt_pid" 2>/dev/null || true
        wait "$swt_pid" 2>/dev/null || true
        if [[ $rc -ne 0 && -n ${swt_log:-} && -f $swt_log ]]; then
            echo "--- nbdkit log ($swt_log) ---" >&2
            tail -n 40 "$swt_log" >&2
        fi
        swt_pid=
    fi
    local cmd
    for cmd in "${swt_exit_cmds[@]}"; do
        eval "$cmd" || true
    done
    [[ -n ${swt_tmpdir:-} ]] && rm -rf "$swt_tmpdir"
    exit "$rc"
}

# Wait up to $2 seconds for process $1 to exit; 1 if it is still there.
swt_wait_gone ()
{
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# Variables for the environment of the next nbdkit swt_start starts
# (NAME=VALUE each), beside the test's own.
swt_env=()

# Start nbdkit in the foreground, in the background, serving swaptier with
# the given parameters on a fresh Unix socket.  Sets swt_pid, swt_sock,
# swt_uri and swt_log (its stderr).  Waits for the pid file, which nbdkit
# writes once the socket is listening; fails after 10 s or if nbdkit exits.
swt_start ()
{
    local pidfile i
    [[ -z ${swt_pid:-} ]] || swt_fail "swt_start: a server is already running"
    swt_runs=$((swt_runs + 1))
    swt_sock=$swt_tmpdir/nbd.$swt_runs.sock
    swt_log=$swt_tmpdir/nbdkit.$swt_runs.log
    swt_uri="nbd+unix:///?socket=$swt_sock"
    pidfile=$swt_tmpdir/nbdkit.$swt_runs.pid

    env "${swt_env[@]}" \
        nbdkit -f --exit-with-parent -U "$swt_sock" -P "$pidfile" \
        "$swt_plugin" "$@" 2>"$swt_log" &
    swt_pid=$!

    for ((i = 0; i < 100; i++)); do
        if [[ -s $pidfile && -S $swt_sock ]]; then
            return 0
        fi
        if ! kill -0 "$swt_pid" 2>/dev/null; then
            wait "$swt_pid" || true
            swt_pid=
            cat "$swt_log" >&2
            swt_fail "nbdkit exited at start: nbdkit $swt_plugin $*"
        fi
        sleep 0.1
    done
    swt_fail "nbdkit did not create $swt_sock within 10 s"
}

# Run nbdkit with the plugin and a configuration that must be accepted,
# and print the size of the device it exports (fails the test if the
# configuration is refused, showing nbdkit's messages).
swt_config_size ()
{
    local out
    out=$(timeout 30 nbdkit -U - --run 'nbdinfo --size "$uri"' \
              "$swt_plugin" "$@" 2>"$swt_tmpdir/config-ok.log") || {
        cat "$swt_tmpdir/config-ok.log" >&2
        swt_fail "configuration refused, expected it to work: $*"
    }
    echo "$out"
}

# Stop the server with SIGTERM and wait for it (30 s at most).  It must
# exit with status 0 and print its per-backend unload lines.
swt_stop ()
{
    local pid=$swt_pid rc=0
    [[ -n $pid ]] || swt_fail "swt_stop: no server running"
    if ! kill -TERM "$pid" 2>/dev/null; then
        wait "$pid" || rc=$?
        swt_pid=
        cat "$swt_log" >&2
        swt_fail "nbdkit (pid $pid) exited by itself (status $rc)" \
                 "before it was stopped"
    fi
    if ! swt_wait_gone "$pid" 30; then
        swt_fail "nbdkit (pid $pid) did not exit within 30 s of SIGTERM"
    fi
    wait "$pid" || rc=$?
    swt_pid=
    if [[ $rc -ne 0 ]]; then
        cat "$swt_log" >&2
        swt_fail "nbdkit exited with status $rc after SIGTERM"
    fi
    if ! grep -q '^swaptier: backend ' "$swt_log"; then
        cat "$swt_log" >&2
        swt_fail "no 'swaptier: backend' unload lines in $swt_log"
    fi
}

# Print counter FIELD (capacity, used, free, bad, reads, writes, errors)
# of backend ID from the unload lines of the last server run (or of the
# log file given as $3).  Fails if there is no such line or field.
#   swaptier: backend ID PATH priority P: capacity C used U free F bad B
#             reads R writes W errors E
swt_stat ()
{
    local id=$1 field=$2 log=${3:-$swt_log} value
    value=$(awk -v id="$id" -v f="$field" '
        $1 == "swaptier:" && $2 == "backend" && $3 == id {
            for (i = 4; i < NF; i++)
                if ($i == f) { print $(i + 1); exit }
        }' "$log")
    [[ $value =~ ^[0-9]+$ ]] ||
        swt_fail "no counter '$field' of backend $id in $log"
    echo "$value"
}

# Print the priority of backend ID from the unload lines of the last run.
swt_priority ()
{
    local value
    value=$(awk -v id="$1" '
        $1 == "swaptier:" && $2 == "backend" && $3 == id && $5 == "priority" {
            sub(":", "", $6); print $6; exit
        }' "${2:-$swt_log}")
    [[ $value =~ ^-?[0-9]+$ ]] ||
        swt_fail "no priority of backend $1 in ${2:-$swt_log}"
    echo "$value"
}

# Number of backends in the unload lines of the last run.
swt_nbackends ()
{
    grep -c '^swaptier: backend ' "${1:-$swt_log}"
}

# Check invariant 5 and the absence of errors on every backend of the last
# run: used + free + bad == capacity, errors == 0, bad == 0.
swt_check_counters ()
{
    local n id cap used free bad errors
    n=$(swt_nbackends)
    [[ $n -gt 0 ]] || swt_fail "no backends in $swt_log"
    for ((id = 0; id < n; id++)); do
        cap=$(swt_stat "$id" capacity)
        used=$(swt_stat "$id" used)
        free=$(swt_stat "$id" free)
        bad=$(swt_stat "$id" bad)
        errors=$(swt_stat "$id" errors)
        if ((used + free + bad != cap)); then
            swt_fail "backend $id: used $used + free $free + bad $bad" \
                     "!= capacity $cap"
        fi
        ((errors == 0)) || swt_fail "backend $id: $errors errors"
        ((bad == 0)) || swt_fail "backend $id: $bad bad slots"
    done
}

# Print the unload lines of the last run (for the test log).
swt_show_counters ()
{
    grep '^swaptier: backend ' "${1:-$swt_log}" || true
}

# Run nbdkit with a configuration that must be refused: it must exit
# non-zero without serving, and stderr must contain an error line that
# contains the fixed string PATTERN.
#   swt_expect_error PATTERN key=value...
swt_expect_error ()
{
    local pattern=$1 rc=0 log
    shift
    swt_runs=$((swt_runs + 1))
    log=$swt_tmpdir/nbdkit.$swt_runs.log
    # If the configuration were accepted, --run would exit 0 at once.
    timeout 30 nbdkit -U - --run 'exit 0' "$swt_plugin" "$@" \
        >"$log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        cat "$log" >&2
        swt_fail "configuration accepted, expected an error: $*"
    fi
    if [[ $rc -eq 124 ]]; then
        swt_fail "nbdkit timed out with: $*"
    fi
    if ! grep -F -- "$pattern" "$log" | grep -q 'error'; then
        cat "$log" >&2
        swt_fail "no error message containing '$pattern' for: $*"
    fi
    echo "ok: refused ($pattern): $*"
}
