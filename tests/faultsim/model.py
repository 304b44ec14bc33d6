# SPDX-License-Identifier: BSD-3-Clause
"""The shadow model of the exported device: what every read may return.

For each 4 KiB page the model keeps:

  cands    the contents the page may hold, as 4096-byte strings: one after
           an acknowledged change, several after a change that failed (its
           outcome is unknown: old or new).  A read collapses them to those
           that match what it returned.
  lost_ok  whether a read touching it may fail with EIO (its only copy may
           have been on a backend that lost data, or a change of it failed).
  mapped   whether it may hold a slot (only a page with a slot can be lost:
           an unmapped page reads as zeroes whatever the backends do).
  prev     the content acknowledged before the current one, only to name a
           wrong answer "stale" in a report.

Rules (the cardinal one: never wrong bytes, never zeroes for data):
  * A successful write / NO_HOLE zero sets the bytes it covers; a
    successful trim or may-trim zero of a whole page unmaps it (zeroes,
    cannot be lost).  A partial trim leaves its bytes old or zero (NBD
    leaves trimmed bytes unspecified; the plugin keeps partial pages).
  * A failed write/zero/trim leaves each page it touches old or new, and
    may lose it.
  * A data-losing fault (memory server restarted empty, a server given up,
    read errors injected, a removal that lost pages) opens a loss window:
    every page that may be mapped becomes lost_ok, and so does every page
    changed by a request that overlapped the window (its new slot may sit
    on the failing backend).  Only a later change made entirely outside
    any window makes a page exact again.
  * A read must return, for every page, the bytes of one candidate, or
    EIO if and only if some page it touches is lost_ok.

With copies=N >= 2 the rules are the same; what changes is when loss
windows open (faults.py, DomainGuard): a fault disrupts one failure
domain, and a page then keeps a live copy in another, so only N domains
disrupted together (or one hit before the copies lost in another were
re-created) open a window.  Outside of windows no page may be lost, and
a plain write may not fail with EIO either: a copy that cannot be
written goes to another domain, or the write is acknowledged with fewer
copies (protected() says when that applies).
"""

import threading

PAGE = 4096
ZERO_PAGE = bytes(PAGE)
# More candidates than this (many failed changes in a row without a read)
# and the page is no longer checked until it is changed successfully; the
# report counts such pages.
MAX_CANDIDATES = 32


class PageState:
    """One page of the model (see the module docstring for the fields)."""

    __slots__ = ("cands", "lost_ok", "mapped", "prev", "unknown")

    def __init__(self):
        self.cands = (ZERO_PAGE,)
        self.lost_ok = False
        self.mapped = False
        self.prev = None
        self.unknown = False


def _dedup(pages):
    """The distinct strings of pages, in their first order, as a tuple."""
    seen = []
    for p in pages:
        if p not in seen:
            seen.append(p)
    return tuple(seen)


def _describe_mismatch(got, want):
    """A short text saying where got differs from want (equal lengths)."""
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return "first difference at +%d: expected 0x%02x, got 0x%02x" % (
                i, b, a)
    return "equal"


class Model:
    """The expected state of the whole device; every method is thread safe
    (one lock; the driver's page-range lock keeps requests on disjoint
    pages, so the order of their updates here does not matter)."""

    def __init__(self, npages, copies=1):
        self.npages = npages
        self.copies = copies
        self.pages = [PageState() for _ in range(npages)]
        self.lock = threading.Lock()
        self.epoch = 0          # bumped at every opening of a loss window
        self.open_windows = 0   # loss windows open now
        self.windows = 0        # loss windows opened so far

    # --- loss windows -------------------------------------------------------

    def begin_op(self):
        """The token a request takes when it is issued; passed back with its
        outcome, it tells whether the request overlapped a loss window."""
        with self.lock:
            return self.epoch

    def _overlapped_window(self, token):
        """Whether a request issued at token overlapped a loss window."""
        return token != self.epoch or self.open_windows > 0

    def loss_begin(self):
        """Open a loss window: every page that may be mapped may be lost."""
        with self.lock:
            self.epoch += 1
            self.open_windows += 1
            self.windows += 1
            for st in self.pages:
                if st.mapped:
                    st.lost_ok = True

    def loss_end(self):
        """Close a loss window opened by loss_begin."""
        with self.lock:
            self.epoch += 1
            self.open_windows -= 1

    def loss_now(self):
        """A loss seen after the fact (a removal that lost pages)."""
        self.loss_begin()
        self.loss_end()

    def protected(self, token):
        """Whether a request issued at token ran with copies >= 2 and
        overlapped no loss window: fewer domains than copies were
        disrupted all along, so a write must not fail with EIO."""
        with self.lock:
            return self.copies > 1 and not self._overlapped_window(token)

    # --- changes ------------------------------------------------------------

    def _pieces(self, offset, length):
        """(page, start, end) for each page [offset, offset+length) covers."""
        end = offset + length
        page = offset // PAGE
        while page * PAGE < end:
            lo = max(offset, page * PAGE) - page * PAGE
            hi = min(end, (page + 1) * PAGE) - page * PAGE
            yield page, lo, hi
            page += 1

    def _set(self, st, new_cands, ok, token, mapped):
        """Install new_cands (the merged contents) into page st after a
        change that succeeded (ok) or failed."""
        if ok:
            if len(st.cands) == 1 and new_cands[0] != st.cands[0]:
                st.prev = st.cands[0]
            st.cands = _dedup(new_cands)
            st.unknown = False
            st.mapped = mapped
            st.lost_ok = mapped and self._overlapped_window(token)
        else:
            st.cands = _dedup(st.cands + tuple(new_cands))
            st.mapped = st.mapped or mapped
            st.lost_ok = True
        if len(st.cands) > MAX_CANDIDATES:
            st.unknown = True
            st.cands = st.cands[-MAX_CANDIDATES:]

    def write(self, offset, data, ok, token):
        """Record a write of data at offset that succeeded (ok) or failed."""
        with self.lock:
            for page, lo, hi in self._pieces(offset, len(data)):
                st = self.pages[page]
                piece = data[page * PAGE + lo - offset:page * PAGE + hi - offset]
                new = [c[:lo] + piece + c[hi:] for c in st.cands]
                self._set(st, new, ok, token, True)

    def zero(self, offset, length, may_trim, ok, token):
        """Record a zero request; with may_trim whole pages are unmapped,
        without it (NO_HOLE) zeroes are written to new slots."""
        with self.lock:
            for page, lo, hi in self._pieces(offset, length):
                st = self.pages[page]
                if may_trim and lo == 0 and hi == PAGE:
                    self._set(st, [ZERO_PAGE], ok, token, False)
                else:
                    new = [c[:lo] + bytes(hi - lo) + c[hi:] for c in st.cands]
                    mapped = st.mapped if may_trim else True
                    self._set(st, new, ok, token, mapped)

    def trim(self, offset, length, ok, token):
        """Record a trim: whole pages are unmapped, bytes of partly covered
        pages keep their content or become zero."""
        with self.lock:
            for page, lo, hi in self._pieces(offset, length):
                st = self.pages[page]
                if lo == 0 and hi == PAGE:
                    self._set(st, [ZERO_PAGE], ok, token, False)
                    continue
                zeroed = [c[:lo] + bytes(hi - lo) + c[hi:] for c in st.cands]
                lost = st.lost_ok
                st.cands = _dedup(st.cands + tuple(zeroed))
                st.lost_ok = lost or not ok
                if len(st.cands) > MAX_CANDIDATES:
                    st.unknown = True
                    st.cands = st.cands[-MAX_CANDIDATES:]

    # --- reads --------------------------------------------------------------

    def may_fail(self, offset, length):
        """Whether a read of [offset, offset+length) may fail with EIO."""
        with self.lock:
            return any(self.pages[p].lost_ok
                       for p, _, _ in self._pieces(offset, length))

    def check_read(self, offset, data):
        """Check the bytes a successful read of offset returned; narrow each
        page's candidates to those that match.  Returns a list of
        (kind, page, text) for each page that matches no candidate, where
        kind is "zeroes-for-data", "stale-data" or "wrong-bytes"."""
        bad = []
        with self.lock:
            for page, lo, hi in self._pieces(offset, len(data)):
                st = self.pages[page]
                got = data[page * PAGE + lo - offset:page * PAGE + hi - offset]
                match = tuple(c for c in st.cands if c[lo:hi] == got)
                if match:
                    st.cands = match
                    continue
                if st.unknown:
                    continue
                want = st.cands[0][lo:hi]
                if got == bytes(hi - lo):
                    kind = "zeroes-for-data"
                elif st.prev is not None and st.prev[lo:hi] == got:
                    kind = "stale-data"
                else:
                    kind = "wrong-bytes"
                text = ("page %d bytes [%d,%d): %d candidate(s), lost_ok=%s; "
                        "got %s; %s" % (
                            page, lo, hi, len(st.cands), st.lost_ok,
                            "all zeroes" if got == bytes(hi - lo)
                            else "non-zero data",
                            _describe_mismatch(got, want)))
                bad.append((kind, page, text))
        return bad

    def summary(self):
        """Counts of pages by state, for the final report."""
        with self.lock:
            return {
                "mapped": sum(st.mapped for st in self.pages),
                "lost_ok": sum(st.lost_ok for st in self.pages),
                "uncertain": sum(len(st.cands) > 1 for st in self.pages),
                "unchecked": sum(st.unknown for st in self.pages),
            }
