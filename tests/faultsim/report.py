# SPDX-License-Identifier: BSD-3-Clause
"""Violations and counters of a simulation run.

A violation is anything the cardinal rule forbids: wrong bytes, zeroes in
place of data, stale data, an EIO where no page may be lost, a request
that never ends, a crash, a slow shutdown, a control command that should
have been refused.  Each is printed at once (the first MAX_PRINTED in
full) with the seed and the op number, and summed by class at the end.
"""

import collections
import sys
import threading
import time

MAX_PRINTED = 60


class Report:
    """Thread-safe counters of operations, errors and faults, and the list
    of violations; every print goes to stdout with a time stamp."""

    def __init__(self, seed):
        self.seed = seed
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.ops = collections.Counter()      # op kind -> count
        self.errors = collections.Counter()   # "kind errno" -> count
        self.faults = collections.Counter()   # fault kind -> count
        self.violations = collections.Counter()  # class -> count
        self.first_seen = {}                  # class -> first op label
        self.notes = []                       # extra summary lines
        self.printed = 0

    def elapsed(self):
        """Seconds since the start of the run."""
        return time.monotonic() - self.start

    def log(self, text):
        """Print one line with the time since the start."""
        with self.lock:
            print("[%7.2f] %s" % (self.elapsed(), text), flush=True)

    def op(self, kind):
        """Count one completed request of kind."""
        with self.lock:
            self.ops[kind] += 1

    def error(self, kind, errno_name):
        """Count a request of kind that failed with errno_name (not a
        violation by itself)."""
        with self.lock:
            self.errors["%s %s" % (kind, errno_name)] += 1

    def fault(self, kind):
        """Count one injected fault of kind."""
        with self.lock:
            self.faults[kind] += 1

    def violation(self, vclass, label, text):
        """Record a violation of class vclass by the operation label
        (e.g. "op 3.1207 read off=... len=...") and print it."""
        with self.lock:
            self.violations[vclass] += 1
            self.first_seen.setdefault(vclass, label)
            self.printed += 1
            if self.printed <= MAX_PRINTED:
                print("[%7.2f] VIOLATION %s (seed %d) %s: %s" % (
                    self.elapsed(), vclass, self.seed, label, text),
                    flush=True)
            elif self.printed == MAX_PRINTED + 1:
                print("[%7.2f] (further violations are only counted)" %
                      self.elapsed(), flush=True)

    def total_ops(self):
        """Requests completed so far, all kinds."""
        with self.lock:
            return sum(self.ops.values())

    def print_summary(self, model_summary):
        """Print the counts; returns True when there was no violation."""
        with self.lock:
            out = sys.stdout
            out.write("=== fault-sim summary: seed %d, %.1f s\n" % (
                self.seed, self.elapsed()))
            out.write("operations: %d total; %s\n" % (
                sum(self.ops.values()),
                ", ".join("%s %d" % kv for kv in sorted(self.ops.items()))))
            out.write("failed requests (allowed): %s\n" % (
                ", ".join("%s: %d" % kv for kv in sorted(self.errors.items()))
                or "none"))
            out.write("faults: %d total; %s\n" % (
                sum(self.faults.values()),
                ", ".join("%s %d" % kv for kv in sorted(self.faults.items()))))
            out.write("model: %s\n" % ", ".join(
                "%s %d" % kv for kv in model_summary.items()))
            for line in self.notes:
                out.write(line + "\n")
            if not self.violations:
                out.write("violations: none\n")
                return True
            out.write("violations: %d\n" % sum(self.violations.values()))
            for vclass, n in sorted(self.violations.items()):
                out.write("  %-26s %6d  first: %s\n" % (
                    vclass, n, self.first_seen[vclass]))
            out.write("reproduce: tests/fault-sim.py --seed %d (the schedule "
                      "is the same; timing differs between runs)\n" %
                      self.seed)
            return False
