# SPDX-License-Identifier: BSD-3-Clause
"""The seeded fault schedule and the population of backends.

One thread injects faults one after another, drawn from its own
random.Random (seeded from the run's seed): first every kind once in a
seeded order, so that even a short run sees each, then by weight.  The
kinds, and what they tell the model:

  err-pread/pwrite/trim/zero  error injection on one remote for 0.5-3 s
                  (toggle file of its error filter; overlaps later faults).
                  Read errors lose pages: a loss window while it is on.
  stop-short      SIGSTOP a remote past timeout= but well within grace=,
                  then SIGCONT: requests time out, nothing may be lost.
  kill-restart    SIGKILL the file remote, restart it within grace= on the
                  same socket (data kept): nothing may be lost.
  stop-long       SIGSTOP past grace=: the backend is given up (loss window).
  kill-late       SIGKILL the file remote, restart it after grace= (loss).
  lose-memory     SIGKILL the memory remote, restart it empty (loss).
  flap            SIGSTOP/SIGCONT a remote in a loop, each stop longer than
                  timeout=, for longer than the request deadline: reads
                  must end (EIO allowed: loss window), never hang.
  priority        swaptierctl priority of a random active backend.
  remove-add      swaptierctl add a new backend, then remove (drain) one;
                  a removal that reports lost pages is a loss.
  add-duplicate   swaptierctl add of an export or file in use (by another
                  spelling too): it must be refused.
  flush-probe     with no flush running, make a remote hold acknowledged
                  unflushed writes, SIGSTOP it, flush: the flush must not
                  succeed before the remote answers again.

After each fault, failed backends are replaced (add a new one of the same
kind, then remove the failed one), so the device keeps its capacity.  The
targets of faults depend on which backends exist, which depends on timing:
the same seed gives the same sequence of fault kinds and durations, not
always the same targets.
"""

import os
import random
import re
import threading
import time

from .driver import HANG, Op
from .model import PAGE
from .procs import Remote

KIND_WEIGHTS = {
    "err-pread": 8, "err-pwrite": 8, "err-trim": 6, "err-zero": 4,
    "stop-short": 8, "kill-restart": 6, "stop-long": 1, "kill-late": 1,
    "lose-memory": 2, "flap": 1, "priority": 6, "remove-add": 3,
    "add-duplicate": 2, "flush-probe": 3,
}
LOCAL_CAPACITY = 8 << 20
DRAIN_LIMIT = 120


class Backend:
    """A backend of swaptier as the simulation knows it: its id, kind
    ("local", "file", "memory"), target, and Remote server if remote."""

    def __init__(self, bid, kind, target, remote=None):
        self.bid = bid
        self.kind = kind
        self.target = target
        self.remote = remote
        self.replaced = False   # a replacement was added for it


class Cluster:
    """The backends and remote servers of a run, and their management
    through swaptierctl."""

    def __init__(self, tmpdir, ctl, timeout, grace, report):
        self.tmpdir = tmpdir
        self.ctl = ctl
        self.timeout = timeout
        self.grace = grace
        self.report = report
        self.backends = {}      # id -> Backend
        self.names = 0

    def _name(self, prefix):
        """A fresh name for a server or file."""
        self.names += 1
        return "%s%d" % (prefix, self.names)

    def new_local(self):
        """The path of a new local backend file (created by swaptier)."""
        return os.path.join(self.tmpdir, self._name("local") + ".img")

    def new_remote(self, kind):
        """Start a new remote server of kind "file" or "memory"."""
        remote = Remote(self.tmpdir, self._name(kind), kind)
        remote.start()
        return remote

    def remote_params(self):
        """The per-backend keys of a remote backend."""
        return ["connections=2", "timeout=%d" % self.timeout,
                "grace=%d" % self.grace]

    def remotes(self, kind=None):
        """The remote servers in use by a backend (of kind, if given)."""
        return [b.remote for b in self.backends.values()
                if b.remote is not None and kind in (None, b.kind)]

    def add(self, kind, priority):
        """Add a new backend of kind through swaptierctl; the Backend, or
        None if swaptier refused it (then the reason is logged)."""
        remote = None
        if kind == "local":
            target = self.new_local()
            args = [target, "capacity=%d" % LOCAL_CAPACITY]
        else:
            remote = self.new_remote(kind)
            target = remote.uri
            args = [target] + self.remote_params()
        rc, out = self.ctl.run("add", *args, "priority=%d" % priority)
        m = re.search(r"backend (\d+) added", out)
        if rc != 0 or not m:
            self.report.log("add %s refused: %s" % (target, out))
            if remote is not None:
                remote.stop()
            return None
        b = Backend(int(m.group(1)), kind, target, remote)
        self.backends[b.bid] = b
        self.report.log("added backend %d (%s) %s" % (b.bid, kind, target))
        return b

    def remove(self, bid, model, should_stop):
        """Remove backend bid (drain) and wait for the removal to end.
        A removal that lost pages is a loss for the model; one that does
        not end within DRAIN_LIMIT s is a violation.  Returns True if the
        backend is gone."""
        rc, out = self.ctl.run("remove", str(bid))
        if rc != 0:
            self.report.log("remove %d refused: %s" % (bid, out))
            return False
        end = time.monotonic() + DRAIN_LIMIT
        while True:
            d = (self.ctl.listing() or {}).get("drain") or {}
            if d.get("lost"):
                model.loss_now()
            if d.get("id") == bid and d.get("state") != "running":
                break
            if time.monotonic() > end:
                self.report.violation("drain-stuck", "remove %d" % bid,
                                      "removal still running after %d s: %s"
                                      % (DRAIN_LIMIT, d))
                return False
            if should_stop() and time.monotonic() > end - DRAIN_LIMIT + 30:
                return False
            time.sleep(0.25)
        self.report.log("removal of %d: %s moved=%s lost=%s" % (
            bid, d.get("state"), d.get("moved"), d.get("lost")))
        if d.get("state") != "done":
            return False
        gone = self.backends.pop(bid, None)
        if gone is not None and gone.remote is not None:
            gone.remote.stop()
        return True

    def states(self):
        """id -> (state, health) from swaptierctl list; {} if it failed."""
        doc = self.ctl.listing() or {}
        return {b["id"]: (b["state"], b.get("health", "up"))
                for b in doc.get("backends", [])}

    def counters(self, bid):
        """(writes, errors) of backend bid, or None."""
        doc = self.ctl.listing() or {}
        for b in doc.get("backends", []):
            if b["id"] == bid:
                return b["writes"], b["errors"]
        return None

    def shutdown(self):
        """Stop every remote server."""
        for b in self.backends.values():
            if b.remote is not None:
                b.remote.stop()


class FaultInjector(threading.Thread):
    """The thread that runs the fault schedule until stop is set."""

    def __init__(self, cluster, model, driver, report, seed, skip):
        super().__init__(name="faults", daemon=True)
        self.cluster = cluster
        self.model = model
        self.driver = driver
        self.report = report
        self.rng = random.Random(seed ^ 0x5EED5EED)
        self.stop = threading.Event()
        self.pending = []       # (time, remote, request type) to turn off
        self.kinds = [k for k in KIND_WEIGHTS if k not in skip]
        self.probe_handle = None
        # The servers this thread starts die with it (nbdkit's
        # --exit-with-parent follows the thread that forked): once the
        # schedule is over, it waits for release before it returns.
        self.done = threading.Event()
        self.release = threading.Event()

    # --- timing ----------------------------------------------------------------

    def sleep(self, seconds):
        """Sleep, turning error injections off when they are due; returns
        early (False) when the run is stopping."""
        end = time.monotonic() + seconds
        while True:
            self._expire(time.monotonic())
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self.stop.wait(min(left, 0.05)):
                return False

    def _expire(self, now):
        """Turn off the error injections whose time has come."""
        for item in [p for p in self.pending if p[0] <= now]:
            self.pending.remove(item)
            _, remote, req_type = item
            remote.set_error(req_type, False)
            if req_type == "pread":
                self.model.loss_end()

    def end_all(self):
        """Turn every error injection off, resume every stopped remote and
        close the probe's connection (at the end of the run)."""
        self.probe_handle = None    # collected, so closed, with the rest
        self._expire(float("inf"))
        for r in self.cluster.remotes():
            r.clear_errors()
            if r.stopped:
                r.resume()
            if r.proc is None:
                r.start()

    # --- the schedule ----------------------------------------------------------

    def run(self):
        """Inject faults until stop, each counted in the report; then set
        done and wait for release (the servers started here must live
        until the end of the run)."""
        order = list(self.kinds)
        self.rng.shuffle(order)
        try:
            while not self.stop.is_set() and not self.driver.dead.is_set():
                kind = order.pop(0) if order else self.rng.choices(
                    self.kinds, [KIND_WEIGHTS[k] for k in self.kinds])[0]
                gap = self.rng.uniform(0.1, 0.8)
                self.report.log("fault %s" % kind)
                if getattr(self, "f_" + kind.replace("-", "_"))():
                    self.report.fault(kind)
                self.repair()
                self.sleep(gap)
        finally:
            self.done.set()
            self.release.wait()

    def _pick(self, kind=None):
        """A random remote in use (of kind if given), or None."""
        remotes = self.cluster.remotes(kind)
        return self.rng.choice(remotes) if remotes else None

    def _remote_fault(self, kind, action):
        """Run action(remote) on a random remote of kind; False if none."""
        r = self._pick(kind)
        if r is None:
            return False
        self.report.log("fault on %s: %s" % (r.name, action.__doc__))
        action(r)
        return True

    def _error(self, req_type):
        """Turn error injection of req_type on for a while (returns at once)."""
        r = self._pick()
        if r is None:
            return False
        if req_type == "pread":
            self.model.loss_begin()
        r.set_error(req_type, True)
        self.pending.append((time.monotonic() + self.rng.uniform(0.5, 3),
                             r, req_type))
        return True

    def f_err_pread(self):
        """Read errors on a remote."""
        return self._error("pread")

    def f_err_pwrite(self):
        """Write errors on a remote."""
        return self._error("pwrite")

    def f_err_trim(self):
        """Trim errors on a remote."""
        return self._error("trim")

    def f_err_zero(self):
        """Zero errors on a remote."""
        return self._error("zero")

    def f_stop_short(self):
        """SIGSTOP past timeout= but within grace=, then SIGCONT."""
        t = self.rng.uniform(self.cluster.timeout + 0.5,
                             self.cluster.grace - 2)

        def act(r):
            """SIGSTOP a few seconds (no loss)"""
            chained = self._chain_begin(r, t)
            r.pause()
            self.sleep(t)
            r.resume()
            self._chain_end(r, chained)
        return self._remote_fault(None, act)

    def _chain_begin(self, r, t):
        """A disruption of remote r of about t seconds starts.  A request's
        deadline counts from its first failure, so disruptions of one
        server that follow each other closely (less than 3 s apart) and
        together last more than grace= may fail requests and give the
        backend up: then this one is a possible loss (the model is told).
        Returns whether it is."""
        now = time.monotonic()
        if now - getattr(r, "chain_last_end", -1e9) > 3:
            r.chain_start = now
        chained = now + t - r.chain_start > self.cluster.grace - 1
        if chained:
            self.model.loss_begin()
        return chained

    def _chain_end(self, r, chained):
        """The disruption _chain_begin announced has ended."""
        r.chain_last_end = time.monotonic()
        if chained:
            self.sleep(1.5)
            self.model.loss_end()

    def f_kill_restart(self):
        """SIGKILL the file remote, restart it within grace=."""
        t = self.rng.uniform(0.2, 2)

        def act(r):
            """kill -9, restart with its data"""
            chained = self._chain_begin(r, t + 1)
            r.kill()
            self.sleep(t)
            r.start()
            self._chain_end(r, chained)
        return self._remote_fault("file", act)

    def f_stop_long(self):
        """SIGSTOP past grace=: the backend is given up."""
        t = self.cluster.grace + self.rng.uniform(2, 4)

        def act(r):
            """SIGSTOP past grace= (loss)"""
            self.model.loss_begin()
            r.pause()
            self.sleep(t)
            r.resume()
            self.sleep(1.5)
            self.model.loss_end()
        return self._remote_fault(None, act)

    def f_kill_late(self):
        """SIGKILL the file remote, restart it after grace=."""
        t = self.cluster.grace + self.rng.uniform(2, 4)

        def act(r):
            """kill -9, restart after grace= (loss)"""
            self.model.loss_begin()
            r.kill()
            self.sleep(t)
            r.start()
            self.sleep(1.5)
            self.model.loss_end()
        return self._remote_fault("file", act)

    def f_lose_memory(self):
        """SIGKILL the memory remote, restart it empty."""
        t = self.rng.uniform(0.2, 1.5)

        def act(r):
            """kill -9, restart empty (loss)"""
            self.model.loss_begin()
            r.kill()
            self.sleep(t)
            r.start()
            self.sleep(self.cluster.timeout + 2)
            self.model.loss_end()
        return self._remote_fault("memory", act)

    def f_flap(self):
        """Stops longer than timeout= with short resumes, for longer than
        the request deadline."""
        total = self.driver.deadline + 4

        def act(r):
            """flapping stops (loss; requests must still end)"""
            self.model.loss_begin()
            end = time.monotonic() + total
            while time.monotonic() < end:
                r.pause()
                running = self.sleep(self.cluster.timeout + 0.8)
                r.resume()
                if not running or not self.sleep(0.15):
                    break
            self.sleep(1.5)
            self.model.loss_end()
        return self._remote_fault(None, act)

    def _active(self):
        """The ids of the backends in state active."""
        return [bid for bid, (state, _) in self.cluster.states().items()
                if state == "active" and bid in self.cluster.backends]

    def f_priority(self):
        """Change the priority of a random active backend."""
        active = self._active()
        if not active:
            return False
        bid, prio = self.rng.choice(active), self.rng.randint(-1, 8)
        rc, out = self.cluster.ctl.run("priority", str(bid), str(prio))
        if rc != 0:
            self.report.violation("ctl-failed", "priority %d %d" % (bid, prio),
                                  out)
        return True

    def f_remove_add(self):
        """Add a backend of the kind of a random active one (unless there
        are many), remove that one."""
        active = self._active()
        if not active:
            return False
        victim = self.cluster.backends[self.rng.choice(active)]
        self.report.log("replacing backend %d (%s)" % (victim.bid,
                                                       victim.kind))
        prio = self.rng.randint(0, 6)
        if len(active) < 6:
            self.cluster.add(victim.kind, prio)
        self.cluster.remove(victim.bid, self.model, self.stop.is_set)
        return True

    def f_add_duplicate(self):
        """Try to add a backend that is in use already: must be refused."""
        if not self.cluster.backends:
            return False
        b = self.rng.choice(list(self.cluster.backends.values()))
        target = b.target
        if self.rng.random() < 0.5:
            # The same file or socket by another name.
            if b.remote is None:
                target = os.path.join(os.path.dirname(target), ".",
                                      os.path.basename(target))
            else:
                target = b.remote.uri.replace(
                    self.cluster.tmpdir + "/", self.cluster.tmpdir + "/./")
        args = [target] + (["capacity=%d" % LOCAL_CAPACITY]
                           if b.remote is None else self.cluster.remote_params())
        rc, out = self.cluster.ctl.run("add", *args)
        m = re.search(r"backend (\d+) added", out)
        if rc == 0 or m:
            self.report.violation(
                "duplicate-accepted", "add %s" % target,
                "backend %d (%s) is in use, yet swaptier added it again: %s"
                % (b.bid, b.target, out))
            if m:
                self.cluster.backends[int(m.group(1))] = Backend(
                    int(m.group(1)), b.kind, target)
                self.cluster.remove(int(m.group(1)), self.model,
                                    self.stop.is_set)
        return True

    def f_flush_probe(self):
        """A flush must not succeed while a remote holding acknowledged,
        unflushed writes does not answer."""
        active = [bid for bid in self._active()
                  if self.cluster.backends[bid].remote is not None]
        if not active:
            return False
        b = self.cluster.backends[self.rng.choice(active)]
        with self.driver.flush_gate:
            return self._flush_probe(b)

    def _flush_probe(self, b):
        """The body of f_flush_probe, with the flush gate held."""
        ctl, drv = self.cluster.ctl, self.driver
        if self.probe_handle is None:
            self.probe_handle = drv.connect()
        before = self.cluster.counters(b.bid)
        ctl.run("priority", str(b.bid), "32767")
        held = self._probe_write()
        ctl.run("priority", str(b.bid), str(self.rng.randint(0, 6)))
        try:
            return self._flush_probe_check(b, before, held)
        finally:
            if held is not None:
                drv.ranges.release(*held)

    def _flush_probe_check(self, b, before, held):
        """Stop backend b, which took the probe's write (whose pages stay
        locked meanwhile, so that no request rewrites or trims them and
        frees their slots on b), and flush: the flush must not succeed
        before b answers again."""
        drv = self.driver
        after = self.cluster.counters(b.bid)
        self.sleep(0.3)
        settled = self.cluster.counters(b.bid)
        if held is None or None in (before, after, settled) or \
                after[0] <= before[0] or settled[1] != before[1]:
            self.report.log("flush probe on %d inconclusive" % b.bid)
            return False
        stop_for = self.cluster.timeout + 1.5
        b.remote.pause()
        t0 = time.monotonic()
        cookie = self.probe_handle.aio_flush()
        outcome = drv.wait_for(self.probe_handle, cookie, stop_for)
        b.remote.resume()
        if outcome is None:
            self.report.violation(
                "flush-early", "flush-probe backend %d" % b.bid,
                "flush succeeded %.2f s after backend %d (holding %d "
                "unflushed writes) was stopped, before it answered again"
                % (time.monotonic() - t0, b.bid, after[0] - before[0]))
        elif outcome == HANG:
            outcome = drv.wait_for(self.probe_handle, cookie, drv.deadline)
            if outcome == HANG:
                drv.report.violation("hang", "flush-probe", "flush did not "
                                     "end within %d s" % drv.deadline)
                drv.abandoned.append(self.probe_handle)
                self.probe_handle = None
        return True

    def _probe_write(self):
        """Write 16 random pages through the probe handle (checked by the
        model like any request).  Returns the page range (lo, hi), still
        locked, if the write succeeded, else None."""
        drv = self.driver
        npages = drv.model.npages
        lo = self.rng.randrange(0, npages - 16)
        if not drv.ranges.acquire(lo, lo + 16, 5):
            return None
        op = Op("write", lo * PAGE, 16 * PAGE,
                data=self.rng.randbytes(16 * PAGE))
        op.label = "flush-probe " + op.describe()
        if drv.execute(self.probe_handle, op):
            return (lo, lo + 16)
        drv.abandoned.append(self.probe_handle)
        self.probe_handle = drv.connect()
        return None

    # --- keeping the capacity ----------------------------------------------------

    def repair(self):
        """Replace every failed backend: add one of the same kind (once),
        then remove (drain) the failed one."""
        for bid, (state, health) in self.cluster.states().items():
            b = self.cluster.backends.get(bid)
            if b is None or (state != "failed" and health != "dead"):
                continue
            self.report.log("backend %d (%s) is %s/%s: replacing it" % (
                bid, b.kind, state, health))
            if not b.replaced:
                self.cluster.add(b.kind, self.rng.randint(0, 6))
                b.replaced = True
            self.cluster.remove(bid, self.model, self.stop.is_set)
