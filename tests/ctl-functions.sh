# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the tests of runtime control (control=, swaptierctl), on top
# of functions.sh.  Source both:
#
#   source "$(dirname "$0")/functions.sh"
#   source "$(dirname "$0")/ctl-functions.sh"
#   ctl_setup                      # after swt_setup: swaptierctl, fio
#   swt_start ... control="$ctl_sock"
#   ctl list                       # swaptierctl on that socket
#   ctl_get 2 used                 # a field of backend 2 in list --json
#   ctl_load_start 48M             # fio write+verify passes, background
#   ctl_load_stop                  # fails unless every pass verified
#
# Every helper is prefixed ctl_.

# The ctl_ variables set here are read by the tests.
# shellcheck disable=SC2034

# swaptierctl next to the plugin, the control socket's path, and the
# tools the tests need (python3 to read JSON, fio with its nbd engine).
ctl_setup ()
{
    swt_require fio python3
    fio --enghelp 2>/dev/null | grep -qw nbd || {
        echo "SKIP: fio has no nbd engine" >&2
        exit 77
    }
    ctl_tool=$(dirname "$swt_plugin")/ctl/swaptierctl
    [[ -x $ctl_tool ]] || swt_fail "swaptierctl not found: $ctl_tool"
    ctl_sock=$swt_tmpdir/control.sock
    ctl_load_pid=
    swt_on_exit ctl_load_kill
}

# Run swaptierctl on the test's control socket.
ctl ()
{
    "$ctl_tool" -s "$ctl_sock" "$@"
}

# Print field FIELD of backend ID from "list --json", or "none" if the
# list has no such backend.  With ID "total" or "drain", of that record
# ("none" if it is null).
ctl_get ()
{
    ctl list --json | python3 -c '
import json, sys
doc, key, field = json.load(sys.stdin), sys.argv[1], sys.argv[2]
if key in ("total", "drain"):
    rec = doc[key]
else:
    rec = next((b for b in doc["backends"] if b["id"] == int(key)), None)
print("none" if rec is None else rec[field])' "$1" "$2"
}

# Wait up to $2 seconds for the shell condition $1 (a string for eval)
# to hold; fail with message $3 if it does not.
ctl_wait_for ()
{
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if eval "$1"; then
            return 0
        fi
        sleep 0.1
    done
    swt_fail "$3 (waited $2 s for: $1)"
}

# Run fio write+verify passes over the first $1 bytes of the device in
# the background until ctl_load_stop: each pass writes every 4 KiB block
# once in random order from two connections at iodepth 16, then reads
# them all back and checks them.  The JSON of pass N goes to
# $swt_tmpdir/load.N.json; a failed pass stops the loop and is recorded.
ctl_load_start ()
{
    local size=$1
    rm -f "$swt_tmpdir/load.stop" "$swt_tmpdir/load.failed"
    (
        pass=0
        while [[ ! -e $swt_tmpdir/load.stop ]]; do
            pass=$((pass + 1))
            if ! fio --output-format=json --output="$swt_tmpdir/load.$pass.json" \
                   --ioengine=nbd --uri="$swt_uri" --verify=crc32c \
                   --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
                   --randrepeat=0 --name=load --rw=randwrite --bs=4k \
                   --iodepth=16 --numjobs=2 --size=$((size / 2)) \
                   --offset_increment=$((size / 2)) \
                   >"$swt_tmpdir/load.$pass.err" 2>&1; then
                echo "$pass" > "$swt_tmpdir/load.failed"
                break
            fi
        done
    ) &
    ctl_load_pid=$!
}

# Stop the load after its current pass; fail if a pass failed or fewer
# than $1 passes (default 1) completed.  Prints the passes and the worst
# completion latency of a write and of a read (verify) seen, in ms.
ctl_load_stop ()
{
    local passes
    [[ -n $ctl_load_pid ]] || swt_fail "ctl_load_stop: no load running"
    touch "$swt_tmpdir/load.stop"
    wait "$ctl_load_pid" || true
    ctl_load_pid=
    if [[ -e $swt_tmpdir/load.failed ]]; then
        passes=$(cat "$swt_tmpdir/load.failed")
        cat "$swt_tmpdir/load.$passes.err" "$swt_tmpdir/load.$passes.json" \
            >&2 || true
        swt_fail "fio verify pass $passes failed"
    fi
    python3 - "$swt_tmpdir" "${1:-1}" <<'EOF'
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/load.*.json"))
done = wmax = rmax = 0
for f in files:
    try:
        jobs = json.load(open(f))["jobs"]
    except ValueError:
        continue                # the pass cut short by the stop
    for j in jobs:
        assert j["error"] == 0, "%s: error %d" % (f, j["error"])
        wmax = max(wmax, j["write"]["clat_ns"]["max"])
        rmax = max(rmax, j["read"]["clat_ns"]["max"])
    done += 1
print("load: %d fio passes verified; worst latency: write %.1f ms, "
      "read %.1f ms" % (done, wmax / 1e6, rmax / 1e6))
assert done >= int(sys.argv[2]), "only %d passes completed" % done
EOF
}

# At exit: stop a load left running by a failed test.
ctl_load_kill ()
{
    if [[ -n ${ctl_load_pid:-} ]]; then
        touch "$swt_tmpdir/load.stop"
        kill "$ctl_load_pid" 2>/dev/null || true
        wait "$ctl_load_pid" 2>/dev/null || true
    fi
}

# --- The raw control protocol -------------------------------------------------

# Send the command line $1 to the control socket and print the reply as
# it comes: its data lines, then its status line ("ok ..." or "error
# ..."); status 1 if that is an error.
ctl_raw ()
{
    python3 - "$ctl_sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
f = s.makefile("rb")
while True:
    raw = f.readline()
    if not raw:
        sys.exit("control socket closed before the status line")
    line = raw.decode("latin-1").rstrip("\n")
    print(line)
    if line == "ok" or line.startswith(("ok ", "error ")):
        sys.exit(1 if line.startswith("error") else 0)
EOF
}

# Print field FIELD ($2) of record $1 in the raw reply to list: of the
# first data line of that name ("total", "repair", "drain"), or, with a
# number, of that backend's line; "none" if there is no such field.  The
# value is printed as sent (%-escaped).  With a file $3 (a reply saved
# from ctl_raw list), from that reply instead of a new one.
ctl_raw_get ()
{
    { if [[ -n ${3:-} ]]; then cat "$3"; else ctl_raw list; fi; } |
    awk -v rec="$1" -v f="$2" '
        $1 == rec || ($1 == "backend" && $2 == "id=" rec) {
            for (i = 2; i <= NF; i++)
                if (index($i, f "=") == 1) {
                    print substr($i, length(f) + 2)
                    found = 1
                    exit
                }
        }
        END { if (!found) print "none" }'
}

# The same for a field that must be a number; fails the test if it is
# not.  Use it in an assignment (x=$(ctl_raw_num total used)), so that
# the failure stops the test.
ctl_raw_num ()
{
    local value
    value=$(ctl_raw_get "$@")
    [[ $value =~ ^[0-9]+$ ]] ||
        swt_fail "list: field $2 of $1 is '$value', not a number"
    echo "$value"
}

# Print the sum of field FIELD ($1, default used) over the live
# backends (state active, and not given up: health not dead), from the
# raw reply to list (or from the reply saved in file $2).  A remote
# backend whose server is given up may still show state=active.
ctl_raw_sum_live ()
{
    { if [[ -n ${2:-} ]]; then cat "$2"; else ctl_raw list; fi; } |
    awk -v f="${1:-used}" '
        $1 == "backend" && / state=active / && !/ health=dead / {
            for (i = 2; i <= NF; i++)
                if (index($i, f "=") == 1)
                    sum += substr($i, length(f) + 2)
        }
        END { print sum + 0 }'
}
