# SPDX-License-Identifier: BSD-3-Clause
"""The processes of a simulation: remote NBD servers, swaptier, swaptierctl.

Every process is an nbdkit started with -f --exit-with-parent on a Unix
socket in the run's temp dir, so none outlives the simulation.  A remote is
`nbdkit --filter=error file FILE` (its data survives a kill) or
`nbdkit --filter=error memory SIZE` (a kill loses it), with one toggle file
per request type (error-pread-file=, error-pwrite-file=, error-trim-file=,
error-zero-file=): errors are injected at ERROR_RATE while the file exists.
nbdkit 1.32's error filter has no flush key, so flushes cannot fail by
injection; they fail or wait when a server is stopped or killed.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

ERROR_TYPES = ("pread", "pwrite", "trim", "zero")
ERROR_RATE = "30%"
REMOTE_SIZE = 8 << 20


class StartError(Exception):
    """A process did not come up (its log tail is in the message)."""


def _wait_listening(proc, sock, pidfile, log, what):
    """Wait until nbdkit wrote its pid file and listens on sock (10 s)."""
    for _ in range(200):
        if os.path.exists(sock) and os.path.exists(pidfile) and \
                os.path.getsize(pidfile) > 0:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(log, errors="replace") as f:
        tail = f.read()[-2000:]
    raise StartError("%s did not start: %s" % (what, tail))


def _wait_stopped(pid, limit):
    """Wait until every thread of process pid is stopped (state T in
    /proc), at most limit seconds."""
    end = time.monotonic() + limit
    task = "/proc/%d/task" % pid
    while time.monotonic() < end:
        try:
            states = []
            for tid in os.listdir(task):
                with open("%s/%s/stat" % (task, tid)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            return
        if all(st in ("T", "t") for st in states):
            return
        time.sleep(0.001)


class Remote:
    """One remote NBD server (kind "file" or "memory") of size bytes
    behind the error filter, restartable on the same socket path.  Its
    failure domain is that of its server (unix:SOCKET, swaptier's
    default) unless domain names one given with domain=."""

    def __init__(self, tmpdir, name, kind, size=REMOTE_SIZE, domain=None):
        self.name = name
        self.kind = kind
        self.size = size
        self.sock = os.path.join(tmpdir, name + ".sock")
        self.pidfile = os.path.join(tmpdir, name + ".pid")
        self.log = os.path.join(tmpdir, name + ".log")
        self.image = os.path.join(tmpdir, name + ".img")
        self.toggles = {t: os.path.join(tmpdir, "%s.err-%s" % (name, t))
                        for t in ERROR_TYPES}
        self.proc = None
        self.stopped = False
        self.explicit_domain = domain
        self.domain = domain or "unix:" + self.sock
        if kind == "file":
            with open(self.image, "wb") as f:
                f.truncate(size)

    @property
    def uri(self):
        """The NBD URI swaptier connects to."""
        return "nbd+unix:///?socket=" + self.sock

    def start(self):
        """Start the server (a memory server starts empty) and wait until
        it listens."""
        for path in (self.sock, self.pidfile):
            if os.path.exists(path):
                os.unlink(path)
        args = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock,
                "-P", self.pidfile, "--filter=error"]
        args += ["file", self.image] if self.kind == "file" else \
            ["memory", str(self.size)]
        for t in ERROR_TYPES:
            args += ["error-%s-rate=%s" % (t, ERROR_RATE),
                     "error-%s-file=%s" % (t, self.toggles[t])]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.stopped = False
        _wait_listening(self.proc, self.sock, self.pidfile, self.log,
                        "remote " + self.name)

    def set_error(self, req_type, on):
        """Turn error injection for req_type on or off."""
        path = self.toggles[req_type]
        if on:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def clear_errors(self):
        """Turn every kind of error injection off."""
        for t in ERROR_TYPES:
            self.set_error(t, False)

    def kill(self):
        """SIGKILL the server (a crash) and reap it."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.stopped = False

    def pause(self):
        """SIGSTOP the server: it keeps its connections and answers
        nothing until resume().  Returns once every thread of it is
        stopped (at most 2 s): the stop of a thread running on another
        CPU takes effect a little later, and a request sent meanwhile
        (the flush of the flush probe) could still be answered."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped = True
            _wait_stopped(self.proc.pid, 2)

    def resume(self):
        """SIGCONT a server paused by pause()."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def stop(self):
        """Stop the server for good (SIGCONT, SIGTERM, SIGKILL after 5 s)."""
        if self.proc is None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Swaptier:
    """The nbdkit serving swaptier.so, the device under test."""

    def __init__(self, tmpdir, plugin, params):
        self.sock = os.path.join(tmpdir, "swaptier.sock")
        self.ctl_sock = os.path.join(tmpdir, "ctl.sock")
        self.pidfile = os.path.join(tmpdir, "swaptier.pid")
        self.log = os.path.join(tmpdir, "swaptier.log")
        self.args = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock,
                     "-P", self.pidfile, plugin] + params + \
                    ["mlock=off", "control=" + self.ctl_sock]
        self.proc = None

    @property
    def uri(self):
        """The NBD URI of the exported device."""
        return "nbd+unix:///?socket=" + self.sock

    def start(self):
        """Start nbdkit and wait until it serves."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        _wait_listening(self.proc, self.sock, self.pidfile, self.log,
                        "swaptier")

    def alive(self):
        """Whether nbdkit is still running."""
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, limit):
        """SIGTERM nbdkit and wait for it: returns (seconds it took, exit
        status), or (None, None) if it was still there after limit + 15 s
        (then its thread stacks go to its log and it is killed)."""
        t0 = time.monotonic()
        self.proc.terminate()
        try:
            rc = self.proc.wait(limit + 15)
        except subprocess.TimeoutExpired:
            self.dump_stacks()
            self.proc.kill()
            self.proc.wait()
            return None, None
        return time.monotonic() - t0, rc

    def dump_stacks(self):
        """Append the stacks of nbdkit's threads to its log (when gdb is
        installed), to show where it is stuck."""
        if shutil.which("gdb") is None:
            return
        with open(self.log, "ab") as log:
            log.write(b"--- thread stacks (gdb) ---\n")
            log.flush()
            subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                            "-ex", "thread apply all bt"],
                           stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)

    def unload_lines(self):
        """The "swaptier: backend ..." lines nbdkit printed at exit."""
        with open(self.log, errors="replace") as f:
            return [line.strip() for line in f
                    if line.startswith("swaptier: backend ")]

    def log_tail(self, n=30):
        """The last n lines of nbdkit's stderr."""
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])


class Ctl:
    """swaptierctl on the control socket of a Swaptier."""

    def __init__(self, tool, sock):
        self.tool = tool
        self.sock = sock

    def run(self, *args, timeout=60):
        """Run swaptierctl with args: (exit status, stdout + stderr); exit
        status None if it did not finish within timeout."""
        try:
            r = subprocess.run([self.tool, "-s", self.sock] + list(args),
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "swaptierctl %s: no answer in %d s" % (
                " ".join(args), timeout)
        return r.returncode, (r.stdout + r.stderr).strip()

    def listing(self):
        """The parsed `list --json`, or None if the command failed."""
        rc, out = self.run("-j", "list", timeout=30)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def raw(self, command, timeout=30):
        """Send one command line to the control socket itself (not through
        swaptierctl) and return (status line, data records), each record
        (word, {key: value}) with the values unescaped and numbers as
        ints; (None, error text) if the exchange failed.  It shows the
        data lines as the plugin writes them, sizes in slots."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self.sock)
                s.sendall(command.encode() + b"\n")
                buf = b""
                while True:
                    lines = buf.split(b"\n")
                    for i, line in enumerate(lines[:-1]):
                        text = line.decode(errors="replace")
                        if text == "ok" or text.startswith(("ok ", "error ")):
                            return text, [parse_record(l.decode(
                                errors="replace")) for l in lines[:i]]
                    chunk = s.recv(65536)
                    if not chunk:
                        return None, "connection closed: %r" % buf[-200:]
                    buf += chunk
        except OSError as e:
            return None, "%s: %s" % (self.sock, e)

    def state(self):
        """The raw `list` reply as {"backends": [dict], "total": dict,
        "repair": dict or None, "drain": dict or None}, sizes in slots;
        None if it failed."""
        status, records = self.raw("list")
        if status is None or not status.startswith("ok"):
            return None
        doc = {"backends": [], "total": None, "repair": None, "drain": None}
        for word, rec in records:
            if word == "backend":
                doc["backends"].append(rec)
            elif word in doc:
                doc[word] = rec
        return doc


def _unescape(value):
    """A %-escaped word of the control protocol, unescaped."""
    return re.sub(r"%([0-9A-Fa-f]{2})",
                  lambda m: chr(int(m.group(1), 16)), value)


def parse_record(line):
    """(word, {key: value}) of a data line of the control protocol; the
    values that are decimal numbers become ints."""
    words = line.split()
    fields = {}
    for w in words[1:]:
        key, sep, value = w.partition("=")
        if not sep:
            continue
        value = _unescape(value)
        fields[key] = int(value) if re.fullmatch(r"-?[0-9]+", value) \
            else value
    return (words[0] if words else ""), fields
