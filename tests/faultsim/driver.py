# SPDX-License-Identifier: BSD-3-Clause
"""The client side: workers that send random requests to swaptier and check
every answer against the shadow model.

Each worker has its own nbd handle (strict mode off, so unaligned requests
go through) and its own random.Random seeded from the run's seed and its
number, so its sequence of requests is the same for a seed; what differs
between runs is only the interleaving with other workers and with faults.

Requests are writes, reads, trims, zeroes (may-trim or NO_HOLE), with or
without FUA, and flushes; half are page aligned (1 to 256 pages), half
start and end at any byte (1 byte to 1 MiB).  A page-range lock keeps
concurrent requests on disjoint pages, as the kernel's swap does, so the
model's expected state stays exact.  Every request has a deadline,
watched by a thread: one that does not end by then is a "hang"
violation.  Its worker waits for it; should it end after all, its pages
stay locked for the rest of the run (its outcome is unknown) and the
worker goes on with a new connection.
"""

import errno
import gc
import random
import threading
import time

import nbd

from .model import PAGE

MAX_LEN = 1 << 20
HANG = "hang"


def _errno_name(e):
    """The symbolic name of the errno of nbd.Error e (the bindings give
    the name, e.g. "EIO"; "E?" if none)."""
    if isinstance(e.errno, int):
        return errno.errorcode.get(e.errno, "E%d" % e.errno)
    return e.errno or "E?"


class RangeLock:
    """Exclusive locks on page ranges [lo, hi)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.held = []          # [lo, hi) ranges held now

    def acquire(self, lo, hi, timeout):
        """Take [lo, hi) once no held range overlaps it; False if that
        did not happen within timeout seconds."""
        end = time.monotonic() + timeout
        with self.cond:
            while any(a < hi and lo < b for a, b in self.held):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            self.held.append((lo, hi))
            return True

    def release(self, lo, hi):
        """Give back a range taken by acquire."""
        with self.cond:
            self.held.remove((lo, hi))
            self.cond.notify_all()


class Op:
    """One request: kind is write, read, trim, zero, flush; flags says
    FUA and, for a zero, NO_HOLE; data is the bytes of a write."""

    __slots__ = ("kind", "offset", "length", "fua", "no_hole", "data",
                 "label")

    def __init__(self, kind, offset=0, length=0, fua=False, no_hole=False,
                 data=None):
        self.kind = kind
        self.offset = offset
        self.length = length
        self.fua = fua
        self.no_hole = no_hole
        self.data = data
        self.label = ""

    def describe(self):
        """kind, offset, length and flags as one short text."""
        if self.kind == "flush":
            return "flush"
        flags = (["fua"] if self.fua else []) + \
            (["no_hole"] if self.no_hole else [])
        return "%s off=%d len=%d%s" % (
            self.kind, self.offset, self.length,
            (" " + ",".join(flags)) if flags else "")

    def pages(self):
        """The page range [lo, hi) the request touches."""
        return self.offset // PAGE, (self.offset + self.length - 1) // PAGE + 1


def random_op(rng, size):
    """A random request over a device of size bytes, drawn from rng alone
    (so a seed always gives the same sequence)."""
    kind = rng.choices(("write", "read", "trim", "zero", "flush"),
                       (38, 38, 8, 11, 3))[0]
    if kind == "flush":
        return Op("flush")
    if rng.random() < 0.5:
        npages = rng.choice((1, 1, 1, rng.randint(2, 16), rng.randint(2, 16),
                             rng.randint(17, 256)))
        npages = min(npages, size // PAGE)
        offset = rng.randrange(0, size // PAGE - npages + 1) * PAGE
        length = npages * PAGE
    else:
        length = min(int(2 ** rng.uniform(0, 20)), MAX_LEN, size)
        offset = rng.randrange(0, size - length + 1)
    op = Op(kind, offset, length, fua=rng.random() < 0.1,
            no_hole=(kind == "zero" and rng.random() < 0.5))
    if kind == "write":
        op.data = rng.randbytes(length)
    return op


class Driver:
    """Runs requests against swaptier, checks them against the model and
    records violations in the report."""

    def __init__(self, uri, model, report, seed, deadline):
        self.uri = uri
        self.model = model
        self.report = report
        self.seed = seed
        self.deadline = deadline
        self.size = model.npages * PAGE
        self.ranges = RangeLock()
        # Flushes and FUA requests (a FUA trim or zero flushes every
        # backend) take it, so that the flush probe of faults.py knows
        # that no flush runs.
        self.flush_gate = threading.Lock()
        self.stop = threading.Event()
        self.dead = threading.Event()   # swaptier gone: stop everything
        self.abandoned = []             # handles of hung requests
        self.issued = 0
        self.issued_lock = threading.Lock()
        self.skipped = 0
        # Requests running now: id -> [start time, op, reported as hung].
        self.inflight = {}
        self.inflight_lock = threading.Lock()
        threading.Thread(target=self._watchdog, name="watchdog",
                         daemon=True).start()

    def connect(self):
        """A new handle connected to swaptier (strict mode off)."""
        h = nbd.NBD()
        h.set_strict_mode(0)
        h.connect_uri(self.uri)
        return h

    # --- one request ---------------------------------------------------------

    def _call(self, h, op):
        """Run op on h with the blocking API (libnbd 1.14's Python aio
        calls never free an nbd.Buffer, so they cannot carry millions of
        requests); returns the bytes of a read, else None."""
        fua = nbd.CMD_FLAG_FUA if op.fua else 0
        if op.kind == "read":
            return h.pread(op.length, op.offset)
        if op.kind == "write":
            h.pwrite(op.data, op.offset, flags=fua)
        elif op.kind == "trim":
            h.trim(op.length, op.offset, flags=fua)
        elif op.kind == "zero":
            h.zero(op.length, op.offset, flags=fua | (
                nbd.CMD_FLAG_NO_HOLE if op.no_hole else 0))
        else:
            h.flush()
        return None

    def wait_for(self, h, cookie, deadline):
        """Wait for the aio command cookie: None on success, the nbd.Error
        if it failed, HANG if it had not ended by deadline seconds."""
        end = time.monotonic() + deadline
        while True:
            try:
                if h.aio_command_completed(cookie):
                    return None
            except nbd.Error as e:
                return e
            left = end - time.monotonic()
            if left <= 0:
                return HANG
            h.poll(int(min(left, 0.5) * 1000) + 1)

    def _watchdog(self):
        """Report every request still running past the deadline as a hang
        (once); runs as long as the process."""
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self.inflight_lock:
                late = [e for e in self.inflight.values()
                        if not e[2] and now - e[0] > self.deadline]
                for entry in late:
                    entry[2] = True
            for _, op, _ in late:
                self.report.violation(
                    "hang", op.label, "%s did not end within %d s" % (
                        op.describe(), self.deadline))

    def execute(self, h, op):
        """Run op on h (the caller holds its pages), update the model and
        check the answer.  Returns False if h can no longer be used (the
        request hung, as the watchdog reported, or the connection died)."""
        token = self.model.begin_op()
        entry = [time.monotonic(), op, False]
        with self.inflight_lock:
            self.inflight[id(entry)] = entry
        data = outcome = None
        try:
            data = self._call(h, op)
        except nbd.Error as e:
            outcome = e
        finally:
            with self.inflight_lock:
                del self.inflight[id(entry)]
        if entry[2]:
            return False
        if outcome is not None and (h.aio_is_dead() or h.aio_is_closed()):
            self.dead.set()
            self.report.violation(
                "connection-lost", op.label, "%s: %s (swaptier crashed?)" % (
                    op.describe(), outcome))
            return False
        ok = outcome is None
        self.report.op(op.kind)
        if not ok:
            self.report.error(op.kind + (" no_hole" if op.no_hole else "") +
                              (" fua" if op.fua else ""),
                              _errno_name(outcome))
        if op.kind == "write":
            self.model.write(op.offset, op.data, ok, token)
            if not ok:
                self._check_write_error(op, outcome, token)
        elif op.kind == "zero":
            self.model.zero(op.offset, op.length, not op.no_hole, ok, token)
        elif op.kind == "trim":
            self.model.trim(op.offset, op.length, ok, token)
        elif op.kind == "read":
            self._check_read(op, data, outcome)
        return True

    def _check_write_error(self, op, outcome, token):
        """With copies >= 2 and no loss window, a write without FUA may
        not fail with EIO (a copy that cannot be written goes elsewhere,
        or the write is acknowledged with fewer copies).  FUA writes,
        which also flush, keep the allowance of copies=1."""
        if not op.fua and _errno_name(outcome) == "EIO" and \
                self.model.protected(token):
            self.report.violation(
                "write-eio", op.label, "%s failed with EIO while fewer "
                "than copies=%d failure domains were disrupted" % (
                    op.describe(), self.model.copies))

    def _check_read(self, op, data, outcome):
        """Check a read's answer: its bytes, or an EIO only where a page
        may be lost."""
        if outcome is not None:
            name = _errno_name(outcome)
            if name == "EIO" and self.model.may_fail(op.offset, op.length):
                return
            self.report.violation(
                "eio-not-lost" if name == "EIO" else "read-error", op.label,
                "%s failed with %s but no page in it may be lost" % (
                    op.describe(), name) if name == "EIO" else
                "%s failed with %s (a read may only fail with EIO, where a "
                "page may be lost)" % (op.describe(), name))
            return
        for kind, _page, text in self.model.check_read(
                op.offset, data):
            self.report.violation(kind, op.label, op.describe() + ": " + text)

    # --- workers --------------------------------------------------------------

    def _take_slot(self, limit):
        """Count one more request; False once limit requests were issued."""
        with self.issued_lock:
            if limit and self.issued >= limit:
                return False
            self.issued += 1
            return True

    def run_worker(self, wid, limit):
        """The loop of worker wid until stop (or limit requests in all)."""
        rng = random.Random(self.seed * 1000 + wid)
        try:
            h = self.connect()
        except nbd.Error as e:
            self.dead.set()
            self.report.violation("connection-lost", "worker %d" % wid, str(e))
            return
        n = 0
        while not self.stop.is_set() and not self.dead.is_set() and \
                self._take_slot(limit):
            n += 1
            op = random_op(rng, self.size)
            op.label = "op %d.%d %s" % (wid, n, op.describe())
            if not self._run_locked(h, op):
                self.abandoned.append(h)
                try:
                    h = self.connect()
                except nbd.Error as e:
                    self.dead.set()
                    self.report.violation("connection-lost", op.label, str(e))
                    return
        h.shutdown()

    def _run_locked(self, h, op):
        """Run op with its pages (and the flush gate where it flushes)
        held; False if h is no longer usable.  A request whose pages stay
        held by a hung one is skipped."""
        gate = op.kind == "flush" or op.fua
        if gate and not self.flush_gate.acquire(timeout=self.deadline):
            self.skipped += 1
            return True
        try:
            if op.kind == "flush":
                return self.execute(h, op)
            lo, hi = op.pages()
            if not self.ranges.acquire(lo, hi, self.deadline + 5):
                self.skipped += 1
                return True
            usable = False
            try:
                usable = self.execute(h, op)
            finally:
                # A hung request keeps its pages: its outcome is unknown.
                if usable:
                    self.ranges.release(lo, hi)
            return usable
        finally:
            if gate:
                self.flush_gate.release()

    def close_abandoned(self):
        """Close the connections of hung requests (already reported), so
        that they do not hold nbdkit's shutdown."""
        self.abandoned.clear()
        gc.collect()    # a handle closes its connection when collected

    def verify_all(self, h, chunk_pages=64):
        """Read the whole device and check every page (once the faults
        have ended); pages still held by hung requests are skipped.
        Returns False if the connection died."""
        npages = self.model.npages
        for first in range(0, npages, chunk_pages):
            n = min(chunk_pages, npages - first)
            spans = [(first, n)] if self.ranges.acquire(first, first + n, 0) \
                else [(p, 1) for p in range(first, first + n)
                      if self.ranges.acquire(p, p + 1, 0)]
            for lo, count in spans:
                op = Op("read", lo * PAGE, count * PAGE)
                op.label = "final-verify " + op.describe()
                if not self.execute(h, op):
                    return False
                self.ranges.release(lo, lo + count)
        return True
