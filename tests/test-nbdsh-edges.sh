#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Edge cases of the NBD requests, driven from Python with the libnbd
# bindings (what nbdsh runs), every read compared with a byte-exact Python
# model of the device:
#   - export size, block size (minimum and preferred 4096), capabilities;
#   - unaligned and partial-page writes and reads (strict mode off), writes
#     straddling pages and stripe units, the last page;
#   - requests past the end fail (nbd.Error) and change nothing;
#   - trim then read gives zeroes; zero of part of a page; zero flags;
#   - extents (base:allocation): unmapped pages hole|zero, written pages data;
#   - flush and FUA writes;
#   - large requests over many stripe units;
#   - two connections see each other's writes (multi-conn);
#   - concurrent sub-page writes to shared pages (read-modify-write under
#     the range lock), and reads racing with rewrites (no slot reuse under
#     a reader);
#   - a seeded random mix of all of the above (SEED=N to repeat one), then
#     a full compare and a check that slots in use == pages mapped.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require_python_nbd

# Two equal-priority backends of 8 MiB (2 x 2047 data slots after their
# headers), so that runs of pages alternate between backends, and
# stripe=4 so that requests cross many stripe units.  Spare slots:
# max(1% = 41, 32 requests x 4) = 128.
pages=$((2 * 2047 - 128))
swt_start backend="$swt_tmpdir/a" capacity=8M priority=7 \
          backend="$swt_tmpdir/b" capacity=8M priority=7 stripe=4

URI=$swt_uri EXPECTED_SIZE=$((pages * 4096)) SEED=${SEED:-$RANDOM} \
MAPPED_FILE=$swt_tmpdir/mapped "$swt_python" - <<'EOF'
import os
import random

import nbd

PAGE = 4096
uri = os.environ["URI"]
seed = int(os.environ["SEED"])
print("seed", seed, "(rerun with SEED=%d to repeat)" % seed)
rng = random.Random(seed)


def connect():
    h = nbd.NBD()
    # Let unaligned and out-of-range requests reach the server.
    h.set_strict_mode(0)
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    return h


h = connect()
size = h.get_size()

# --- What the server advertises -------------------------------------------
assert size == int(os.environ["EXPECTED_SIZE"]), \
    "export size %d, expected %s" % (size, os.environ["EXPECTED_SIZE"])
assert h.get_block_size(nbd.SIZE_MINIMUM) == PAGE, \
    "minimum block size %d" % h.get_block_size(nbd.SIZE_MINIMUM)
assert h.get_block_size(nbd.SIZE_PREFERRED) == PAGE, \
    "preferred block size %d" % h.get_block_size(nbd.SIZE_PREFERRED)
assert h.get_block_size(nbd.SIZE_MAXIMUM) >= PAGE
for cap in ("can_multi_conn", "can_fua", "can_flush", "can_trim",
            "can_zero", "can_fast_zero"):
    assert getattr(h, cap)(), cap + " is false"
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.get_strict_mode() == 0
print("ok: size %d, block size 4096, capabilities" % size)

# --- The model: the bytes of the device, and which pages are mapped -------
model = bytearray(size)
mapped = set()


def pages_of(off, n):
    """Pages touched by [off, off+n)."""
    return range(off // PAGE, (off + n + PAGE - 1) // PAGE)


def whole_pages_of(off, n):
    """Pages entirely inside [off, off+n)."""
    return range((off + PAGE - 1) // PAGE, (off + n) // PAGE)


def pattern(n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if n < 256 \
        else rng.randbytes(n)


def check(off, n, conn=None, what=""):
    """Read [off, off+n) and compare with the model."""
    got = (conn or h).pread(n, off)
    want = bytes(model[off:off + n])
    if got != want:
        i = next(i for i in range(n) if got[i] != want[i])
        raise AssertionError(
            "%s: read of %d bytes at %d differs from the model at offset %d "
            "(page %d): got %r, want %r" % (what, n, off, off + i,
                                           (off + i) // PAGE,
                                           got[i:i + 16], want[i:i + 16]))


def write(off, data, flags=0, conn=None):
    (conn or h).pwrite(data, off, flags)
    model[off:off + len(data)] = data
    mapped.update(pages_of(off, len(data)))


def zero(off, n, flags=0, conn=None):
    (conn or h).zero(n, off, flags)
    model[off:off + n] = bytes(n)
    # Whole pages are unmapped; a page zeroed in part keeps its mapping if
    # it had one (it is rewritten) and stays unmapped if it had none.
    mapped.difference_update(whole_pages_of(off, n))


def trim_pages(off, n, flags=0, conn=None):
    """Trim a page-aligned range: it must read back as zeroes."""
    assert off % PAGE == 0 and n % PAGE == 0
    (conn or h).trim(n, off, flags)
    model[off:off + n] = bytes(n)
    mapped.difference_update(whole_pages_of(off, n))


def extents(off, n, conn=None):
    """Per-page base:allocation flags of [off, off+n), page aligned."""
    conn = conn or h
    flags = {}
    pos = off
    while pos < off + n:
        got = []

        def cb(metacontext, offset, entries, err):
            if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
                got.append((offset, list(entries)))
            return 0

        conn.block_status(off + n - pos, pos, cb)
        assert len(got) == 1, "block_status: %d replies" % len(got)
        offset, entries = got[0]
        assert offset == pos
        assert entries, "block_status: no extents"
        for i in range(0, len(entries), 2):
            length, f = entries[i], entries[i + 1]
            assert length > 0 and length % PAGE == 0 and pos % PAGE == 0, \
                "extent of %d bytes at %d is not whole pages" % (length, pos)
            for p in range(pos // PAGE, (pos + length) // PAGE):
                flags[p] = f
            pos += length
    return {p: f for p, f in flags.items() if p < (off + n) // PAGE}


HOLE = nbd.STATE_HOLE | nbd.STATE_ZERO


def check_extents(off, n, conn=None, what=""):
    for p, f in sorted(extents(off, n, conn).items()):
        want = 0 if p in mapped else HOLE
        assert f == want, "%s: page %d has extent flags %d, expected %d" % (
            what, p, f, want)


# --- A fresh device reads as zeroes and is one hole -------------------------
check(0, 1 << 16, what="fresh start")
check(size - (1 << 16), 1 << 16, what="fresh end")
check(12345, 54321, what="fresh middle, unaligned")
assert extents(0, size) == {p: HOLE for p in range(size // PAGE)}
print("ok: fresh device is zeroes and hole|zero")

# --- Unaligned and partial-page writes and reads ----------------------------
write(1, b"\x01")                                  # one byte in page 0
write(4000, pattern(100))                          # straddles pages 0 and 1
write(6000, pattern(PAGE))                         # page size, unaligned
write(5000, pattern(50))                           # inside existing data
write(3 * PAGE + 17, pattern(3 * PAGE + 17))       # pages 3..6, both ends
write(8 * PAGE, pattern(PAGE // 2))                # aligned start, half page
write(10 * PAGE - 100, pattern(100))               # ends on a page boundary
write(11 * PAGE + PAGE - 1, b"\xff\xfe")           # last byte + next first
# Across stripe units (stripe=4 pages): a long unaligned write whose middle
# covers whole units and whose ends are partial pages.
write(16 * PAGE - 1234, pattern(9 * 4 * PAGE + 77))
# An aligned write of whole pages over part of the previous one.
write(20 * PAGE, pattern(6 * PAGE))
check(0, 60 * PAGE, what="after unaligned writes")
for off, n in [(0, 1), (1, 1), (2, 1), (4095, 2), (3999, 8195),
               (4000, 100), (5001, 48), (16 * PAGE - 1235, 3),
               (11 * PAGE + PAGE - 1, 2), (17 * PAGE + 1, 7 * PAGE - 2)]:
    check(off, n, what="unaligned read")
for _ in range(200):
    off = rng.randrange(0, 60 * PAGE)
    check(off, rng.randrange(1, min(3 * PAGE, 60 * PAGE - off) + 1),
          what="random unaligned read")
check_extents(0, 64 * PAGE, what="after unaligned writes")
print("ok: unaligned and partial-page writes and reads")

# --- The last page --------------------------------------------------------
last = size - PAGE
write(size - 1, b"\xaa")                           # the last byte
check(last, PAGE, what="last byte")
write(last - 10, pattern(PAGE + 10))               # last two pages, to the end
write(last + 100, pattern(200))                    # inside the last page
check(last - 2 * PAGE, 3 * PAGE, what="last pages")
check(size - 1, 1, what="last byte")
check(size - 300, 300, what="end of device")
print("ok: last page")

# --- Requests past the end fail and change nothing --------------------------
for name, fn in [
        ("read of a page at the end", lambda: h.pread(PAGE, size)),
        ("read across the end", lambda: h.pread(2 * PAGE, last)),
        ("unaligned read across the end", lambda: h.pread(2, size - 1)),
        ("write at the end", lambda: h.pwrite(b"x" * PAGE, size)),
        ("write across the end", lambda: h.pwrite(b"y" * 2 * PAGE, last)),
        ("unaligned write across the end", lambda: h.pwrite(b"zz", size - 1)),
        ("zero across the end", lambda: h.zero(2 * PAGE, last)),
        ("trim across the end", lambda: h.trim(2 * PAGE, last)),
        ("read far past the end", lambda: h.pread(PAGE, size + (1 << 30)))]:
    try:
        fn()
    except nbd.Error as e:
        pass
    else:
        raise AssertionError(name + ": succeeded, expected nbd.Error")
check(last - 2 * PAGE, 3 * PAGE, what="after failed requests past the end")
check_extents(size - 4 * PAGE, 4 * PAGE, what="end after failed requests")
print("ok: requests past the end fail, the last page is intact")

# --- Trim -------------------------------------------------------------------
base = 100 * PAGE
write(base, pattern(12 * PAGE))
trim_pages(base + PAGE, 4 * PAGE)                  # pages 101..104
check(base, 12 * PAGE, what="after aligned trim")
check_extents(base, 12 * PAGE, what="after aligned trim")
# An unaligned trim unmaps the pages it covers entirely (they read as
# zeroes); outside the range nothing changes.  The bytes it covers in
# part of a page have no defined content (NBD), so they are rewritten
# before being compared again.
t_off, t_len = base + 6 * PAGE + 100, 3 * PAGE
h.trim(t_len, t_off)                               # pages 107, 108 whole
model[107 * PAGE:109 * PAGE] = bytes(2 * PAGE)
mapped.difference_update([107, 108])
check(base, t_off - base, what="before an unaligned trim")
check(107 * PAGE, 2 * PAGE, what="whole pages of an unaligned trim")
check(t_off + t_len, 112 * PAGE - (t_off + t_len), what="after unaligned trim")
write(t_off, pattern(PAGE - 100))
write(109 * PAGE, pattern(100))
check(base, 12 * PAGE, what="after unaligned trim, rewritten")
check_extents(base, 12 * PAGE, what="after unaligned trim")
trim_pages(base, 12 * PAGE, nbd.CMD_FLAG_FUA)     # trim with FUA
check(base, 12 * PAGE, what="after trim with FUA")
check_extents(base, 12 * PAGE, what="after trim with FUA")
print("ok: trim then read gives zeroes")

# --- Zero -------------------------------------------------------------------
base = 200 * PAGE
write(base, pattern(8 * PAGE))
zero(base + 100, 50)                               # inside page 200
zero(base + PAGE - 10, PAGE + 20)                  # page 201 whole + ends
zero(base + 4 * PAGE, PAGE, nbd.CMD_FLAG_NO_HOLE)  # page 204
zero(base + 5 * PAGE + 1, PAGE - 2, nbd.CMD_FLAG_FUA)
zero(base + 6 * PAGE, PAGE, nbd.CMD_FLAG_FAST_ZERO)
check(base - PAGE, 10 * PAGE, what="after zeroes")
assert sorted(p for p in mapped if 200 <= p < 208) == \
    [200, 202, 203, 205, 207], "model of the zeroed pages"
# NO_HOLE allows either an unmapped or an allocated page of zeroes: rewrite
# page 204 so that the extents below have one right answer.
write(base + 4 * PAGE, pattern(PAGE))
check_extents(base, 8 * PAGE, what="after zeroes")
# Zeroing part of an unmapped page: zeroes, and it stays a hole.
assert 230 not in mapped
zero(230 * PAGE + 7, 99)
check(229 * PAGE, 3 * PAGE, what="after partial zero of a hole")
check_extents(229 * PAGE, 3 * PAGE, what="after partial zero of a hole")
print("ok: zero, partial and whole pages, with flags")

# --- Extents over unaligned ranges ----------------------------------------
got = []
h.block_status(10, 100 * PAGE + 5,
               lambda ctx, off, ent, err: got.append((ctx, off, list(ent))))
ctx, off, ent = [g for g in got if g[0] == nbd.CONTEXT_BASE_ALLOCATION][0]
assert ent[0] > 0 and ent[1] == HOLE, "unaligned block_status: %r" % ent
print("ok: extents")

# --- Large requests: many stripe units in one request ---------------------
write(1000 * PAGE, pattern(4 << 20))               # 4 MiB, aligned
write(1100 * PAGE + 321, pattern((3 << 20) + 123)) # 3 MiB, unaligned
check(999 * PAGE, (4 << 20) + 2 * PAGE, what="after large writes")
check(1050 * PAGE + 1, 2 << 20, what="large unaligned read")
check_extents(990 * PAGE, 1100 * PAGE, what="after large writes")
zero(1010 * PAGE + 5, 2 << 20)                     # large zero, unaligned
trim_pages(1500 * PAGE, 1 << 20)                   # large trim
check(999 * PAGE, (4 << 20) + 2 * PAGE, what="after large zero and trim")
check_extents(990 * PAGE, 1100 * PAGE, what="after large zero and trim")
print("ok: large requests")

# --- Flush and FUA ----------------------------------------------------------
h.flush()
write(300 * PAGE, pattern(PAGE), nbd.CMD_FLAG_FUA)
write(302 * PAGE + 3, pattern(3 * PAGE), nbd.CMD_FLAG_FUA)
h.flush()
check(299 * PAGE, 8 * PAGE, what="after FUA writes")
print("ok: flush and FUA")

# --- Multi-conn: two connections see each other's writes ------------------
h2 = connect()
assert h2.get_size() == size
check(0, size // 4, conn=h2, what="second connection, old data")
write(400 * PAGE + 10, pattern(2 * PAGE), conn=h)
h.flush()
check(400 * PAGE, 3 * PAGE, conn=h2, what="h -> h2")
write(401 * PAGE + 5, pattern(100), nbd.CMD_FLAG_FUA, conn=h2)
check(400 * PAGE, 3 * PAGE, conn=h, what="h2 -> h")
zero(400 * PAGE, PAGE, conn=h2)
h2.flush()
check(400 * PAGE, 3 * PAGE, conn=h, what="zero h2 -> h")
trim_pages(401 * PAGE, PAGE, conn=h)
h.flush()
check(400 * PAGE, 3 * PAGE, conn=h2, what="trim h -> h2")
check_extents(400 * PAGE, 3 * PAGE, conn=h2, what="extents h -> h2")
print("ok: multi-conn")

# --- Concurrent requests on shared pages, over both connections ----------
def run_concurrently(reqs):
    """Issue every request at once (aio) and wait for all of them.
    reqs: (conn, "w", offset, data) or (conn, "r", offset, length).
    Returns the data of the reads, in order, as bytes (None for writes)."""
    started = []
    for conn, kind, off, arg in reqs:
        if kind == "w":
            buf = nbd.Buffer.from_bytearray(bytearray(arg))
            cookie = conn.aio_pwrite(buf, off)
        else:
            buf = nbd.Buffer(arg)
            cookie = conn.aio_pread(buf, off)
        started.append((conn, kind, cookie, buf))
    conns = {id(c): c for c, _, _, _ in started}.values()
    while any(c.aio_in_flight() > 0 for c in conns):
        for c in conns:
            if c.aio_in_flight() > 0:
                c.poll(1)
    results = []
    for conn, kind, cookie, buf in started:
        assert conn.aio_command_completed(cookie)
        results.append(buf.to_bytearray() if kind == "r" else None)
    return results


# Sub-page writes to the same pages in flight together: cut 24 pages into
# disjoint pieces of 1 to 3000 bytes (some crossing page boundaries) and
# write them all at once, half on each connection, in random order.  Each
# needs a read-modify-write of its page: none may undo another.
lo, hi = 500 * PAGE + 77, 524 * PAGE - 5
pieces = []
off = lo
while off < hi:
    n = min(rng.randrange(1, 3001), hi - off)
    pieces.append((off, pattern(n)))
    off += n
rng.shuffle(pieces)
run_concurrently([(rng.choice((h, h2)), "w", off, data)
                  for off, data in pieces])
for off, data in pieces:
    model[off:off + len(data)] = data
mapped.update(pages_of(lo, hi - lo))
check(499 * PAGE, 26 * PAGE, what="after %d concurrent sub-page writes"
      % len(pieces))
check_extents(499 * PAGE, 26 * PAGE, what="after concurrent sub-page writes")

# Rewrites racing with reads: while whole pages are rewritten again and
# again, every page a concurrent read returns must be a version that was
# written to that very page (never another page's data, a half-written
# page, or zeroes): slots are not reused under a reader.
first, npages = 600, 16
versions = {p: set() for p in range(first, first + npages)}
for p in versions:
    data = pattern(PAGE)
    write(p * PAGE, data)
    versions[p].add(data)
for rnd in range(12):
    reqs = []
    for p in range(first, first + npages):
        data = pattern(PAGE)
        versions[p].add(data)
        model[p * PAGE:(p + 1) * PAGE] = data
        reqs.append((h, "w", p * PAGE, data))
        reqs.append((h2, "r", p * PAGE, PAGE))
        reqs.append((h2, "r", p * PAGE - PAGE, 3 * PAGE))
    # One write per page and round: the model above is exact.
    rng.shuffle(reqs)
    results = run_concurrently(reqs)
    for (conn, kind, off, arg), got in zip(reqs, results):
        if kind != "r":
            continue
        for i in range(0, arg, PAGE):
            p = (off + i) // PAGE
            page = bytes(got[i:i + PAGE])
            if p in versions:
                assert page in versions[p], \
                    "round %d: read of page %d returned data never written " \
                    "there" % (rnd, p)
check((first - 1) * PAGE, (npages + 2) * PAGE, what="after racing rewrites")
print("ok: concurrent sub-page writes and racing rewrites/reads")

# --- A random mix near both ends, over both connections -------------------
windows = [(0, 96 * PAGE), (size - 64 * PAGE, size)]
counts = {}
for i in range(600):
    lo, hi = rng.choice(windows)
    off = rng.randrange(lo, hi)
    n = rng.randrange(1, min(5 * PAGE, hi - off) + 1)
    conn = rng.choice((h, h2))
    op = rng.choice(("write", "write", "write", "read", "zero", "trim"))
    counts[op] = counts.get(op, 0) + 1
    if op == "write":
        write(off, pattern(n), rng.choice((0, nbd.CMD_FLAG_FUA)), conn=conn)
    elif op == "read":
        check(off, n, conn=conn, what="random mix, op %d" % i)
    elif op == "zero":
        zero(off, n, conn=conn)
    else:
        off -= off % PAGE
        n = min(max(PAGE, n - n % PAGE), hi - off)
        trim_pages(off, n, conn=conn)
print("random mix:", counts)
for lo, hi in windows:
    check(lo, hi - lo, what="after the random mix")
    check_extents(lo, hi - lo, what="after the random mix")

# --- Everything, once more, in 1 MiB reads --------------------------------
for off in range(0, size, 1 << 20):
    check(off, min(1 << 20, size - off), conn=h2, what="final compare")
check_extents(0, size, what="final extents")
print("ok: random mix and full compare; %d pages mapped" % len(mapped))
with open(os.environ["MAPPED_FILE"], "w") as f:
    f.write("%d\n" % len(mapped))
h2.shutdown()
h.shutdown()
EOF

swt_stop
swt_show_counters
swt_check_counters
# Every page the model says is mapped holds exactly one slot, and no other
# slot is in use (rewrites and unmaps freed the old ones).
mapped=$(cat "$swt_tmpdir/mapped")
used=$(( $(swt_stat 0 used) + $(swt_stat 1 used) ))
(( used == mapped )) ||
    swt_fail "$used slots in use, but $mapped pages are mapped"
# Both backends of the priority took part.
for id in 0 1; do
    (( $(swt_stat $id writes) > 0 )) || swt_fail "backend $id took no writes"
    (( $(swt_stat $id reads) > 0 )) || swt_fail "backend $id served no reads"
done
echo "PASS"
