#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Remote backends over TLS, and the durability of FUA writes on them
# (issue 11), with real nbdkit servers on Unix sockets:
#   1. a server with --tls=require and a PSK file: fio verify=crc32c
#      through swaptier on an nbds+unix URI passes; a plain nbd+unix URI
#      to the same server is refused with an error saying TLS is needed.
#   2. a FUA write through swaptier reaches a remote that supports FUA as
#      a write with fua=1 (nbdkit's log filter on the remote).
#   3. on a remote without FUA (nbdkit's fua filter, default
#      fuamode=none), a FUA
#      write through swaptier is followed by a flush of the remote.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
rmt_setup
for f in log fua; do
    nbdkit --filter="$f" null --dump-plugin >/dev/null 2>&1 || {
        echo "SKIP: nbdkit has no $f filter" >&2
        exit 77
    }
done
d=$swt_tmpdir

# Print the title of a part of the test, with the time since the start.
section ()
{
    echo "=== $* (at ${SECONDS} s)"
}

# =============================================================================
section "1: a remote over TLS (PSK)"
echo "alice:$("$swt_python" -c 'import os; print(os.urandom(32).hex())')" \
    >"$d/psk"
chmod 600 "$d/psk"
rmt_start tls --tls=require --tls-psk="$d/psk" memory 64M
# libnbd takes the PSK user name from the authority of the URI.
tls_uri="nbds+unix://alice@/?socket=$d/tls.sock&tls-psk-file=$d/psk"
swt_start backend="$tls_uri"
rc=0
rmt_fio_cmd "$d/fio.json" --name=tls --rw=randwrite --bs=4k --iodepth=16 \
    --size=16M || rc=$?
(( rc == 0 )) || { cat "$d/fio.json" >&2; swt_fail "fio failed (status $rc)"; }
rmt_fio_check "$d/fio.json" $(( 16 << 20 ))
swt_stop
swt_show_counters
swt_check_counters
(( $(swt_stat 0 writes) > 0 )) || swt_fail "no write reached the TLS remote"
swt_expect_error "server requires TLS" backend="$(rmt_uri tls)"
rmt_stop tls

# =============================================================================
section "2: a FUA write reaches the remote with fua=1"
rmt_start f1 --filter=log memory 16M logfile="$d/f1.log"
swt_start backend="$(rmt_uri f1)"
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(b"f" * 4096, 0, nbd.CMD_FLAG_FUA)'
swt_stop
grep -F " Write " "$d/f1.log" | tail -n 2
# The last write is the FUA write (the release of the header at exit
# goes to slot 0 at offset 0; the data page is at offset 0x1000).
grep -E " Write id=[0-9]+ offset=0x1000 count=0x1000 fua=1" "$d/f1.log" ||
    swt_fail "the FUA write did not reach the remote with fua=1"
echo "ok: the remote got the write with fua=1"
rmt_stop f1

# =============================================================================
section "3: on a remote without FUA, a FUA write is followed by a flush"
# fuamode=none is the fua filter's default (nbdkit 1.32 refuses it given
# explicitly).
rmt_start f2 --filter=log --filter=fua memory 16M logfile="$d/f2.log"
swt_start backend="$(rmt_uri f2)"
URI=$swt_uri "$swt_python" -c '
import os, nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
h.pwrite(b"f" * 4096, 0, nbd.CMD_FLAG_FUA)'
# Before the stop: the release of the header at exit writes with FUA too.
"$swt_python" - "$d/f2.log" <<'EOF'
import re, sys
lines = [l for l in open(sys.argv[1]) if re.search(r" (Write|Flush) id=", l)]
i = next((i for i, l in enumerate(lines)
          if re.search(r" Write id=\d+ offset=0x1000 ", l)), None)
assert i is not None, "the data write did not reach the remote"
assert "fua=1" not in lines[i], "a FUA write went to a remote without FUA"
assert any(" Flush " in l for l in lines[i + 1:]), \
    "no flush after the FUA write on a remote without FUA"
print("ok: the write (fua=0) was followed by a flush")
EOF
swt_stop
rmt_stop f2
echo "PASS"
