#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Seeded, bounded, model-based fault simulation of swaptier.

Starts, in a temp dir and over Unix sockets only: a file-backed remote
(`nbdkit file`) and a memory-backed remote (`nbdkit memory`), both behind
nbdkit's error filter, and swaptier over them plus a local file, with
control=.  Then, for --duration seconds (or --ops requests), several
workers send random writes, reads, trims, zeroes and flushes (aligned or
not, 1 byte to 1 MiB) on disjoint page ranges while a fault thread injects
errors, stalls, crashes, data loss and runtime control (faultsim/faults.py
lists the kinds).  Every answer is checked against a shadow model
(faultsim/model.py states its rules): a read must return exactly the
acknowledged bytes (or one of the candidates left by a failed change), or
EIO only for a page that may really be lost; never other bytes, never
zeroes for data, never a request without an end (deadline: timeout= +
grace= + 10 s).  At the end, the whole device is read back and checked,
and nbdkit must stop promptly on SIGTERM with a remote stalled, and print
counters with used + free + bad = capacity.

With --copies 2 (or SWAPTIER_SIM_COPIES=2) swaptier runs with copies=2
over the same three failure domains (the local file, each remote server;
24 MiB each, repair-rate=--repair-rate): a fault then disrupts one
domain and the next fault on another domain waits until the control
socket reports degraded=0, so no page may be lost at all: every read
returns the acknowledged bytes, no EIO, and no plain write fails, except
where N domains were disrupted together (the multi-stop fault, or a
repair that did not finish in time, itself a violation); see the
docstring of faultsim/faults.py.  At the end, once the copies are
complete, the sum of used over the active backends must be copies x
mapped; then one remote is killed for good and the whole device must
still read back exactly, and again once its copies were re-created.

Prints the seed, the requests by type, the faults by type and every
violation (class, op number, request, expected vs got, seed); exits 1 on
any violation, 77 if the nbd module is missing, 0 otherwise.  The same
seed gives the same requests per worker and the same fault sequence;
timing (thread interleaving, when a backend fails) differs between
processes, so a run cannot be replayed exactly.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time

try:
    import nbd
except ImportError:
    print("SKIP: no python3 nbd module (python3-libnbd)", file=sys.stderr)
    sys.exit(77)

sys.dont_write_bytecode = True     # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultsim.driver import Driver                      # noqa: E402
from faultsim.faults import (Backend, Cluster, FaultInjector,  # noqa: E402
                             COPIES_KIND_WEIGHTS)
from faultsim.model import PAGE, Model                  # noqa: E402
from faultsim.procs import Ctl, Swaptier                # noqa: E402
from faultsim.report import Report                      # noqa: E402

DEVICE_SIZE = 16 << 20   # exported; the three first backends hold ~24 MiB


def parse_args():
    """The command line options."""
    top = os.environ.get("abs_top_builddir") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=None,
                   help="seed (default: random, printed)")
    p.add_argument("--duration", type=float, default=60,
                   help="seconds of load and faults (default 60)")
    p.add_argument("--ops", type=int, default=0,
                   help="stop after this many requests (default: no limit)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--timeout", type=int, default=2,
                   help="timeout= of the remote backends")
    p.add_argument("--grace", type=int, default=6,
                   help="grace= of the remote backends")
    p.add_argument("--copies", type=int,
                   default=int(os.environ.get("SWAPTIER_SIM_COPIES") or 1),
                   help="copies= of the device, 1 to 3 (default "
                   "$SWAPTIER_SIM_COPIES, else 1)")
    p.add_argument("--repair-rate", default="8M",
                   help="repair-rate= with --copies 2 or 3 (default 8M)")
    p.add_argument("--skip", default="",
                   help="comma-separated fault kinds to leave out, of: " +
                   ", ".join(COPIES_KIND_WEIGHTS) +
                   " (multi-stop: only with --copies 2 or 3)")
    p.add_argument("--plugin", default=os.path.join(top, "swaptier.so"))
    p.add_argument("--ctl", default=os.path.join(top, "ctl", "swaptierctl"))
    p.add_argument("--keep", action="store_true",
                   help="keep the temp dir (logs of every server)")
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    unknown = set(filter(None, args.skip.split(","))) - \
        set(COPIES_KIND_WEIGHTS)
    if unknown:
        p.error("unknown fault kinds: " + ", ".join(sorted(unknown)))
    if not 1 <= args.copies <= 3:
        p.error("--copies must be 1, 2 or 3")
    return args


def start_device(args, tmpdir, report):
    """Start the first remotes and swaptier over a local file (priority 5,
    filled first) and the two remotes (priority 4, sharing the rest);
    with copies>=2, the file remote has an explicit domain=, the memory
    remote the default one.  Returns (swaptier, cluster)."""
    ctl = Ctl(args.ctl, os.path.join(tmpdir, "ctl.sock"))
    cluster = Cluster(tmpdir, ctl, args.timeout, args.grace, report,
                      args.copies)
    local = cluster.new_local()
    rfile = cluster.new_remote("file")
    rmem = cluster.new_remote("memory")
    params = ["backend=" + local, "capacity=%d" % cluster.local_capacity,
              "priority=5",
              "backend=" + rfile.uri, "priority=4"] + \
        cluster.remote_params(rfile) + \
        ["backend=" + rmem.uri, "priority=4"] + \
        cluster.remote_params(rmem) + \
        ["stripe=4", "size=%d" % DEVICE_SIZE]
    if args.copies > 1:
        params += ["copies=%d" % args.copies,
                   "repair-rate=%s" % args.repair_rate]
    sw = Swaptier(tmpdir, args.plugin, params)
    sw.start()
    for bid, (kind, target, remote) in enumerate(
            (("local", local, None), ("file", rfile.uri, rfile),
             ("memory", rmem.uri, rmem))):
        cluster.backends[bid] = Backend(bid, kind, target, remote)
    if args.copies > 1:
        report.log("copies=%d over domains %s" % (args.copies, ", ".join(
            sorted({b.domain for b in cluster.backends.values()}))))
        cluster.check_domains()
    return sw, cluster


def run_load(args, driver, faults, report):
    """Run the workers and the fault thread for the duration (or op
    limit), printing progress; then stop the faults, then the workers."""
    workers = [threading.Thread(target=driver.run_worker, args=(w, args.ops),
                                name="worker%d" % w, daemon=True)
               for w in range(args.workers)]
    for t in workers:
        t.start()
    faults.start()
    end = time.monotonic() + args.duration
    next_note = time.monotonic() + 10
    while time.monotonic() < end and not driver.dead.is_set() and \
            any(t.is_alive() for t in workers):
        time.sleep(0.2)
        if time.monotonic() >= next_note:
            next_note += 10
            report.log("progress: %d requests, %d faults, %d violations; "
                       "pages: %s" % (
                           report.total_ops(), sum(report.faults.values()),
                           sum(report.violations.values()),
                           driver.model.summary()))
    faults.stop.set()
    faults.done.wait(60 + driver.deadline)
    faults.end_all()
    driver.stop.set()
    for t in workers:
        t.join(driver.deadline + 10)


def close_when_answered(h, driver, limit):
    """Wait (up to limit seconds) for the answers of the reads in flight
    on h, then close it and the connections of hung requests.  Closing a
    connection while nbdkit 1.32 still owes it replies can make nbdkit
    abort (an assertion in its raw_send_socket), which is nbdkit's own
    failure, not the one this check looks for."""
    deadline = time.monotonic() + limit
    try:
        while h.aio_in_flight() > 0 and time.monotonic() < deadline:
            h.poll(100)
    except nbd.Error:
        pass
    driver.abandoned.append(h)
    del h
    driver.close_abandoned()


def check_shutdown(sw, cluster, driver, report, timeout):
    """SIGTERM nbdkit with a remote stalled and reads of the whole device
    in flight (some wait for that remote): it must exit 0 within
    timeout= + 3 s and print counters with used + free + bad = capacity.
    The answers of those reads are not checked; the client closes its
    connection once they are answered (nbdkit 1.32 itself waits for an
    open client connection to close, even with nothing in flight)."""
    stalled = next((r for r in cluster.remotes() if r.proc is not None),
                   None)
    if stalled is not None:
        stalled.pause()
    h = driver.connect()
    for off in range(0, driver.size, 1 << 20):
        h.aio_pread(nbd.Buffer(1 << 20), off)
    time.sleep(0.5)
    limit = timeout + 3
    closer = threading.Thread(target=close_when_answered,
                              args=(h, driver, limit))
    del h
    closer.start()
    took, rc = sw.terminate(limit)
    closer.join()
    if stalled is not None:
        stalled.resume()
    label = "SIGTERM with %s stalled" % (stalled.name if stalled else "none")
    if took is None:
        report.violation("shutdown-hang", label,
                         "nbdkit still running %d s after SIGTERM" % (
                             limit + 15))
        return
    report.log("nbdkit exited %.2f s after SIGTERM, status %d" % (took, rc))
    if took > limit:
        report.violation("slow-shutdown", label,
                         "nbdkit took %.1f s to exit (limit %d s)" % (
                             took, limit))
    if rc != 0:
        report.violation("shutdown-status", label, "exit status %d; log: %s"
                         % (rc, sw.log_tail(1).strip()))
    for line in sw.unload_lines():
        f = line.split()
        vals = {f[i]: int(f[i + 1]) for i in range(len(f) - 1)
                if f[i] in ("capacity", "used", "free", "bad")}
        if len(vals) == 4 and \
                vals["used"] + vals["free"] + vals["bad"] != vals["capacity"]:
            report.violation("counters", "unload", line)


def check_copies_state(st, args, model, report, when):
    """The invariants of a device whose copies are complete (no request
    in flight): copies= as configured, used summed over the active
    backends = copies x mapped, mapped no more than the pages the model
    says may be mapped, used + free + bad = capacity per backend."""
    total = st["total"] or {}
    if total.get("copies") != args.copies:
        report.violation("copies-reported", when, "total line: %s" % total)
    active = [b for b in st["backends"] if b.get("state") == "active"]
    used = sum(b.get("used", 0) for b in active)
    mapped = total.get("mapped", -1)
    if used != args.copies * mapped:
        report.violation(
            "copy-count", when, "degraded=0 but the active backends use %d "
            "slots, not copies %d x mapped %d: %s" % (
                used, args.copies, mapped, ", ".join(
                    "%s:%s used=%s" % (b.get("id"), b.get("domain"),
                                       b.get("used")) for b in active)))
    may = model.summary()["mapped"]
    if mapped > may:
        report.violation("mapped-count", when, "mapped=%d, but only %d pages "
                         "may hold data by the model" % (mapped, may))
    for b in st["backends"]:
        if all(k in b for k in ("capacity", "used", "free", "bad")) and \
                b["used"] + b["free"] + b["bad"] != b["capacity"]:
            report.violation("counters", when, "backend %s" % b)
    report.log("%s: degraded=0, mapped=%d, %d slots used on %d active "
               "backends; repair: %s" % (when, mapped, used, len(active),
                                         st["repair"]))


def wait_complete(faults, report, when, limit=60):
    """Wait until the copies are complete (failed backends are left in
    place: the repairer must re-create their copies); a
    "repair-incomplete" violation if not within limit s.  Returns the
    state, or None."""
    t0 = time.monotonic()
    ok, st, why = faults.guard.wait_complete(
        lambda t: time.sleep(t) or True, limit, replace=False)
    if not ok:
        report.violation("repair-incomplete", when, "the copies were not "
                         "complete %d s after the faults: %s" % (limit, why))
        return None
    report.log("%s: copies complete after %.1f s" % (
        when, time.monotonic() - t0))
    return st


def verify(driver, report, when):
    """Read the whole device back and check it; False if the connection
    died."""
    report.log("verification of the whole device (%s)" % when)
    h = driver.connect()
    ok = driver.verify_all(h)
    if ok:
        h.shutdown()
    del h
    driver.close_abandoned()
    return ok


def check_copies_end(args, cluster, driver, faults, report):
    """copies>=2, after the load: the copies must become complete and the
    device read back exactly; then the remote holding the most copies is
    killed for good: the device must still read back exactly (no EIO:
    every page had a copy elsewhere), and again once its copies were
    re-created on the others.  Returns False if that cannot go on."""
    model, guard = driver.model, faults.guard
    st = wait_complete(faults, report, "end of the load")
    if st is None:
        return verify(driver, report, "copies incomplete")
    check_copies_state(st, args, model, report, "end of the load")
    if not verify(driver, report, "copies complete"):
        return False
    remotes = sorted((r for r in cluster.remotes() if r.proc is not None),
                     key=lambda r: r.name)
    if not remotes:
        return True
    # The remote holding the most copies (the seed breaks ties).
    used = {b.get("id"): b.get("used", 0) for b in st["backends"]}
    bids = {r: next(b.bid for b in cluster.backends.values()
                    if b.remote is r) for r in remotes}
    random.Random(args.seed).shuffle(remotes)
    victim = max(remotes, key=lambda r: used.get(bids[r], 0))
    bid = bids[victim]
    before = (st["repair"] or {}).get("recreated", 0)
    report.log("second loss: kill -9 %s (backend %d, domain %s, %d copies) "
               "for good" % (victim.name, bid, victim.domain,
                             used.get(bid, 0)))
    disruption = guard.begin({victim.domain}, False)
    victim.kill()
    t0 = time.monotonic()
    if not verify(driver, report, "%s killed" % victim.name):
        return False
    limit = args.grace + 20
    while True:
        state, health = cluster.states().get(bid, ("gone", ""))
        if state == "failed" or health == "dead":
            break
        if time.monotonic() - t0 > limit:
            report.violation("not-failed", "second loss", "backend %d is "
                             "%s/%s %d s after its server was killed for "
                             "good" % (bid, state, health, limit))
            break
        time.sleep(0.25)
    t1 = time.monotonic()
    guard.end(disruption)
    st = wait_complete(faults, report, "after the second loss")
    if st is not None:
        after = (st["repair"] or {}).get("recreated", 0)
        report.notes.append(
            "re-creation after the second loss: %d copies in %.1f s "
            "(backend %d failed %.1f s after the kill)" % (
                after - before, time.monotonic() - t1, bid, t1 - t0))
        report.log(report.notes[-1])
        check_copies_state(st, args, model, report, "after the second loss")
    return verify(driver, report, "after re-creation")


def main():
    """Run one simulation; the exit status is the verdict."""
    args = parse_args()
    report = Report(args.seed)
    report.log("fault-sim seed %d duration %g s ops %s workers %d copies "
               "%d (reproduce: %s --seed %d --duration %g --copies %d)" % (
                   args.seed, args.duration, args.ops or "unlimited",
                   args.workers, args.copies, sys.argv[0], args.seed,
                   args.duration, args.copies))
    tmpdir = tempfile.mkdtemp(prefix="swaptier-sim.")
    sw = cluster = faults = None
    try:
        sw, cluster = start_device(args, tmpdir, report)
        model = Model(DEVICE_SIZE // PAGE, args.copies)
        driver = Driver(sw.uri, model, report, args.seed,
                        args.timeout + args.grace + 10)
        faults = FaultInjector(cluster, model, driver, report, args.seed,
                               set(filter(None, args.skip.split(","))))
        run_load(args, driver, faults, report)
        if sw.alive() and not driver.dead.is_set() and args.copies > 1:
            time.sleep(1)
            if check_copies_end(args, cluster, driver, faults, report) and \
                    sw.alive():
                check_shutdown(sw, cluster, driver, report, args.timeout)
            elif not sw.alive():
                report.violation("crash", "end", "nbdkit exited: " +
                                 sw.log_tail(15))
        elif sw.alive() and not driver.dead.is_set():
            report.log("final verification of the whole device")
            time.sleep(1)
            h = driver.connect()
            driver.verify_all(h)
            h.shutdown()
            del h
            driver.close_abandoned()
            check_shutdown(sw, cluster, driver, report, args.timeout)
        elif not sw.alive():
            report.violation("crash", "end", "nbdkit exited: " +
                             sw.log_tail(15))
        if args.copies > 1:
            report.notes.insert(0, faults.guard.summary())
        if driver.skipped:
            report.log("%d requests skipped (their pages were held by hung "
                       "requests)" % driver.skipped)
        clean = report.print_summary(model.summary())
        if not clean:
            print("--- last lines of the swaptier log (%s) ---\n%s" % (
                sw.log, sw.log_tail(20)))
        return 0 if clean else 1
    finally:
        if faults is not None:
            faults.release.set()
        if sw is not None and sw.alive():
            sw.proc.kill()
            sw.proc.wait()
        if cluster is not None:
            cluster.shutdown()
        if args.keep:
            print("kept %s" % tmpdir)
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
