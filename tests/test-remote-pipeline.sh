#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Pipelining (issue 16): requests to a remote backend share its
# connections, many in flight on one, so the bound on requests in flight
# is what the client sends, not connections=.  With a real nbdkit sh
# server on a Unix socket that counts the reads it is serving at once
# (each holds for 0.3 s once the test arms it), over a single connection
# (connections=1):
#   1. 8 reads sent at once by one client reach the server together:
#      the server saw at least 4 in flight at the same time (1 without
#      pipelining), and every read returns the bytes written.
#   2. Reads that get no reply in time (the server stopped with SIGSTOP
#      for longer than timeout=1, 12 reads in flight on the connection)
#      end lost and are sent again once the server answers, and return
#      their bytes.  The server survives: the connection is not closed
#      while its replies are still to come (nbdkit 1.32 aborts when a
#      client hangs up on several pending replies), and it serves a new
#      connection afterwards.
#   3. The same with a server that takes one connection at a time
#      (nbdkit's limit filter, limit=1): the old connection is closed
#      once its replies came, so the reconnection is let in, within
#      grace=.
#   5. (below 4) A 4 MiB write and read, one request each, with the
#      largest stripe unit (stripe=256), reach the server (nbdkit's log
#      filter) as commands of at most 1 MiB, the most a command copies,
#      and read back right.
#   6. (last) A slow server that answers one request at a time, 0.2 s
#      each (nbdkit --threads 1, the delay filter), 16 reads at once with
#      timeout=1: the last waits 3.2 s in the server's queue, but the
#      server keeps answering, so none is lost and all return their pages.
#   7. (last) Memory short for a while (nbdkit under a malloc that
#      fails for a command's copy of a page while a flag file exists,
#      tests/failmalloc.c), 6 s, longer than timeout= + 2 x grace=: a
#      read waits for the memory, is sent then and returns its page; the
#      page is not taken as lost, nor the backend as failed.
#   8. (last) A flush that gets no answer within timeout=1 (the sh
#      server, multi-conn, its first flush taking 2.5 s) is sent again
#      once the server answers, and succeeds.
#   9. (last) A server that takes one connection (limit=1) with the
#      default connections=4, 32 writes and then 32 reads at once: the
#      extra connections are refused, the requests share the one it
#      took, and none fails.
#  10. (last) A server that never answers one read but takes new
#      connections, on connections=1: the connection it hangs on is set
#      aside to drain, so its place takes the reconnection at once, and
#      the read, sent again, returns its page well within grace=.
#   4. A server that never answers one write (the sh server, its first
#      write hanging) but takes new connections, on connections=1 beside
#      a second backend: the write is lost and goes to the other backend;
#      writes while the one place holds that connection go there too, at
#      at once (within 3 s, grace= is 8); grace= after the cut the
#      connection is closed anyway, and new pages go to the first backend
#      again.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
d=$swt_tmpdir
mkdir "$d/inflight"
truncate -s 64M "$d/store"

# The server: a file in $d/store, served by dd.  Reads, once $d/armed
# exists, leave a file in $d/inflight while they are served, log how
# many there are, and hold for 0.3 s.
cat >"$d/server.sh" <<EOS
#!/usr/bin/env bash
store=$d/store
dir=$d
EOS
cat >>"$d/server.sh" <<'EOS'
case "$1" in
    thread_model) echo parallel ;;
    get_size) stat -c %s "$store" ;;
    can_write|can_flush|can_multi_conn) exit 0 ;;
    flush)
        # The first flush once $d/hang-flush exists takes 2.5 s.
        if [[ -e $dir/hang-flush ]] && mkdir "$dir/flush-hung" 2>/dev/null; then
            sleep 2.5
        fi
        sync "$store"
        ;;
    pread)
        # The first read of data (not slot 0) once $d/hang-read exists
        # hangs while it does.
        if [[ -e $dir/hang-read && $4 -ne 0 ]] &&
               mkdir "$dir/read-hung" 2>/dev/null; then
            while [[ -e $dir/hang-read ]]; do sleep 0.1; done
        fi
        if [[ -e $dir/armed ]]; then
            mark=$(mktemp "$dir/inflight/r.XXXXXX")
            ls "$dir/inflight" | wc -l >>"$dir/counts"
            sleep 0.3
        fi
        dd if="$store" iflag=skip_bytes,count_bytes skip="$4" count="$3" \
           bs=64k status=none
        [[ -z ${mark:-} ]] || rm -f "$mark"
        ;;
    pwrite)
        # The first write once $d/hang-one exists hangs while it does.
        if [[ -e $dir/hang-one ]] && mkdir "$dir/hung" 2>/dev/null; then
            while [[ -e $dir/hang-one ]]; do sleep 0.1; done
        fi
        dd of="$store" oflag=seek_bytes seek="$4" bs=64k conv=notrunc \
           status=none
        ;;
    *) exit 2 ;;
esac
EOS
chmod +x "$d/server.sh"
rmt_start p sh "$d/server.sh"
swt_start backend="$(rmt_uri p)" connections=1 timeout=1 grace=30 \
          demote=off encrypt=off

# Concurrent reads: pipeline-reads.py COUNT FIRST_PAGE [SERVER_PID]
# writes COUNT random pages from FIRST_PAGE, arms the server's hold,
# sends a read of each at once (and, given the server's pid, stops it
# with SIGSTOP for 2.5 s, past timeout=1, once they are sent) and checks
# that every read succeeds with its page.
cat >"$d/pipeline-reads.py" <<'PY'
import nbd, os, signal, sys, time
uri, d, count, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
server = int(sys.argv[5]) if len(sys.argv) > 5 else None
h = nbd.NBD()
h.connect_uri(uri)
data = [os.urandom(4096) for _ in range(count)]
for i, page in enumerate(data):
    h.pwrite(page, (first + i) * 4096)
h.flush()
open(os.path.join(d, "armed"), "w").close()
bufs = [nbd.Buffer(4096) for _ in data]
cookies = [h.aio_pread(b, (first + i) * 4096) for i, b in enumerate(bufs)]
if server:
    time.sleep(0.15)
    os.kill(server, signal.SIGSTOP)
    time.sleep(2.5)
    os.kill(server, signal.SIGCONT)
while h.aio_in_flight() > 0:
    h.poll(-1)
for i, b in enumerate(bufs):
    try:
        h.aio_command_completed(cookies[i])
    except nbd.Error as e:
        sys.exit("the read of page %d failed: %s" % (first + i, e))
    assert b.to_bytearray() == data[i], "page %d read back wrong" % (first + i)
h.shutdown()
print("ok: %d concurrent reads returned their pages" % count)
PY

# onepage.connect_with_page(URI): a handle on URI after one random page
# was written at offset 0 and flushed, and that page (PYTHONPATH=$d).
cat >"$d/onepage.py" <<'PY'
import nbd, os

def connect_with_page(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    page = os.urandom(4096)
    h.pwrite(page, 0)
    h.flush()
    return h, page
PY

# --- 1 ----------------------------------------------------------------------
"$swt_python" "$d/pipeline-reads.py" "$swt_uri" "$d" 8 0
max=$(sort -n "$d/counts" | tail -1)
echo "the server served at most $max reads at once on one connection"
(( max >= 4 )) || swt_fail "at most $max reads in flight on one connection, not 4 or more"

# --- 2 ----------------------------------------------------------------------
# The reads are held 0.3 s each, the server is stopped with 12 of them in
# flight and continued after 2.5 s, past timeout=1: then its 12 replies
# come at once, on a connection swaptier no longer waits on.
"$swt_python" "$d/pipeline-reads.py" "$swt_uri" "$d" 12 100 "${rmt_pid[p]}"
grep -q "no reply within" "$swt_log" || swt_fail "no read was lost to the stopped server"
grep -q "reconnected after" "$swt_log" || swt_fail "no reconnection after the stall"
sleep 1
if ! kill -0 "${rmt_pid[p]}" 2>/dev/null || grep -q "Assertion" "$d/p.log"; then
    grep -i "assert\|abort" "$d/p.log" >&2 || true
    swt_fail "the remote server died after its replies came late"
fi
rm -f "$d/armed"
nbdinfo --size "$(rmt_uri p)" >/dev/null ||
    swt_fail "the remote server no longer serves a new connection"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop p

# --- 3 ----------------------------------------------------------------------
rmt_start one --filter=limit sh "$d/server.sh" limit=1
swt_start backend="$(rmt_uri one)" connections=1 timeout=1 grace=10 \
          demote=off encrypt=off
"$swt_python" "$d/pipeline-reads.py" "$swt_uri" "$d" 12 200 "${rmt_pid[one]}"
grep -q "reconnected after" "$swt_log" ||
    swt_fail "no reconnection to the one-connection server"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop one

# --- 4 ----------------------------------------------------------------------
rm -rf "$d/armed" "$d/hung"
rmt_start h sh "$d/server.sh"
rmt_start m memory 64M
swt_start backend="$(rmt_uri h)" connections=1 timeout=1 grace=8 priority=2 \
          backend="$(rmt_uri m)" priority=1 demote=off encrypt=off
touch "$d/hang-one"
"$swt_python" - "$swt_uri" "$swt_log" <<'PY'
import nbd, os, re, sys, time
uri, log = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(uri)
pages = [os.urandom(4096) for _ in range(3)]

def write(i, limit):
    """Write page i; fail if it has not ended within limit seconds."""
    cookie = h.aio_pwrite(pages[i], i * 4096)
    end = time.monotonic() + limit
    while not h.aio_command_completed(cookie):
        if time.monotonic() > end:
            sys.exit("the write of page %d did not end within %d s" % (i, limit))
        h.poll(100)

def wait_log(pattern, limit):
    end = time.monotonic() + limit
    while not re.search(pattern, open(log).read()):
        if time.monotonic() > end:
            sys.exit("no '%s' in the log within %d s" % (pattern, limit))
        time.sleep(0.1)

write(0, 20)                         # lost on h after timeout=1, then on m
wait_log("reconnected after", 20)    # h is up, its one place still taken
write(1, 3)                          # at once: not held until grace=
wait_log("closing a connection with 1 request unanswered", 20)
write(2, 20)
for i, page in enumerate(pages):
    assert h.pread(4096, i * 4096) == page, "page %d read back wrong" % i
h.shutdown()
print("ok: a write that never got an answer held no request up")
PY
rm -f "$d/hang-one"
swt_stop
(( $(swt_stat 0 used) >= 1 )) ||
    swt_fail "no page went to the first backend after its connection was closed"
(( $(swt_stat 0 lost) + $(swt_stat 1 lost) == 0 )) || swt_fail "pages lost"

# --- 5 ----------------------------------------------------------------------
rmt_start big --filter=log memory 64M logfile="$d/big.log"
swt_start backend="$(rmt_uri big)" stripe=256 demote=off encrypt=off
"$swt_python" - "$swt_uri" <<'PY'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
data = os.urandom(4 << 20)
h.pwrite(data, 1 << 20)
assert h.pread(len(data), 1 << 20) == data, "the 4 MiB read back wrong"
h.shutdown()
print("ok: 4 MiB written and read back in one request each")
PY
swt_stop
largest=$(sed -n 's/.* \(Read\|Write\) .*count=\(0x[0-9a-f]*\).*/\2/p' "$d/big.log" |
          while read -r c; do echo $((c)); done | sort -n | tail -1)
echo "the largest command the server got: $largest bytes"
(( largest > 0 && largest <= 1048576 )) ||
    swt_fail "a command of $largest bytes, more than 1 MiB"
rmt_stop big

# --- 6 ----------------------------------------------------------------------
rmt_start slow --threads 1 --filter=delay memory 64M rdelay=200ms
swt_start backend="$(rmt_uri slow)" connections=1 timeout=1 grace=30 \
          demote=off encrypt=off
"$swt_python" "$d/pipeline-reads.py" "$swt_uri" "$d" 16 300
grep -q "no reply" "$swt_log" && swt_fail "a read queued at a slow server was taken as lost"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop slow

# --- 7 ----------------------------------------------------------------------
failmalloc=$(cd "$(dirname "$swt_plugin")/tests/.libs" && pwd)/failmalloc.so
[[ -e $failmalloc ]] || swt_fail "no $failmalloc (make check builds it)"
rmt_start nm memory 64M
swt_env=(LD_PRELOAD="$failmalloc" FAILMALLOC_MIN=4097 FAILMALLOC_MAX=4352
         FAILMALLOC_FLAG="$d/nomem")
swt_start backend="$(rmt_uri nm)" timeout=1 grace=2 demote=off encrypt=off
swt_env=()
PYTHONPATH="$d" "$swt_python" - "$swt_uri" "$d/nomem" <<'PY'
import nbd, os, sys, time
from onepage import connect_with_page
uri, flag = sys.argv[1:]
h, page = connect_with_page(uri)
open(flag, "w").close()              # no memory for a command from now
buf = nbd.Buffer(4096)
cookie = h.aio_pread(buf, 0)
end = time.monotonic() + 6
while time.monotonic() < end and not h.aio_command_completed(cookie):
    h.poll(100)
os.unlink(flag)                      # memory is back
while not h.aio_command_completed(cookie):
    h.poll(100)
assert buf.to_bytearray() == page, "the page read back wrong"
assert h.pread(4096, 0) == page, "the page read back wrong the second time"
h.shutdown()
print("ok: a read short of memory waited for it and returned its page")
PY
grep -q "no memory for a command; waiting" "$swt_log" ||
    swt_fail "the read was never short of memory: the preload did not bite"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop nm

# --- 8 ----------------------------------------------------------------------
rmt_start fl sh "$d/server.sh"
swt_start backend="$(rmt_uri fl)" connections=1 timeout=1 grace=30 \
          demote=off encrypt=off
touch "$d/hang-flush"
PYTHONPATH="$d" "$swt_python" - "$swt_uri" <<'PY'
import sys
from onepage import connect_with_page
h, page = connect_with_page(sys.argv[1])
assert h.pread(4096, 0) == page, "the page read back wrong"
h.shutdown()
print("ok: a flush lost to a slow server was sent again and succeeded")
PY
grep -q "no reply within" "$swt_log" || swt_fail "the flush was never late"
swt_stop
rmt_stop fl

# --- 9 ----------------------------------------------------------------------
rmt_start lim1 --filter=limit --filter=delay memory 64M limit=1 \
          rdelay=20ms wdelay=20ms
swt_start backend="$(rmt_uri lim1)" timeout=5 grace=30 demote=off encrypt=off
"$swt_python" - "$swt_uri" <<'PY'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
pages = [os.urandom(4096) for _ in range(32)]
cookies = [h.aio_pwrite(p, (400 + i) * 4096) for i, p in enumerate(pages)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    h.aio_command_completed(c)
bufs = [nbd.Buffer(4096) for _ in pages]
cookies = [h.aio_pread(b, (400 + i) * 4096) for i, b in enumerate(bufs)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for i, c in enumerate(cookies):
    h.aio_command_completed(c)
    assert bufs[i].to_bytearray() == pages[i], "page %d read back wrong" % i
h.shutdown()
print("ok: 32 writes and 32 reads at once on a one-connection server")
PY
grep -q "took no more connections" "$swt_log" ||
    swt_fail "no extra connection was refused: the test did not test"
grep -q "connection lost" "$swt_log" &&
    swt_fail "a refused extra connection made the backend down"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop lim1

# --- 10 ---------------------------------------------------------------------
rm -rf "$d/armed" "$d/read-hung"
rmt_start hr sh "$d/server.sh"
swt_start backend="$(rmt_uri hr)" connections=1 timeout=1 grace=8 \
          demote=off encrypt=off
PYTHONPATH="$d" "$swt_python" - "$swt_uri" "$d/hang-read" <<'PY'
import sys, time
from onepage import connect_with_page
uri, flag = sys.argv[1:]
h, page = connect_with_page(uri)
open(flag, "w").close()
start = time.monotonic()
assert h.pread(4096, 0) == page, "the page read back wrong"
took = time.monotonic() - start
assert took < 6, "the read took %.1f s: it waited for grace= (8 s)" % took
h.shutdown()
print("ok: a read the server never answered came back in %.1f s" % took)
PY
rm -f "$d/hang-read"
swt_stop
(( $(swt_stat 0 lost) == 0 )) || swt_fail "pages lost"
rmt_stop hr
echo "PASS"
