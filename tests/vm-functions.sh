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

# --- A guest running while the test acts on the host -------------------------

# vm_run in the background: the same arguments, and the same checks when
# vm_wait collects it (in the test's own shell, not in a subshell).  Sets vm_pid.  Until then vm_running tells whether
# the guest still runs and vm_log_count reads its console.  A test that
# fails meanwhile stops QEMU at exit (by the pid QEMU wrote).
vm_start () {
  rm -f "$swt_tmpdir/qemu.pid" "$swt_tmpdir/vm.log"
  touch "$swt_tmpdir/vm.log"
  vm_run "$@" -pidfile "$swt_tmpdir/qemu.pid" &
  vm_pid=$!
  swt_on_exit vm_stop_qemu
}

# At exit: stop a QEMU left running by a failed test.
vm_stop_qemu () {
  local pid
  pid=$(cat "$swt_tmpdir/qemu.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  swt_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
}

# 0 while the guest started by vm_start runs.
vm_running () {
  kill -0 "$vm_pid" 2>/dev/null
}

# Wait for the guest started by vm_start; returns 1 where vm_run fails
# the test (the guest did not finish, or its test failed), after its
# message.
vm_wait () {
  local r=0
  wait "$vm_pid" || r=$?
  vm_pid=
  [[ $r -eq 0 ]]
}

# Number of lines of the guest's console so far with the fixed string $1.
vm_log_count () {
  tr -d '\r' < "$swt_tmpdir/vm.log" | grep -c -F -- "$1" || true
}

# --- The control socket, raw (control=, see swaptierctl(1) PROTOCOL) ---------

# Send the command line $2 to the control socket $1 and print the reply:
# its data lines, then its status line.  Returns 1 if the status is error.
vm_ctl () {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while True:
    lines = buf.split(b"\n")[:-1]
    status = [l for l in lines if l.split(b" ")[0] in (b"ok", b"error")]
    if status:
        break
    data = s.recv(65536)
    if not data:
        sys.exit("vm_ctl: connection closed before the status line")
    buf += data
sys.stdout.write(b"\n".join(lines).decode() + "\n")
sys.exit(1 if status[0].startswith(b"error") else 0)
PY
}

# Print field $3 of the record $1 (a line's first word: backend, total,
# repair, ...) read from stdin, the one with id=$2 or the first one if
# $2 is "-".  Prints nothing if there is no such record or field.
vm_field () {
  awk -v rec="$1" -v id="$2" -v f="$3" '
    $1 == rec && (id == "-" || $0 ~ (" id=" id "( |$)")) {
      for (i = 2; i <= NF; i++) {
        k = substr($i, 1, index($i, "=") - 1)
        if (k == f) { print substr($i, length(k) + 2); exit }
      }
      exit
    }'
}

# Fail the test (swt_fail) while a guest started by vm_start runs: stop
# QEMU first, so that its console does not end with the I/O errors of a
# swap device whose server the cleanup stops under it.
vm_fail () {
  vm_stop_qemu
  swt_fail "$@"
}
