#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The example configuration config/swaptier.conf is accepted by the
# plugin, with its paths and sizes made to fit a test: its two local
# tiers on files here and its remote tier on a real nbdkit memory server
# started here.  The export has the size its backends give, and the
# backends the priorities of the example.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require nbdinfo timeout truncate
d=$swt_tmpdir
example=${srcdir:-$(dirname "$0")}/../config/swaptier.conf

# The remote tier.
nbdkit -f --exit-with-parent -U "$d/remote.sock" -P "$d/remote.pid" \
    memory 64M 2>"$d/remote.log" &
remote_pid=$!
swt_on_exit 'kill "$remote_pid"'
for ((i = 0; i < 100; i++)); do
    [[ -s $d/remote.pid ]] && break
    kill -0 "$remote_pid" 2>/dev/null ||
        swt_fail "nbdkit memory did not start: $(cat "$d/remote.log")"
    sleep 0.1
done
[[ -s $d/remote.pid ]] || swt_fail "nbdkit memory did not start in 10 s"

# The partition of tier 1 becomes a 16 MiB file, the file of tier 2 is
# made here with 32 MiB, and the remote URI points at the server above.
truncate -s 16M "$d/fast"
sed -e "s|^backend=/dev/disk/by-partlabel/swaptier-fast\$|backend=$d/fast|" \
    -e "s|^backend=/var/lib/swaptier/|backend=$d/|" \
    -e 's|^capacity=8G$|capacity=32M|' \
    -e "s|^backend=nbds://.*|backend=nbd+unix:///?socket=$d/remote.sock|" \
    "$example" > "$d/swaptier.conf"
# Should the example change, the rewriting above must follow.
if grep -E '^(backend=(/dev/|/var/|nbds://)|capacity=8G)' "$d/swaptier.conf"
then
    swt_fail "lines of the example above were not rewritten for the test"
fi

# As swaptier.service runs it (but without locking memory, which an
# ordinary user may not do).
log=$d/nbdkit.log
size=$(timeout 60 nbdkit -U - --run 'nbdinfo --size "$uri"' "$swt_plugin" \
           config="$d/swaptier.conf" control="$d/ctl.sock" mlock=off \
           2>"$log") || {
    cat "$log" >&2
    swt_fail "the example configuration was refused"
}
swt_show_counters "$log"

# Slots: each backend less its header slot, 4095 + 8191 + 16383; 1% of
# that is less than the 512 kept for the requests in flight.
expected=$(( (4095 + 8191 + 16383 - 512) * 4096 ))
[[ $size -eq $expected ]] ||
    swt_fail "export size $size, expected $expected"
[[ $(swt_nbackends "$log") -eq 3 ]] ||
    swt_fail "$(swt_nbackends "$log") backends, expected 3"
[[ $(swt_priority 0 "$log") -eq 10 && $(swt_priority 1 "$log") -eq 5 &&
   $(swt_priority 2 "$log") -eq 1 ]] ||
    swt_fail "the priorities are not 10, 5 and 1"
grep -q "^swaptier: backend 2 nbd+unix:///?socket=$d/remote.sock " "$log" ||
    swt_fail "backend 2 is not the remote server"
echo "ok: example configuration, export size $size"

echo "PASS"
