# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the tests of remote backends (test-remote.sh, test-errors.sh),
# on top of functions.sh.  Source both:
#
#   source "$(dirname "$0")/functions.sh"
#   source "$(dirname "$0")/remote-functions.sh"
#   swt_setup
#   rmt_setup                      # fio (nbd engine), python3 with nbd
#   rmt_start a1 memory 32M        # nbdkit on $swt_tmpdir/a1.sock
#   swt_start backend="$(rmt_uri a1)" ...
#   rmt_fio_cmd OUT fio-args...    # fio verify=crc32c over swaptier
#   rmt_fio_check OUT MIN_BYTES    # every job verified, MIN_BYTES written
#   rmt_check_invariant5           # used + free + bad == capacity
#   rmt_stop a1                    # or rmt_kill a1 (SIGKILL, a crash)
#
# Every helper is prefixed rmt_.  The servers still running at exit are
# stopped (after swaptier).

# The swt_ variables read here are set by functions.sh.
# shellcheck disable=SC2154

# The tools every remote test needs (fio with its nbd engine, python3 with
# the nbd module), and the stopping of the servers at exit.  Call it after
# swt_setup.
rmt_setup ()
{
    swt_require fio python3
    swt_require_python_nbd
    fio --enghelp 2>/dev/null | grep -qw nbd || {
        echo "SKIP: fio has no nbd engine" >&2
        exit 77
    }
    swt_on_exit rmt_cleanup
}

# --- Remote servers ---------------------------------------------------------
# Each is an nbdkit started by the test on $swt_tmpdir/NAME.sock, logging
# to $swt_tmpdir/NAME.log; rmt_pid maps NAME to its pid while it runs.
declare -A rmt_pid=()

# The URI of server NAME.
rmt_uri ()
{
    echo "nbd+unix:///?socket=$swt_tmpdir/$1.sock"
}

# Start server NAME: rmt_start NAME [nbdkit options] PLUGIN [params...]
# Returns once its socket listens; fails if nbdkit exits or within 10 s.
rmt_start ()
{
    local name=$1 sock=$swt_tmpdir/$1.sock pidfile=$swt_tmpdir/$1.pid i
    shift
    [[ -z ${rmt_pid[$name]:-} ]] || swt_fail "rmt_start: $name is running"
    rm -f "$pidfile"
    nbdkit -f --exit-with-parent -U "$sock" -P "$pidfile" "$@" \
        2>>"$swt_tmpdir/$name.log" &
    rmt_pid[$name]=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile && -S $sock ]] && return 0
        if ! kill -0 "${rmt_pid[$name]}" 2>/dev/null; then
            cat "$swt_tmpdir/$name.log" >&2
            swt_fail "remote server $name did not start: nbdkit $*"
        fi
        sleep 0.1
    done
    swt_fail "remote server $name: no socket within 10 s"
}

# Stop server NAME (SIGTERM, SIGKILL if still there after 10 s).  Fails
# if it is no longer running.
rmt_stop ()
{
    local pid=${rmt_pid[$1]}
    kill -TERM "$pid"
    swt_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
    unset "rmt_pid[$1]"
}

# Kill server NAME with SIGKILL (a crash), leaving its socket behind.
rmt_crash ()
{
    local pid=${rmt_pid[$1]}
    kill -KILL "$pid"
    { wait "$pid"; } 2>/dev/null || true
    unset "rmt_pid[$1]"
}

# The same, and remove the stale socket so that the server can be started
# again on the same path (nbdkit does not replace an existing socket).
rmt_kill ()
{
    rmt_crash "$1"
    rm -f "$swt_tmpdir/$1.sock" "$swt_tmpdir/$1.pid"
}

# At exit (after swaptier is stopped): stop the servers still running,
# also those that have exited meanwhile.
rmt_cleanup ()
{
    local name pid
    for name in "${!rmt_pid[@]}"; do
        pid=${rmt_pid[$name]}
        kill -TERM "$pid" 2>/dev/null || true
        swt_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        { wait "$pid"; } 2>/dev/null || true
        unset "rmt_pid[$name]"
    done
}

# --- fio and counter helpers -------------------------------------------------

# fio over swaptier with verify=crc32c (writes, then reads everything
# back): rmt_fio_cmd OUT fio-args...; the caller checks its status.
rmt_fio_cmd ()
{
    local out=$1
    shift
    fio --output-format=json --output="$out" --ioengine=nbd --uri="$swt_uri" \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --randrepeat=0 "$@"
}

# Check the JSON of a fio run: no job error, at least $2 bytes written in
# all, and every job read back (verify) at least what it wrote.
rmt_fio_check ()
{
    python3 - "$1" "$2" <<'EOF' || { cat "$1" >&2; swt_fail "fio result $1"; }
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
total = 0
for j in jobs:
    name, err = j["jobname"], j["error"]
    written, read = j["write"]["io_bytes"], j["read"]["io_bytes"]
    print("fio %s: error %d, wrote %d bytes, verified %d bytes" % (
        name, err, written, read))
    assert err == 0, "%s: error %d" % (name, err)
    assert read >= written, "%s: verify read back less than was written" % name
    total += written
assert total >= int(sys.argv[2]), "wrote only %d bytes" % total
EOF
}

# Fail unless used + free + bad == capacity for every backend of the last
# run (invariant 5; errors and bad slots allowed).
rmt_check_invariant5 ()
{
    local n id cap used free bad
    n=$(swt_nbackends)
    for ((id = 0; id < n; id++)); do
        cap=$(swt_stat "$id" capacity)
        used=$(swt_stat "$id" used)
        free=$(swt_stat "$id" free)
        bad=$(swt_stat "$id" bad)
        ((used + free + bad == cap)) ||
            swt_fail "backend $id: used $used + free $free + bad $bad != capacity $cap"
    done
}

# Check the JSON of a fio run that only reads and verifies (--verify_only,
# or a read workload with verify=): no job error, and at least $2 bytes
# read and checked in all.
rmt_fio_check_read ()
{
    python3 - "$1" "$2" <<'EOF' || { cat "$1" >&2; swt_fail "fio result $1"; }
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
total = 0
for j in jobs:
    name, err, read = j["jobname"], j["error"], j["read"]["io_bytes"]
    print("fio %s: error %d, read and verified %d bytes" % (name, err, read))
    assert err == 0, "%s: error %d" % (name, err)
    total += read
assert total >= int(sys.argv[2]), "read only %d bytes" % total
EOF
}
