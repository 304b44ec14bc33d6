#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# swaptier serves swap for the very kernel it runs on: inside a Debian
# kernel under QEMU (TCG, 384 MiB), nbdkit with swaptier has two tiers on
# virtio disks (128 MiB priority 10, 1 GiB priority 5), nbd-client -swap
# attaches it as /dev/nbd0 over a Unix socket, and the guest swaps on it.
# The workload of test-kernel-swap-host.sh (768 MiB, twice the guest's
# memory) must finish and verify every page, in two random passes rather
# than three: nbdkit itself runs emulated here, so each swap-in costs
# several times more.  A hang fails the test by timeout; the guest's
# kernel then also dumps its blocked tasks (vm_watch_hang).  The guest's
# root file system is ramfs, as a real root disk would be: never swapped.
#
# The workload runs in a memory cgroup (memory.max WORKLOAD_MEMORY_MAX,
# default 160M, as a systemd slice with MemoryMax= would place it), so
# that its reclaim swaps its own pages while the machine as a whole keeps
# free memory.  Without that limit the guest stalls as soon as memory is
# exhausted: nbdkit's reply to the kernel's NBD client must allocate a
# socket buffer, that allocation waits in reclaim, and reclaim waits for
# the swap writes waiting for the reply (kswapd and the workload blocked
# in mempool_alloc under __swap_writepage, nbdkit in direct reclaim under
# unix_stream_sendmsg).  Run with WORKLOAD_MEMORY_MAX=max to see it.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/vm-functions.sh"

swt_setup
swt_require qemu-system-x86_64 busybox nbd-client
vm_kernel_version >/dev/null
plugin=$(readlink -f "$swt_plugin")
WORKLOAD_MEMORY_MAX=${WORKLOAD_MEMORY_MAX:-160M}
nbdkit=$(command -v nbdkit)
nbdclient=$(command -v nbd-client)

cat > "$swt_tmpdir/guest.sh" <<GUEST
nbdkit -f --log=stderr --threads 4 -U /run/sw.sock -P /run/nbdkit.pid \\
  $plugin backend=/dev/vda priority=10 backend=/dev/vdb priority=5 \\
  2>/tmp/nbdkit.log &
i=0
while [ ! -S /run/sw.sock ]; do
  i=\$((i + 1))
  if [ \$i -gt 300 ]; then cat /tmp/nbdkit.log; exit 1; fi
  sleep 0.1
done
$nbdclient -u /run/sw.sock /dev/nbd0 -b 4096 -swap -N "" || exit 1
mkswap /dev/nbd0 || exit 1
swapon -d /dev/nbd0 || swapon /dev/nbd0 || exit 1
cat /proc/swaps
grep -E 'VmLck|VmRSS' /proc/\$(cat /run/nbdkit.pid)/status
# The workload runs in a memory cgroup that leaves the rest of the
# machine's memory to the kernel and nbdkit (see the header).
mount -t cgroup2 none /sys/fs/cgroup || exit 1
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/workload
echo ${WORKLOAD_MEMORY_MAX} > /sys/fs/cgroup/workload/memory.max
sh -c 'echo \$\$ > /sys/fs/cgroup/workload/cgroup.procs && exec swap-workload 768 2 4'
r=\$?
swapoff /dev/nbd0
$nbdclient -d /dev/nbd0
kill \$(cat /run/nbdkit.pid)
wait
cat /tmp/nbdkit.log
exit \$r
GUEST
vm_build_initramfs "$swt_tmpdir/initrd.gz" "$swt_tmpdir/guest.sh" \
  "$nbdkit" "$plugin" "$nbdclient"

truncate -s 128M "$swt_tmpdir/fast.img"
truncate -s 1G "$swt_tmpdir/slow.img"
vm_watch_hang
VM_TIMEOUT=${VM_TIMEOUT:-2700}
vm_run "$swt_tmpdir/initrd.gz" 384 \
  -drive "file=$swt_tmpdir/fast.img,format=raw,if=virtio,cache=none" \
  -drive "file=$swt_tmpdir/slow.img,format=raw,if=virtio,cache=none"

pswpout=$(vm_vmstat pswpout)
pswpin=$(vm_vmstat pswpin)
echo "guest swapped out $pswpout pages and in $pswpin pages"
grep '^swaptier: backend' "$swt_tmpdir/vm.log" | tr -d '\r'
[[ $pswpout -gt 100000 && $pswpin -gt 100000 ]] ||
  swt_fail "too little swapping (out $pswpout, in $pswpin pages)"
