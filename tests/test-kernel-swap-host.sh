#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real Linux kernel swaps through swaptier served from the host: swaptier
# runs here with two file tiers of different priority, and a Debian kernel
# under QEMU (TCG, 384 MiB) uses it as its swap disk through QEMU's own NBD
# client (virtio, discard on).  A program in the guest fills twice the
# guest's memory with per-page patterns and verifies every page in random
# order three times.  Prints the guest's swap counters and the tiers' use.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/vm-functions.sh"

swt_setup
swt_require qemu-system-x86_64 busybox
vm_kernel_version >/dev/null

cat > "$swt_tmpdir/guest.sh" <<'GUEST'
mkswap /dev/vda || exit 1
swapon -d /dev/vda || swapon /dev/vda || exit 1
cat /proc/swaps
swap-workload 768 3 4
GUEST
vm_build_initramfs "$swt_tmpdir/initrd.gz" "$swt_tmpdir/guest.sh"

swt_start backend="$swt_tmpdir/fast" capacity=128M priority=10 \
          backend="$swt_tmpdir/slow" capacity=1G priority=5
vm_run "$swt_tmpdir/initrd.gz" 384 \
  -drive "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$swt_sock,if=virtio,cache=none,discard=unmap"
swt_stop

pswpout=$(vm_vmstat pswpout)
pswpin=$(vm_vmstat pswpin)
echo "guest swapped out $pswpout pages and in $pswpin pages"
swt_show_counters
# The workload cannot fit in 384 MiB: most of it must have gone to swap
# and come back.
[[ $pswpout -gt 100000 && $pswpin -gt 100000 ]] ||
  swt_fail "too little swapping (out $pswpout, in $pswpin pages)"
[[ $(swt_stat 0 writes) -gt 0 && $(swt_stat 1 writes) -gt 0 ]] ||
  swt_fail "both tiers should have received pages (the fast one fills up)"
swt_check_counters
