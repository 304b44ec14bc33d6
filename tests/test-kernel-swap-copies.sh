#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real Linux kernel keeps swapping when the remote tier under it dies
# (issue 12): swaptier runs here with copies=2 over a local file tier
# (priority 5) and a remote tier (priority 10: reads go there first), an
# nbdkit memory server on a Unix socket; a Debian kernel under QEMU (TCG,
# 256 MiB) swaps on it through QEMU's NBD client.  The guest's workload
# fills 512 MiB with per-page patterns and verifies every page in random
# order twice.  Once the fill is over and the first pass swaps in and out,
# the remote server is killed with SIGKILL, for good: every page must still
# come back intact from its local copy, and the guest must see no I/O
# error.  A fresh remote server is then added through the control socket,
# and the repairer must give every page its second copy again on it.
#
# Checks: the workload verified every page; more than 50 k pages swapped
# each way; the remote held pages and both reads and writes were going on
# when it was killed; no page lost (total, backends, repair); repair
# re-created copies, ends idle with degraded=0, and the active backends
# hold exactly copies x mapped slots.  Prints the guest's swap counters,
# the state at the kill and the repair figures.
#
# SWT_COPIES=1 runs the same with copies=1 (the default, so the key is
# left out): the pages on the killed remote are then lost, and the test
# must fail with the guest's read errors.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/vm-functions.sh"
source "$(dirname "$0")/remote-functions.sh"

swt_setup
swt_require qemu-system-x86_64 busybox
[[ -x /usr/bin/python3 ]] || { echo "SKIP: no /usr/bin/python3" >&2; exit 77; }
vm_kernel_version >/dev/null
swt_on_exit rmt_cleanup
ctl_tool=$(dirname "$swt_plugin")/ctl/swaptierctl
[[ -x $ctl_tool ]] || swt_fail "swaptierctl not found: $ctl_tool"
ctl_sock=$swt_tmpdir/control.sock
copies=${SWT_COPIES:-2}
[[ $copies =~ ^[12]$ ]] || swt_fail "SWT_COPIES must be 1 or 2"
copies_key=()
[[ $copies -eq 1 ]] || copies_key=(copies="$copies")
guest_mib=256 workload_mib=512 passes=2
npages=$((workload_mib * 256))
# The remote's failure is detected at once (its socket refuses), and it
# is given up grace= seconds later.
remote_keys=(timeout=5 grace=3)

# Print the title of a step, with the time since the start.
section () {
  echo "=== $* (at ${SECONDS} s)"
}

# The raw reply of the control command list, of stats.
ctl_raw () {
  vm_ctl "$ctl_sock" list || vm_fail "control command list failed"
}
ctl_stats () {
  vm_ctl "$ctl_sock" stats || vm_fail "control command stats failed"
}

# Wait up to $2 seconds for the shell condition $1 (a command for eval)
# while the guest runs; fails with message $3, or if the guest ends.
guest_wait_for () {
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    eval "$1" && return 0
    vm_running || vm_fail "the guest ended while waiting: $3"
    sleep 0.5
  done
  vm_fail "$3 (waited $2 s for: $1)"
}

# The conditions waited for: the workload's fill is over; 20000 reads
# more than at its end; backend 1 (the remote) is given up (health dead:
# its state need not say failed, no request may have met it since).
fill_done () {
  (( $(vm_log_count "swap-workload: filled $npages pages") > 0 ))
}
pass_swapping_in () {
  (( $(ctl_raw | vm_field total - reads) >= reads0 + 20000 ))
}
remote_given_up () {
  [[ $(ctl_raw | vm_field backend 1 health) == dead ]]
}

# Append the repair and total lines, with the time, to repair.log.
repair_sample () {
  local l
  l=$(ctl_raw)
  { echo "t=$SECONDS $(vm_field repair - state <<<"$l")" \
         "degraded=$(vm_field repair - degraded <<<"$l")" \
         "recreated=$(vm_field repair - recreated <<<"$l")" \
         "rate=$(vm_field repair - rate <<<"$l")" \
         "mapped=$(vm_field total - mapped <<<"$l")" \
         "lost=$(vm_field total - lost <<<"$l")"; } >> "$swt_tmpdir/repair.log"
}

cat > "$swt_tmpdir/guest.sh" <<GUEST
mkswap /dev/vda || exit 1
swapon -d /dev/vda || swapon /dev/vda || exit 1
cat /proc/swaps
swap-workload $workload_mib $passes 4
r=\$?
echo "VM: swap-workload exited with status \$r"
exit \$r
GUEST
vm_build_initramfs "$swt_tmpdir/initrd.gz" "$swt_tmpdir/guest.sh"

rmt_start remote memory 1G
# size=512M: the workload's pages out of memory fill more than half of
# that swap, so the guest frees a page's swap slot when it reads it back
# (vm_swap_full) and writes it out again when it evicts it: the passes
# swap out as much as in.
swt_start "${copies_key[@]}" control="$ctl_sock" size=512M \
          backend="$swt_tmpdir/local" capacity=1G priority=5 \
          backend="$(rmt_uri remote)" priority=10 "${remote_keys[@]}"
ctl_raw | grep -E '^(backend|total|repair) '

section "booting the guest: copies=$copies, $workload_mib MiB workload in $guest_mib MiB"
vm_watch_hang
vm_start "$swt_tmpdir/initrd.gz" "$guest_mib" \
  -drive "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$swt_sock,if=virtio,cache=none,discard=unmap"

guest_wait_for fill_done 900 "the workload did not finish its fill"
section "fill done: waiting for 20000 reads of the first pass"
reads0=$(ctl_raw | vm_field total - reads)
guest_wait_for pass_swapping_in 600 "the first pass did not swap in"

# The state just before the kill: swapping in and out (pages read and
# written by swaptier in the last second, from the byte counts), pages on
# the remote.
s1=$(ctl_stats)
sleep 1
s2=$(ctl_stats)
l2=$(ctl_raw)
kill_used=$(vm_field backend 1 used <<<"$l2")
kill_mapped=$(vm_field total - mapped <<<"$l2")
kill_reads=$(( ($(vm_field total - read_bytes <<<"$s2") -
                $(vm_field total - read_bytes <<<"$s1")) / 4096 ))
kill_writes=$(( ($(vm_field total - write_bytes <<<"$s2") -
                 $(vm_field total - write_bytes <<<"$s1")) / 4096 ))
kill_verified=$(vm_log_count "pages verified")
rmt_crash remote
section "killed the remote (SIGKILL): it held $kill_used pages" \
        "(${kill_mapped:-?} mapped); in its last second swaptier read" \
        "$kill_reads pages and wrote $kill_writes; passes verified so far:" \
        "$kill_verified"
repair_sample

guest_wait_for remote_given_up 60 "the killed remote was not given up"
section "the remote is given up; adding a fresh remote server"
repair_sample
rmt_start spare memory 1G
"$ctl_tool" -s "$ctl_sock" add "$(rmt_uri spare)" priority=10 "${remote_keys[@]}"
add_time=$SECONDS
while vm_running; do
  repair_sample
  sleep 2
done
guest_rc=0
vm_wait || guest_rc=$?
repair_sample
section "the guest ended"

echo "--- the guest's workload and I/O errors"
tr -d '\r' < "$swt_tmpdir/vm.log" |
  grep -E 'swap-workload: (PASS|FAIL|pass)|VM: swap-workload|Bus error|I/O error|(Read|Write)-error on swap' |
  head -n 20 || true
pswpout=$(vm_vmstat pswpout)
pswpin=$(vm_vmstat pswpin)
echo "guest swapped out ${pswpout:-?} pages and in ${pswpin:-?} pages"
echo "--- repair samples (t = seconds since the start)"
cat "$swt_tmpdir/repair.log"
ctl_raw | grep -E '^(backend|total|repair) '

[[ $guest_rc -eq 0 ]] ||
  swt_fail "the guest's workload failed after the remote was killed (copies=$copies)"
(( $(vm_log_count "swap-workload: PASS $npages pages x $passes passes") == 1 )) ||
  swt_fail "the workload did not verify every page"
(( $(vm_log_count "I/O error") + $(vm_log_count "-error on swap") == 0 )) ||
  swt_fail "the guest saw I/O errors"
[[ $pswpout -gt 50000 && $pswpin -gt 50000 ]] ||
  swt_fail "too little swapping (out $pswpout, in $pswpin pages)"
(( kill_used > 10000 )) ||
  swt_fail "the remote held only $kill_used pages when it was killed"
(( kill_reads > 0 && kill_writes > 0 )) ||
  swt_fail "the guest was not swapping both ways at the kill" \
           "($kill_reads pages read, $kill_writes written in its last second)"
(( kill_verified == 0 )) ||
  swt_fail "the remote was killed only after the first pass"

section "waiting for the re-creation of the copies"
for ((i = 0; i < 300; i++)); do
  repair_sample
  l=$(ctl_raw)
  [[ $(vm_field repair - state <<<"$l") == idle &&
     $(vm_field repair - degraded <<<"$l") == 0 ]] && break
  sleep 1
done
l=$(ctl_raw)
repair_line=$(grep '^repair ' <<<"$l")
total_line=$(grep '^total ' <<<"$l")
echo "$repair_line"
echo "$total_line"
[[ $(vm_field repair - state <<<"$l") == idle ]] ||
  swt_fail "repair still running 300 s after the guest ended"
[[ $(vm_field repair - degraded <<<"$l") == 0 &&
   $(vm_field total - degraded <<<"$l") == 0 ]] ||
  swt_fail "pages still degraded after repair"
[[ $(vm_field repair - lost <<<"$l") == 0 &&
   $(vm_field total - lost <<<"$l") == 0 ]] || swt_fail "pages were lost"
[[ $(vm_field total - copies <<<"$l") == "$copies" ]] ||
  swt_fail "total copies is not $copies"
recreated=$(vm_field repair - recreated <<<"$l")
mapped=$(vm_field total - mapped <<<"$l")
(( recreated > 0 )) || swt_fail "repair re-created no copy"
(( mapped > 50000 )) || swt_fail "only $mapped pages mapped"
active_used=$(awk '$1 == "backend" && / state=active / {
                 for (i = 2; i <= NF; i++) if ($i ~ /^used=/) s += substr($i, 6)
               } END { print s + 0 }' <<<"$l")
(( active_used == copies * mapped )) ||
  swt_fail "active backends hold $active_used slots, not $copies x $mapped"
(( $(vm_field backend 1 used <<<"$l") == 0 )) ||
  swt_fail "copies are left on the killed remote"
for id in 0 2; do
  [[ $(vm_field backend $id lost <<<"$l") == 0 &&
     $(vm_field backend $id errors <<<"$l") == 0 ]] ||
    swt_fail "backend $id has lost pages or errors"
done
# From the samples after the add: when degraded first read 0, its peak,
# and the peak rate (copies a second) against the limit.
read -r done_at peak_degraded peak_rate < <(awk -v since="$add_time" '
    { t = substr($1, 3) + 0; d = substr($3, 10) + 0; r = substr($5, 6) + 0 }
    t >= since && d > pd { pd = d }
    t >= since && r > pr { pr = r }
    t >= since && $2 == "idle" && d == 0 && done == "" { done = t }
    END { print (done == "" ? "-" : done), pd + 0, pr + 0 }' \
    "$swt_tmpdir/repair.log")
echo "repair: re-created $recreated copies (degraded peaked at" \
     "$peak_degraded); degraded=0 first seen" \
     "$([[ $done_at == - ]] && echo "after the guest ended" ||
        echo "$((done_at - add_time)) s after the fresh remote was added");" \
     "peak rate $peak_rate copies/s, limit" \
     "$(( $(vm_field repair - limit <<<"$l") / 4096 )) pages/s"

swt_stop
swt_show_counters
rmt_check_invariant5
echo "PASS: copies=$copies, $pswpout pages out, $pswpin in; remote killed" \
     "holding $kill_used pages; $recreated copies re-created; 0 lost"
