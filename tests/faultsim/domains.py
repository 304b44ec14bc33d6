# SPDX-License-Identifier: BSD-3-Clause
"""The failure domains a fault disrupts, and the loss windows of the
model that follow from them (see faults.py for the schedule that uses
them): with copies=1 every disruption that may lose pages opens a window;
with copies=N only N domains disrupted together, or a domain hit before
the copies lost in another were re-created, do.
"""

import collections
import time

SETTLE_LIMIT = 45   # s a schedule waits for the copies before a fault
LINGER = 1.0        # s a disruption must have ended before degraded=0 counts


class Disruption:
    """What DomainGuard.begin hands out: the domains disrupted, and
    whether the disruption holds a loss window of the model."""

    __slots__ = ("domains", "window")

    def __init__(self, domains, window):
        self.domains = domains
        self.window = window


class DomainGuard:
    """Which failure domains are disrupted, and the loss windows of the
    model that follow.

    With copies=1 a disruption opens a loss window if the fault kind
    loses pages (lossy), as it always did.  With copies=N >= 2, lossy
    does not matter: a disruption opens a window only when it makes N
    domains unsettled together, a domain being unsettled from the start
    of a disruption until settle() saw, after its end, that the copies are
    complete again (degraded=0, no backend down).  settle() is
    what the schedule calls before disrupting another domain.  The guard
    also checks the lost= counters: with copies >= 2 they may only rise
    while a loss window was open."""

    def __init__(self, copies, model, cluster, report):
        self.copies = copies
        self.model = model
        self.cluster = cluster
        self.report = report
        self.active = collections.Counter()   # domain -> disruptions now
        self.ended = {}           # domain -> when its last disruption ended
        self.unsettled = set()
        self.windows = 0          # loss windows opened (or seen) so far
        self.lost_seen = None     # (windows, total lost, repair lost)
        self.drain_reported = set()
        self.stats = collections.Counter()
        self.settle_max = 0.0
        # Called when the repairer waits for room (a backend elsewhere);
        # returns whether it added one.
        self.add_room = None
        # Replaces failed and dead backends (FaultInjector.repair).
        self.replace_failed = None

    def summary(self):
        """One line for the report: settles, windows, waits."""
        return "copies=%d: %d settles before faults (longest wait %.1f s), " \
            "%d loss windows (domains disrupted together), %d repair-stuck, " \
            "%d backends added for room" % (
                self.copies, self.stats["settles"], self.settle_max,
                self.stats["windows"], self.stats["repair-stuck"],
                self.stats["backends added for room"])

    def _hit(self):
        """The domains disrupted now or not settled since."""
        return {d for d, n in self.active.items() if n > 0} | self.unsettled

    def begin(self, domains, lossy):
        """A disruption of domains (a set, usually of one) starts; returns
        the Disruption to pass to end()."""
        domains = set(domains)
        if self.copies == 1:
            window = lossy
        else:
            hit = self._hit() | domains
            window = len(hit) >= self.copies
            for d in domains:
                self.active[d] += 1
            self.unsettled |= domains
            if window:
                self.stats["windows"] += 1
                self.report.log("%d failure domains disrupted together "
                                "(%s): pages may be lost" % (
                                    len(hit), ", ".join(sorted(hit))))
        if window:
            self.windows += 1
            self.model.loss_begin()
        return Disruption(domains, window)

    def end(self, h):
        """The disruption h has ended (its domains stay unsettled)."""
        if self.copies > 1:
            for d in h.domains:
                self.active[d] -= 1
                self.ended[d] = time.monotonic()
        if h.window:
            self.model.loss_end()

    def _busy(self, domains):
        """The domains, other than those of domains, disrupted now or whose
        last disruption ended less than LINGER s ago (requests that began
        during it may still mark slots bad)."""
        now = time.monotonic()
        busy = {d for d, n in self.active.items() if n > 0} | \
            {d for d, t in self.ended.items() if now - t < LINGER}
        return busy - set(domains)

    def removal_lost(self, bid, d):
        """A removal reported lost pages (drain record d)."""
        if self.copies == 1:
            self.model.loss_now()
            return
        if self.model.open_windows == 0 and bid not in self.drain_reported:
            self.drain_reported.add(bid)
            self.report.violation(
                "drain-lost", "remove %d" % bid,
                "the removal of backend %d reports lost=%s pages while at "
                "most %d failure domain(s) were disrupted (copies=%d): %s"
                % (bid, d.get("lost"), self.copies - 1, self.copies, d))
        # Reads of those pages may fail now: the violation says so once.
        self.windows += 1
        self.model.loss_now()

    def check_state(self, st):
        """copies>=2, with st a Ctl.state(): whether the copies are
        complete, and if not, why (a text)."""
        if st is None:
            return False, "list on the control socket failed"
        total = st["total"] or {}
        if "degraded" not in total:
            return False, "no degraded= in the total line: %s" % total
        # A dead backend stays "active" in the list; its copies count as
        # degraded until re-created.  One that is down (reconnecting)
        # holds copies that cannot be read now.
        down = ["%s:%s/%s" % (b.get("id"), b.get("state"), b.get("health"))
                for b in st["backends"]
                if b.get("state") == "active" and b.get("health") == "down"]
        if total["degraded"] == 0 and not down:
            return True, ""
        return False, "degraded=%s, backends not up: %s; repair: %s" % (
            total["degraded"], ", ".join(down) or "none", st["repair"])

    def check_lost(self, st):
        """copies>=2: the lost= counters of st (total and repair lines) may
        only have risen since the last check if a loss window was opened
        meanwhile (or is open); else a "pages-lost" violation."""
        if st is None or self.copies == 1:
            return
        now = (self.windows, (st["total"] or {}).get("lost", 0),
               (st["repair"] or {}).get("lost", 0))
        before, self.lost_seen = self.lost_seen, now
        if before is None or self.model.open_windows > 0 or \
                now[0] != before[0]:
            return
        if now[1] > before[1] or now[2] > before[2]:
            self.report.violation(
                "pages-lost", "lost counters",
                "total lost %s -> %s, repair lost %s -> %s while at most %d "
                "failure domain(s) were disrupted (copies=%d); repair: %s" % (
                    before[1], now[1], before[2], now[2], self.copies - 1,
                    self.copies, st["repair"]))
            self.windows += 1
            self.model.loss_now()
            self.lost_seen = (self.windows,) + now[1:]

    def settle(self, domains, sleep, limit=SETTLE_LIMIT):
        """Before a disruption of domains (a set; empty: before one that
        needs every domain settled), with copies>=2: wait until no other
        domain is disrupted (error injections end when sleep() passes
        their time) and the copies are complete again.  Longer than limit
        seconds is a "repair-stuck" violation; then the fault runs anyway
        (and begin() opens a loss window).  Returns False only if sleep()
        said that the run is stopping."""
        if self.copies == 1:
            return True
        others = self._hit() - set(domains)
        if not others:
            return True
        t0 = time.monotonic()
        outcome, st, why = self.wait_complete(sleep, limit, domains)
        if outcome is None:
            return False
        if outcome:
            took = time.monotonic() - t0
            self.stats["settles"] += 1
            self.settle_max = max(self.settle_max, took)
            self.report.log("copies complete again after %s (waited %.1f "
                            "s): degraded=0, %s pages mapped" % (
                                ", ".join(sorted(others)), took,
                                st["total"].get("mapped")))
            return True
        self.stats["repair-stuck"] += 1
        self.report.violation(
            "repair-stuck", "settle before a fault on %s" % (
                ", ".join(sorted(domains)) or "several domains"),
            "the copies lost in %s were not re-created within %d s: %s" % (
                ", ".join(sorted(others)), limit, why))
        return True

    def wait_complete(self, sleep, limit, domains=(), replace=True):
        """Wait (up to limit s) until no domain but those of domains is
        disrupted and the copies are complete (check_state), then check the
        lost= counters and mark every domain not disrupted now settled.
        With replace, a backend that fails meanwhile is replaced as after
        a fault (FaultInjector.repair).  Returns (True, state, "") once
        complete, (False, last state, why) after limit s, (None, None, "")
        if sleep() said that the run is stopping."""
        t0 = time.monotonic()
        end = t0 + limit
        st, why = None, "disruptions still under way"
        waiting, added, first, tried = 0, False, None, set()
        while True:
            if not self._busy(domains):
                st = self.cluster.ctl.state()
                ok, why = self.check_state(st)
                if ok:
                    self.unsettled = {d for d, n in self.active.items()
                                      if n > 0}
                    self.check_lost(st)
                    return True, st, ""
                failed = {b.get("id") for b in st["backends"]
                          if b.get("state") == "failed" or
                          b.get("health") == "dead"} if st else set()
                if replace and self.replace_failed and failed - tried:
                    tried |= failed
                    self.replace_failed()
                    continue
                # A repairer that found nothing it could do waits for
                # room: bad slots (every failed write leaves some) or the
                # loss of a domain can leave the other domains without
                # free slots; one that finds a little room now and then
                # (freed by trims) runs on, slowly.  Add a backend, as an
                # operator would, once.
                degraded = (st["total"] or {}).get("degraded", 0) \
                    if st is not None else 0
                first = degraded if first is None else first
                waiting = waiting + 1 if st is not None and \
                    (st["repair"] or {}).get("state") == "waiting" else 0
                slow = time.monotonic() - t0 > 10 and degraded > first * 0.9
                if (waiting >= 8 or slow) and not added and self.add_room:
                    added = True
                    self.report.log("the repairer waits for room (%s): "
                                    "adding a backend" % why)
                    if self.add_room():
                        self.stats["backends added for room"] += 1
                        end = max(end, time.monotonic() + 20)
            if time.monotonic() > end:
                return False, st, why
            if not sleep(0.25):
                return None, None, ""
