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

With copies=N (N >= 2, --copies) every page is kept on N backends of N
failure domains: each remote server is its own domain, every local file
is in domain "local".  A fault then disrupts one domain (the server it
hits, or the domain of the backend a removal drains), and the losses
listed above no longer happen: DomainGuard opens a loss window only when
N domains are disrupted together (or one is hit before the copies lost
in another were re-created).  The schedule avoids that: before a fault on
domain D, it waits until the disruptions of every other domain have
ended (LINGER s ago at least), `list` on the control socket reports
degraded=0 and no backend is down (reconnecting); at most SETTLE_LIMIT
s, longer is a "repair-stuck" violation and the fault then runs with a
loss window; a backend that fails meanwhile is replaced as after a
fault.  A memory server restarted empty disrupts its domain until
swaptier finds its backend dead (its copies are gone before degraded=
can count them; not found within grace= + timeout= + 5 s is a
"loss-unnoticed" violation).  A repairer that waits for room (every
failed write leaves bad slots; a lost domain leaves fewer) gets a new
file remote once per wait, as an operator would add one.  One more kind
exists only in that mode:

  multi-stop      SIGSTOP the servers of N domains together past grace=:
                  pages whose every copy was there may be lost (EIO) but
                  never read wrong; the others must read back exactly.

and the first round starts with the kinds that lose pages with copies=1
(COPIES_FIRST), then multi-stop.  A removal that reports lost pages, or
a rise of the lost= counters, while fewer than N domains were disrupted
is a violation.  Remote backends alternate between the default domain and an
explicit domain= (checked against the domain `list` shows), and each
backend holds COPIES_BACKEND_SIZE, so that the survivors of a lost
domain can hold every copy again.
"""

import os
import random
import re
import threading
import time

from .domains import DomainGuard
from .driver import HANG, Op
from .model import PAGE
from .procs import REMOTE_SIZE, Remote

KIND_WEIGHTS = {
    "err-pread": 8, "err-pwrite": 8, "err-trim": 6, "err-zero": 4,
    "stop-short": 8, "kill-restart": 6, "stop-long": 1, "kill-late": 1,
    "lose-memory": 2, "flap": 1, "priority": 6, "remove-add": 3,
    "add-duplicate": 2, "flush-probe": 3,
}
# The copies>=2 mode has one kind more, and starts with these.
COPIES_KIND_WEIGHTS = dict(KIND_WEIGHTS, **{"multi-stop": 1})
COPIES_FIRST = ("err-pread", "stop-long", "kill-late", "lose-memory",
                "remove-add")
LOCAL_CAPACITY = 8 << 20
COPIES_BACKEND_SIZE = 24 << 20  # each backend (local or remote), copies>=2
DRAIN_LIMIT = 120


class Backend:
    """A backend of swaptier as the simulation knows it: its id, kind
    ("local", "file", "memory"), target, Remote server if remote, and
    failure domain (that of its server, or "local")."""

    def __init__(self, bid, kind, target, remote=None):
        self.bid = bid
        self.kind = kind
        self.target = target
        self.remote = remote
        self.domain = remote.domain if remote is not None else "local"
        self.replaced = False   # a replacement was added for it


class Cluster:
    """The backends and remote servers of a run, and their management
    through swaptierctl."""

    def __init__(self, tmpdir, ctl, timeout, grace, report, copies=1):
        self.tmpdir = tmpdir
        self.ctl = ctl
        self.timeout = timeout
        self.grace = grace
        self.report = report
        self.copies = copies
        self.local_capacity = LOCAL_CAPACITY if copies == 1 \
            else COPIES_BACKEND_SIZE
        self.remote_size = REMOTE_SIZE if copies == 1 \
            else COPIES_BACKEND_SIZE
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
        """Start a new remote server of kind "file" or "memory".  With
        copies>=2, every other one gets an explicit domain name (one of
        its own: still one domain per server)."""
        name = self._name(kind)
        domain = "sim-" + name if self.copies > 1 and self.names % 2 == 0 \
            else None
        remote = Remote(self.tmpdir, name, kind, self.remote_size, domain)
        remote.start()
        return remote

    def remote_params(self, remote=None):
        """The per-backend keys of a remote backend (of remote: with its
        explicit domain= if it has one)."""
        params = ["connections=2", "timeout=%d" % self.timeout,
                  "grace=%d" % self.grace]
        if remote is not None and remote.explicit_domain:
            params.append("domain=" + remote.explicit_domain)
        return params

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
            args = [target, "capacity=%d" % self.local_capacity]
        else:
            remote = self.new_remote(kind)
            target = remote.uri
            args = [target] + self.remote_params(remote)
        rc, out = self.ctl.run("add", *args, "priority=%d" % priority)
        m = re.search(r"backend (\d+) added", out)
        if rc != 0 or not m:
            self.report.log("add %s refused: %s" % (target, out))
            if remote is not None:
                remote.stop()
            return None
        b = Backend(int(m.group(1)), kind, target, remote)
        self.backends[b.bid] = b
        self.report.log("added backend %d (%s) %s%s" % (
            b.bid, kind, target,
            " domain=" + b.domain if self.copies > 1 else ""))
        if self.copies > 1:
            self.check_domains()
        return b

    def check_domains(self):
        """copies>=2: every backend must be in the failure domain the
        simulation expects (a "domain" violation otherwise)."""
        st = self.ctl.state()
        if st is None:
            return
        for rec in st["backends"]:
            b = self.backends.get(rec.get("id"))
            if b is None:
                continue
            got = str(rec.get("domain"))
            want = b.domain
            if got == want or (want.startswith("unix:") and
                               got.startswith("unix:") and
                               os.path.realpath(got[5:]) ==
                               os.path.realpath(want[5:])):
                continue
            self.report.violation(
                "domain", "backend %d %s" % (b.bid, b.target),
                "list shows domain=%s, expected %s" % (got, want))

    def remove(self, bid, on_lost, should_stop):
        """Remove backend bid (drain) and wait for the removal to end.
        A removal that lost pages is passed to on_lost(bid, drain record)
        (at every poll that shows lost pages); one that does not end
        within DRAIN_LIMIT s is a violation.  Returns True if the backend
        is gone."""
        rc, out = self.ctl.run("remove", str(bid))
        if rc != 0:
            self.report.log("remove %d refused: %s" % (bid, out))
            return False
        end = time.monotonic() + DRAIN_LIMIT
        while True:
            d = (self.ctl.listing() or {}).get("drain") or {}
            if d.get("lost"):
                on_lost(bid, d)
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
        self.copies = cluster.copies
        self.guard = DomainGuard(self.copies, model, cluster, report)
        self.guard.add_room = self.add_room
        self.guard.replace_failed = self.repair
        self.rng = random.Random(seed ^ 0x5EED5EED)
        self.stop = threading.Event()
        # (time, remote, request type, Disruption) to turn off
        self.pending = []
        self.weights = KIND_WEIGHTS if self.copies == 1 \
            else COPIES_KIND_WEIGHTS
        self.kinds = [k for k in self.weights if k not in skip]
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
            _, remote, req_type, disruption = item
            remote.set_error(req_type, False)
            self.guard.end(disruption)

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
        if self.copies > 1:
            # The single-domain losses of copies=1 first, then the loss
            # of several domains, then the rest.
            order = [k for k in order if k in COPIES_FIRST] + \
                [k for k in order if k == "multi-stop"] + \
                [k for k in order if k not in COPIES_FIRST and
                 k != "multi-stop"]
            self.guard.check_lost(self.cluster.ctl.state())   # the baseline
        try:
            while not self.stop.is_set() and not self.driver.dead.is_set():
                kind = order.pop(0) if order else self.rng.choices(
                    self.kinds, [self.weights[k] for k in self.kinds])[0]
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

    def _settle(self, domains):
        """Before disrupting domains: with copies>=2, wait until the other
        domains are settled (DomainGuard.settle).  False if the run is
        stopping (then the fault is not made)."""
        return self.guard.settle(domains, self.sleep)

    def _end(self, disruption, linger):
        """End a disruption; one that holds a loss window keeps it open
        linger seconds more (requests that began during it end)."""
        if disruption.window:
            self.sleep(linger)
        self.guard.end(disruption)

    def _remote_fault(self, kind, action):
        """Run action(remote) on a random remote of kind, once the other
        domains are settled; False if none."""
        r = self._pick(kind)
        if r is None or not self._settle({r.domain}):
            return False
        self.report.log("fault on %s: %s" % (r.name, action.__doc__))
        action(r)
        return True

    def _error(self, req_type):
        """Turn error injection of req_type on for a while (returns at
        once; with copies>=2, its domain stays disrupted until it ends)."""
        r = self._pick()
        if r is None:
            return False
        t = self.rng.uniform(0.5, 3)
        if not self._settle({r.domain}):
            return False
        disruption = self.guard.begin({r.domain}, req_type == "pread")
        r.set_error(req_type, True)
        self.pending.append((time.monotonic() + t, r, req_type, disruption))
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
            disruption = self._chain_begin(r, t)
            r.pause()
            self.sleep(t)
            r.resume()
            self._chain_end(r, disruption)
        return self._remote_fault(None, act)

    def _chain_begin(self, r, t):
        """A disruption of remote r of about t seconds starts.  A request's
        deadline counts from its first failure, so disruptions of one
        server that follow each other closely (less than 3 s apart) and
        together last more than grace= may fail requests and give the
        backend up: then this one is a possible loss with copies=1 (with
        more, one domain is all it disrupts).  Returns the Disruption."""
        now = time.monotonic()
        if now - getattr(r, "chain_last_end", -1e9) > 3:
            r.chain_start = now
        chained = now + t - r.chain_start > self.cluster.grace - 1
        return self.guard.begin({r.domain}, chained)

    def _chain_end(self, r, disruption):
        """The disruption _chain_begin announced has ended."""
        r.chain_last_end = time.monotonic()
        self._end(disruption, 1.5)

    def f_kill_restart(self):
        """SIGKILL the file remote, restart it within grace=."""
        t = self.rng.uniform(0.2, 2)

        def act(r):
            """kill -9, restart with its data"""
            disruption = self._chain_begin(r, t + 1)
            r.kill()
            self.sleep(t)
            r.start()
            self._chain_end(r, disruption)
        return self._remote_fault("file", act)

    def f_stop_long(self):
        """SIGSTOP past grace=: the backend is given up."""
        t = self.cluster.grace + self.rng.uniform(2, 4)

        def act(r):
            """SIGSTOP past grace= (loss with copies=1)"""
            disruption = self.guard.begin({r.domain}, True)
            r.pause()
            self.sleep(t)
            r.resume()
            self._end(disruption, 1.5)
        return self._remote_fault(None, act)

    def f_kill_late(self):
        """SIGKILL the file remote, restart it after grace=."""
        t = self.cluster.grace + self.rng.uniform(2, 4)

        def act(r):
            """kill -9, restart after grace= (loss with copies=1)"""
            disruption = self.guard.begin({r.domain}, True)
            r.kill()
            self.sleep(t)
            r.start()
            self._end(disruption, 1.5)
        return self._remote_fault("file", act)

    def f_lose_memory(self):
        """SIGKILL the memory remote, restart it empty."""
        t = self.rng.uniform(0.2, 1.5)

        def act(r):
            """kill -9, restart empty (loss with copies=1)"""
            disruption = self.guard.begin({r.domain}, True)
            r.kill()
            self.sleep(t)
            r.start()
            if self.copies > 1:
                self._await_dead(r)
            self._end(disruption, self.cluster.timeout + 2)
        return self._remote_fault("memory", act)

    def _await_dead(self, r):
        """copies>=2: a server restarted empty holds none of the copies
        swaptier still counts there until it finds out (on its next
        connection or claim heartbeat, slot 0 no longer holds its header),
        so its domain stays disrupted until the backend is dead or failed.
        Not within grace= + timeout= + 5 s is a "loss-unnoticed"
        violation."""
        b = next((b for b in self.cluster.backends.values()
                  if b.remote is r), None)
        if b is None:
            return
        limit = self.cluster.grace + self.cluster.timeout + 5
        end = time.monotonic() + limit
        while True:
            state, health = self.cluster.states().get(b.bid, ("gone", ""))
            if state in ("failed", "gone") or health == "dead":
                return
            if time.monotonic() > end:
                self.report.violation(
                    "loss-unnoticed", "lose-memory %s" % r.name,
                    "backend %d is still %s/%s %d s after its server "
                    "restarted empty" % (b.bid, state, health, limit))
                return
            if not self.sleep(0.2):
                return

    def f_flap(self):
        """Stops longer than timeout= with short resumes, for longer than
        the request deadline."""
        total = self.driver.deadline + 4

        def act(r):
            """flapping stops (loss with copies=1; requests must end)"""
            disruption = self.guard.begin({r.domain}, True)
            end = time.monotonic() + total
            while time.monotonic() < end:
                r.pause()
                running = self.sleep(self.cluster.timeout + 0.8)
                r.resume()
                if not running or not self.sleep(0.15):
                    break
            self._end(disruption, 1.5)
        return self._remote_fault(None, act)

    def f_multi_stop(self):
        """copies>=2 only: SIGSTOP the servers of copies domains together
        (as many as there are, if fewer) past grace=, once every domain
        is settled.  Pages whose every copy was there may be lost (EIO);
        none may read wrong.  With fewer domains than copies stopped,
        nothing may be lost."""
        servers = {}
        for r in self.cluster.remotes():
            servers.setdefault(r.domain, r)
        domains = sorted(servers)
        if len(domains) < 2:
            return False
        picked = self.rng.sample(domains, min(self.copies, len(domains)))
        t = self.cluster.grace + self.rng.uniform(2, 4)
        if not self._settle(set()):
            return False
        self.report.log("fault on %s: SIGSTOP together past grace= (loss "
                        "if %d domains)" % (
                            ", ".join(servers[d].name for d in picked),
                            self.copies))
        disruptions = [self.guard.begin({d}, True) for d in picked]
        for d in picked:
            servers[d].pause()
        self.sleep(t)
        for d in picked:
            servers[d].resume()
        for disruption in reversed(disruptions):
            self._end(disruption, 1.5)
        return True

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
        prio = self.rng.randint(0, 6)
        if not self._settle({victim.domain}):
            return False
        self.report.log("replacing backend %d (%s)" % (victim.bid,
                                                       victim.kind))
        if len(active) < 6:
            self.cluster.add(victim.kind, prio)
        self._remove(victim)
        return True

    def _remove(self, b):
        """Remove backend b (Cluster.remove), a disruption of its domain."""
        disruption = self.guard.begin({b.domain}, False)
        try:
            return self.cluster.remove(b.bid, self.guard.removal_lost,
                                       self.stop.is_set)
        finally:
            self.guard.end(disruption)

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
        args = [target] + (["capacity=%d" % self.cluster.local_capacity]
                           if b.remote is None else self.cluster.remote_params())
        rc, out = self.cluster.ctl.run("add", *args)
        m = re.search(r"backend (\d+) added", out)
        if rc == 0 or m:
            self.report.violation(
                "duplicate-accepted", "add %s" % target,
                "backend %d (%s) is in use, yet swaptier added it again: %s"
                % (b.bid, b.target, out))
            if m:
                dup = Backend(int(m.group(1)), b.kind, target)
                dup.domain = b.domain
                self.cluster.backends[dup.bid] = dup
                self._remove(dup)
        return True

    def f_flush_probe(self):
        """A flush must not succeed while a remote holding acknowledged,
        unflushed writes does not answer."""
        active = [bid for bid in self._active()
                  if self.cluster.backends[bid].remote is not None]
        if not active:
            return False
        b = self.cluster.backends[self.rng.choice(active)]
        if not self._settle({b.domain}):
            return False
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
        disruption = self.guard.begin({b.domain}, False)
        b.remote.pause()
        t0 = time.monotonic()
        cookie = self.probe_handle.aio_flush()
        outcome = drv.wait_for(self.probe_handle, cookie, stop_for)
        took = time.monotonic() - t0
        b.remote.resume()
        self.guard.end(disruption)
        if outcome is None and self.copies > 1 and \
                took >= self.cluster.timeout:
            # With copies, a flush may give up on the copies of the
            # stopped backend once it timed out (they are re-created
            # from the others, which were flushed).
            self.report.log("flush probe on %d: the flush succeeded %.2f s "
                            "after the stop, once timeout= had passed" % (
                                b.bid, took))
        elif outcome is None:
            self.report.violation(
                "flush-early", "flush-probe backend %d" % b.bid,
                "flush succeeded %.2f s after backend %d (holding %d "
                "unflushed writes) was stopped, before it answered again%s"
                % (took, b.bid, after[0] - before[0],
                   "" if self.copies == 1 else
                   " and before its requests could time out"))
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

    def add_room(self):
        """Add a file remote (a new domain) at priority 0, unless there are
        8 backends already; whether one was added."""
        if len(self.cluster.backends) >= 8:
            return False
        return self.cluster.add("file", 0) is not None

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
            self._remove(b)
