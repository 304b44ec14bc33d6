#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Local backends are never written over what they hold, and swaptier's
# own are taken back:
#   1. a file with an ext4 file system is refused, naming the backend and
#      what was found, and accepted with force=true; so is a file with a
#      swap signature (mkswap) or a partition table;
#   2. slot 0 of a backend holds swaptier's header, claimed while the
#      server runs and released when it stops;
#   3. a swaptier backend file is accepted again after a restart without
#      force=true, even after a kernel-style swap header (mkswap's first
#      page) was written through swaptier at device offset 0, and after
#      the server was killed without releasing its claim;
#   4. with a loop device: a device that another process holds open with
#      O_EXCL, or that is mounted, is refused with EBUSY; an unmounted
#      one with ext4 is refused for its signature, accepted with force.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require nbdinfo mkfs.ext4 mkswap blkid timeout truncate
swt_require_python_nbd
d=$swt_tmpdir

# Print "magic flags pid" of the header page in slot 0 of file $1
# ("none" if slot 0 is not a swaptier header).
lb_header ()
{
    "$swt_python" - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    page = f.read(4096)
magic = b"swaptier backend header v1\n"
if page[:len(magic)] != magic or any(page[len(magic):32]):
    print("none")
else:
    pid, flags = struct.unpack_from("<II", page, 80)
    print("header", flags, pid)
EOF
}

# --- 1. Signatures --------------------------------------------------------
truncate -s 16M "$d/ext4"
mkfs.ext4 -q -F "$d/ext4"
swt_expect_error "backend $d/ext4: found ext4 file system; refused" \
    backend="$d/ext4"
swt_expect_error "give force=true" backend="$d/ext4"
# capacity= on an existing file does not skip the probe.
swt_expect_error "found ext4 file system" backend="$d/ext4" capacity=16M
[[ $(swt_config_size backend="$d/ext4" force=true) -gt 0 ]]
[[ $(lb_header "$d/ext4") == "header 1 "* ]] ||
    swt_fail "force=true did not make $d/ext4 a released swaptier backend"
# Now it is swaptier's own: accepted without force.
[[ $(swt_config_size backend="$d/ext4") -gt 0 ]]
echo "ok: ext4 refused, accepted with force=true, then swaptier's own"

truncate -s 16M "$d/swapfile"
mkswap "$d/swapfile" >/dev/null 2>&1
swt_expect_error "backend $d/swapfile: found swap signature" \
    backend="$d/swapfile"
swt_expect_error "force=" backend="$d/swapfile" force=maybe

# A DOS partition table (the MBR's boot signature and one entry).
truncate -s 16M "$d/disk"
"$swt_python" - "$d/disk" <<'EOF'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(446)
    f.write(struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0",
                        2048, 16 * 2048 - 2048))
    f.seek(510)
    f.write(b"\x55\xaa")
EOF
swt_expect_error "found dos partition table" backend="$d/disk"
# A file of zeroes holds nothing: accepted.
truncate -s 16M "$d/zeroes"
[[ $(swt_config_size backend="$d/zeroes") -gt 0 ]]
echo "ok: swap signature and partition table refused, zeroes accepted"

# --- 2, 3. The header, and restarts ---------------------------------------
# In clear (encrypt=off): the test looks for what swaptier wrote in the
# file itself.
swt_start encrypt=off backend="$d/own" capacity=16M
read -r what flags pid <<<"$(lb_header "$d/own")"
[[ $what == header && $flags -eq 0 && $pid -eq $swt_pid ]] ||
    swt_fail "slot 0 of a running backend: $what $flags $pid, expected" \
             "a claim of pid $swt_pid"
# The first page of a swap area as mkswap writes it (SWAPSPACE2 at the
# end of page 0), written through swaptier at device offset 0, and in the
# next 15 pages an ISO 9660 volume descriptor, as a guest's swapped out
# memory may hold: one lands in the file at 32 KiB, where libblkid finds
# an iso9660 file system (checked below), so only the header in slot 0
# tells that the file is swaptier's.
truncate -s 1M "$d/mkswap-image"
mkswap "$d/mkswap-image" >/dev/null 2>&1
"$swt_python" - "$swt_uri" "$d/mkswap-image" <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    first = f.read(4096)
assert first[4086:] == b"SWAPSPACE2", first[4086:]
h.pwrite(first, 0)
descriptor = b"\x01CD001\x01".ljust(4096, b"\0")
for page in range(1, 16):
    h.pwrite(descriptor, page * 4096)
h.flush()
assert h.pread(4096, 0) == first
h.shutdown()
EOF
swt_stop
[[ $(lb_header "$d/own") == "header 1 $pid" ]] ||
    swt_fail "slot 0 after a clean stop: $(lb_header "$d/own")," \
             "expected the released claim of pid $pid"
blkid -p "$d/own" | grep -q 'TYPE="iso9660"' ||
    swt_fail "libblkid finds no signature in $d/own: the restart below" \
             "would not need the header"
swt_start backend="$d/own"
swt_stop
echo "ok: restart accepted after a swap header was written through swaptier"

# Killed: the claim stays in slot 0, unreleased, but its owner is gone.
swt_start backend="$d/own" capacity=16M
kill -KILL "$swt_pid"
wait "$swt_pid" 2>/dev/null || true
swt_pid=
[[ $(lb_header "$d/own") == "header 0 "* ]] ||
    swt_fail "slot 0 after SIGKILL: $(lb_header "$d/own")"
[[ $(swt_config_size backend="$d/own") -gt 0 ]]
echo "ok: restart accepted after the server was killed"

# --- 4. Block devices (a loop device, if one can be made) ----------------
if ! command -v losetup >/dev/null 2>&1 ||
   ! truncate -s 16M "$d/loopfile" ||
   ! loopdev=$(losetup -f --show "$d/loopfile" 2>/dev/null); then
    echo "note: no loop device (needs losetup and root); skipped the" \
         "block device cases"
    echo "PASS"
    exit 0
fi
holder=
mnt=
swt_on_exit '[[ -z $holder ]] || kill "$holder"'
swt_on_exit '[[ -z $mnt ]] || umount "$mnt"'
swt_on_exit '[[ -z $loopdev ]] || losetup -d "$loopdev"'

# Held open with O_EXCL by another process, as a mounted file system or
# a device mapper target holds it.
"$swt_python" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
open(sys.argv[2], "w").close()
time.sleep(120)' "$loopdev" "$d/held" &
holder=$!
for ((i = 0; i < 100; i++)); do
    [[ -e $d/held ]] && break
    sleep 0.1
done
[[ -e $d/held ]] || swt_fail "the O_EXCL holder did not start"
swt_expect_error \
    "$loopdev: in use (mounted, or a partition or holder of one in use)" \
    backend="$loopdev"
swt_expect_error "in use (mounted" backend="$loopdev" force=true
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=
[[ $(swt_config_size backend="$loopdev") -gt 0 ]]
echo "ok: a loop device held with O_EXCL is refused, then accepted"

mkfs.ext4 -q -F "$loopdev"
swt_expect_error "backend $loopdev: found ext4 file system" \
    backend="$loopdev"
if mkdir "$d/mnt" && mount "$loopdev" "$d/mnt" 2>/dev/null; then
    mnt=$d/mnt
    swt_expect_error "$loopdev: in use (mounted" backend="$loopdev"
    swt_expect_error "$loopdev: in use (mounted" \
        backend="$loopdev" force=true
    umount "$mnt"
    mnt=
    echo "ok: a mounted loop device is refused, even with force=true"
else
    echo "note: mount does not work here; skipped the mounted case"
fi
[[ $(swt_config_size backend="$loopdev" force=true) -gt 0 ]]
[[ $(swt_config_size backend="$loopdev") -gt 0 ]]
echo "ok: ext4 on a loop device refused, accepted with force=true"
losetup -d "$loopdev"
loopdev=

echo "PASS"
