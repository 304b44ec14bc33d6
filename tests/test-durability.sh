#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Durability of local backends, seen in the system calls nbdkit makes
# (strace -f -y on the real server):
#   - a plain write reaches the backend file as pwritev2 without
#     RWF_DSYNC, and no fdatasync;
#   - a FUA write reaches it as pwritev2 with RWF_DSYNC (or, where the
#     kernel refuses RWF_DSYNC, a plain pwritev2 followed by fdatasync)
#     before the reply;
#   - a flush calls fdatasync on the backend that was written.
# The data slots start at file offset 4096 (slot 0 is the header).
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require strace
swt_require_python_nbd
d=$swt_tmpdir

# strace in front of nbdkit: swt_start runs "nbdkit" from PATH.
mkdir "$d/bin"
cat > "$d/bin/nbdkit" <<EOF
#!/bin/sh
exec strace -f -y -qq -s 0 -o "$d/trace" -e trace=pwritev2,fdatasync \\
    "$(command -v nbdkit)" "\$@"
EOF
chmod +x "$d/bin/nbdkit"
PATH=$d/bin:$PATH

# Backend a (priority 2) takes every write; b (priority 1) none.
swt_start backend="$d/a" capacity=8M priority=2 \
          backend="$d/b" capacity=8M priority=1
# swt_pid is strace's; stop nbdkit itself (the pid file) at the end.
nbdkit_pid=$(cat "$d/nbdkit.$swt_runs.pid")

"$swt_python" - "$swt_uri" "$d/trace" "$d/a" <<'EOF'
import nbd, re, sys, time

uri, trace, backend = sys.argv[1:]
pos = 0

def calls():
    """The pwritev2 and fdatasync calls on the backend file since the
    last call of calls(), as (name, offset, flags) tuples."""
    global pos
    with open(trace) as f:
        f.seek(pos)
        text = f.read()
        pos = f.tell()
    out = []
    for line in text.splitlines():
        m = re.search(r"(pwritev2|fdatasync)\(\d+<([^>]*)>(.*)", line)
        if m is None or m.group(2) != backend:
            continue
        if m.group(1) == "fdatasync":
            out.append(("fdatasync", None, None))
            continue
        a = re.match(r", \[.*\], \d+, (\d+), (\w+)\) = (-?\d+)", m.group(3))
        assert a, "cannot parse: " + line
        if int(a.group(3)) > 0:
            out.append(("pwritev2", int(a.group(1)), a.group(2)))
    return out

h = nbd.NBD()
h.connect_uri(uri)
time.sleep(0.2)
calls()

h.pwrite(b"p" * 8192, 0)
c = calls()
print("plain write:", c)
writes = [x for x in c if x[0] == "pwritev2"]
assert writes and all(off >= 4096 for _, off, _ in writes), \
    "the plain write did not reach the data slots of %s: %s" % (backend, c)
assert all(flags == "0" for _, _, flags in writes), \
    "a plain write was made with %s" % c
assert ("fdatasync", None, None) not in c, "a plain write was synced: %s" % c

h.pwrite(b"f" * 8192, 8192, nbd.CMD_FLAG_FUA)
c = calls()
print("FUA write:", c)
writes = [x for x in c if x[0] == "pwritev2"]
assert writes and all(off >= 4096 for _, off, _ in writes), c
dsync = all(flags == "RWF_DSYNC" for _, _, flags in writes)
synced = c[-1][0] == "fdatasync"
assert dsync or synced, \
    "a FUA write reached %s neither with RWF_DSYNC nor followed by " \
    "fdatasync: %s" % (backend, c)

h.pwrite(b"q" * 4096, 16384)
calls()
h.flush()
c = calls()
print("flush:", c)
assert ("fdatasync", None, None) in c, \
    "a flush did not call fdatasync on %s: %s" % (backend, c)

# What was written reads back.
assert h.pread(8192, 0) == b"p" * 8192
assert h.pread(8192, 8192) == b"f" * 8192
h.shutdown()
print("ok: plain, FUA and flush reach the backend file as they must")
EOF

kill -TERM "$nbdkit_pid"
swt_wait_gone "$swt_pid" 30 || swt_fail "nbdkit did not exit under strace"
wait "$swt_pid" || swt_fail "strace nbdkit exited with status $?"
swt_pid=
grep -q '^swaptier: backend 0 ' "$swt_log" || swt_fail "no unload lines"
swt_check_counters
echo "PASS"
