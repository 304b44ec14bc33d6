#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad input on the control socket, while a fio verify load runs: each
# kind gets an error reply or a closed connection, the server keeps
# answering good clients quickly, and I/O is never disturbed (every fio
# pass verifies).  The kinds:
#   - garbage bytes, control characters and NUL bytes in a line;
#   - unknown commands, wrong arguments, bad escapes, huge numbers,
#     refused operations (unknown ids, a path that cannot be opened);
#   - a thousand bad lines in one write (each gets its reply);
#   - a line longer than the limit (error, then closed);
#   - a client that connects and never writes, and one that stops in
#     the middle of a line (both closed after a few seconds);
#   - more clients than the server takes at once;
#   - a client that sends commands and never reads the replies;
#   - a client that closes its end for writing after a command.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup

swt_start backend="$swt_tmpdir/A" capacity=32M priority=2 \
          backend="$swt_tmpdir/B" capacity=32M priority=1 \
          size=32M control="$ctl_sock"
ctl_load_start $((32 * 1048576))

SOCK=$ctl_sock python3 - <<'EOF'
import os
import random
import socket
import threading
import time

SOCK = os.environ["SOCK"]
rng = random.Random(1234)


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(SOCK)
    return s


def reply(f):
    """Read one reply: data lines, then the ok/error status line."""
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed before a reply; got %r" % lines
        line = line.decode("latin-1").rstrip("\n")
        lines.append(line)
        if line == "ok" or line.startswith(("ok ", "error ")):
            return lines


def ask(f, s, raw):
    s.sendall(raw)
    return reply(f)


def closed(s, within):
    """Check that the server closes s within `within` seconds; returns
    what it sent before closing.  A reset (the server closed with input
    of ours unread) counts as closed."""
    s.settimeout(within)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    except ConnectionResetError:
        return got
    except socket.timeout:
        raise AssertionError("not closed within %s s (got %r)"
                             % (within, got[:200]))


def good_list(limit=1.0):
    """A well-behaved client: list works, and quickly."""
    t = time.monotonic()
    s = connect()
    f = s.makefile("rb")
    r = ask(f, s, b"list\n")
    s.close()
    took = time.monotonic() - t
    assert r[-1].startswith("ok "), r
    assert sum(l.startswith("backend ") for l in r) == 2, r
    assert took < limit, "list took %.2f s" % took


# One connection survives every bad line that is not too long.
s = connect()
f = s.makefile("rb")
bad = [
    (b"\x01\x02garbage\xff\xfe\n", "control character"),
    (b"list\x00list\n", "byte 0x00"),
    (b"\x1b[2Jlist\n", "byte 0x1b"),
    (b"frobnicate\n", "unknown command 'frobnicate'"),
    (b"\n", "empty command"),
    (b"list extra\n", "usage: list"),
    (b"remove\n", "usage: remove ID"),
    (b"remove 99\n", "no backend 99"),
    (b"remove 99999999999999999999999\n", "is not a backend id"),
    (b"priority 0 9999999\n", "is not a number"),
    (b"priority 7 1\n", "no backend 7"),
    (b"add\n", "usage: add"),
    (b"add /nonexistent/dir/file capacity=1M\n", "/nonexistent/dir/file"),
    (b"add %zz\n", "bad %-escape"),
    (b"add nbd://x/y capacity=1M\n", "applies to local files only"),
    (b"add /tmp/f connections=2\n", "apply to remote backends"),
    (b"add /tmp/f colour=red\n", "unknown key 'colour'"),
    (b"%0alist\n", "unknown command"),
]
for raw, want in bad:
    r = ask(f, s, raw)
    assert r[-1].startswith("error ") and want in r[-1], (raw, r)
    assert len(r) == 1, r
print("ok: %d kinds of bad line get an error reply" % len(bad))

# Random bytes, newline-terminated in pieces: one reply per line.
for _ in range(200):
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    junk = junk.replace(b"\n", b" ")
    r = ask(f, s, junk + b"\n")
    assert r[-1].startswith(("error ", "ok")), r
assert ask(f, s, b"list\n")[-1].startswith("ok "), "list after garbage"
print("ok: 200 random lines answered, the connection still works")

# A thousand bad lines in one write: a thousand error replies, in order.
s.sendall(b"".join(b"bogus%d\n" % i for i in range(1000)))
for i in range(1000):
    r = reply(f)
    assert r == ["error unknown command 'bogus%d' (try help)" % i], r
print("ok: 1000 pipelined bad lines, 1000 replies")
s.close()

# A line longer than the limit: the connection closes, after an error
# line unless the client was still sending (then the close is a reset).
s = connect()
try:
    s.sendall(b"x" * 100000)
except (BrokenPipeError, ConnectionResetError):
    pass
got = closed(s, 10)
assert got == b"" or (got.startswith(b"error ") and b"too long" in got), got
s = connect()
s.sendall(b"y" * 5000)
got = closed(s, 10)
assert got == b"" or (got.startswith(b"error ") and b"too long" in got), got
good_list()
print("ok: huge lines are refused and the connection closed")

# Silent clients, and one stopping in the middle of a line: dropped
# after a few seconds; meanwhile others are served.
silent = [connect() for _ in range(3)]
half = connect()
half.sendall(b"li")
t = time.monotonic()
good_list()
for c in silent + [half]:
    got = closed(c, 15)
    assert got.startswith(b"error "), got
waited = time.monotonic() - t
assert 2 <= waited <= 15, "silent clients dropped after %.1f s" % waited
print("ok: silent clients dropped after %.1f s" % waited)

# More clients than the server takes: the extra one is told, then
# closed; once they go, a new client is served.
crowd = [connect() for _ in range(8)]
time.sleep(0.3)
extra = connect()
got = closed(extra, 10)
assert b"too many clients" in got, got
for c in crowd:
    c.close()
time.sleep(0.3)
good_list()
print("ok: a ninth client is turned away, not queued")

# A client that sends commands and never reads the replies: dropped when
# it stops taking them, and never holding the server up.
greedy = connect()
greedy.setblocking(False)
stop = threading.Event()


def flood():
    while not stop.is_set():
        try:
            greedy.send(b"list\n" * 1000)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return


th = threading.Thread(target=flood)
th.start()
for _ in range(20):
    good_list()
    time.sleep(0.1)
stop.set()
th.join()
greedy.close()
print("ok: a client that never reads does not hold the server up")

# Half-closed after a command: the reply still comes, then the close.
s = connect()
s.sendall(b"stats\n")
s.shutdown(socket.SHUT_WR)
got = closed(s, 10).decode()
assert got.splitlines()[-1].startswith("ok "), got
print("ok: a half-closed client gets its reply")
EOF

# The load saw none of it.
ctl_load_stop 2
ctl list
swt_stop
swt_show_counters
swt_check_counters
echo "PASS"
