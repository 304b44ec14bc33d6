# SPDX-License-Identifier: BSD-3-Clause
# swaptier: helpers for tests that boot a real Debian kernel under QEMU
# (TCG) and let it swap through swaptier.  Sourced after functions.sh.
#
# The guest is a busybox initramfs built here from Debian packages: the
# installed kernel (linux-image-amd64) and its virtio and nbd modules,
# busybox-static, the static swap-workload program and, for tests that run
# swaptier inside the guest, nbdkit, the plugin, nbd-client and the shared
# libraries they need.  The guest's /init runs the script given to
# vm_build_initramfs, then prints the swap counters and powers off.

# The newest installed kernel version, or exit 77 if there is none.
vm_kernel_version () {
  local v
  v=$(ls /lib/modules 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$v" ] || [ ! -r "/boot/vmlinuz-$v" ]; then
    echo "$0: SKIP: no kernel in /boot (install linux-image-amd64)"
    exit 77
  fi
  echo "$v"
}

# Copy program $2 and every shared library it needs into root $1.
vm_copy_program () {
  local root=$1 prog=$2 lib
  mkdir -p "$root$(dirname "$prog")"
  cp -L "$prog" "$root$prog"
  for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
    if [ ! -e "$root$lib" ]; then
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    fi
  done
}

# Build $1 (a gzip cpio initramfs) whose /init runs the shell script
# $2 after setting up /proc, /sys, /dev and the modules.  Remaining
# arguments are programs to copy in with their libraries.
vm_build_initramfs () {
  local out=$1 script=$2 ver root m
  shift 2
  ver=$(vm_kernel_version)
  root=$(mktemp -d "$swt_tmpdir/initramfs.XXXXXX")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,modules}
  cp /bin/busybox "$root/bin/busybox"
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
           virtio_pci virtio_blk nbd; do
    cp "$(find "/lib/modules/$ver" -name "$m.ko*" | head -n 1)" "$root/modules/"
  done
  cp "$(dirname "$swt_plugin")/tests/swap-workload" "$root/bin/"
  for m in "$@"; do
    vm_copy_program "$root" "$m"
  done
  cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
         virtio_pci virtio_blk; do
  insmod /modules/$m.ko* || echo "VM: insmod $m failed"
done
insmod /modules/nbd.ko* nbds_max=2 || echo "VM: insmod nbd failed"
echo 20 > /proc/sys/kernel/hung_task_timeout_secs
echo 1 > /proc/sys/kernel/sysrq
echo "VM: booted with $(grep MemTotal /proc/meminfo)"
if sh /test.sh; then echo "VM-RESULT: PASS"; else echo "VM-RESULT: FAIL"; fi
grep -E '^(pswpin|pswpout) ' /proc/vmstat | sed 's/^/VM-VMSTAT: /'
sync
poweroff -f
INIT
  chmod +x "$root/init"
  cp "$script" "$root/test.sh"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
  rm -rf "$root"
}

# Boot the kernel with initramfs $1 and memory $2 (MiB); further arguments
# go to QEMU (drives).  The console goes to $swt_tmpdir/vm.log and, as it
# comes, to stdout.  Fails (exit 1) if the guest does not power off
# within $VM_TIMEOUT seconds (default 1200): a hang is a failure.
vm_run () {
  local initrd=$1 mem=$2 ver r
  shift 2
  ver=$(vm_kernel_version)
  r=0
  timeout "${VM_TIMEOUT:-1200}" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m "$mem" \
    -kernel "/boot/vmlinuz-$ver" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 oops=panic loglevel=8 rootfstype=ramfs" \
    -nographic -no-reboot -nodefaults -serial stdio \
    -monitor "unix:$swt_tmpdir/monitor.sock,server,nowait" \
    "$@" </dev/null | tee "$swt_tmpdir/vm.log" || r=$?
  if [ "$r" -ne 0 ]; then
    echo "$0: FAIL: the guest did not finish (status $r; 124 is a timeout)"
    exit 1
  fi
  if ! grep -q '^VM-RESULT: PASS' "$swt_tmpdir/vm.log"; then
    echo "$0: FAIL: the guest's test failed"
    exit 1
  fi
}

# Send the QEMU monitor command $1 to the running guest (e.g.
# "sendkey alt-sysrq-w" to have its kernel list blocked tasks).
vm_monitor () {
  /usr/bin/python3 - "$swt_tmpdir/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
time.sleep(0.5)
s.close()
PY
}

# In the background: once the guest's kernel reports a task blocked for
# long, have it dump what every blocked task is waiting on, the memory
# state and all task stacks (sysrq w, m, t), once.  Evidence for a hang.
vm_watch_hang () {
  (
    while sleep 5; do
      if grep -q 'blocked for more than' "$swt_tmpdir/vm.log" 2>/dev/null; then
        for key in w m t; do
          vm_monitor "sendkey alt-sysrq-$key" || true
          sleep 5
        done
        break
      fi
    done
  ) &
  swt_on_exit "kill $! 2>/dev/null"
}

# The guest's swap counter $1 (pswpin or pswpout) from the last run.
vm_vmstat () {
  sed -n "s/^VM-VMSTAT: $1 \\([0-9]*\\).*/\\1/p" "$swt_tmpdir/vm.log" | tr -d '\r'
}
