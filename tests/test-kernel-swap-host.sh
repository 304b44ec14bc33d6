#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real Linux kernel swaps through swaptier served from the host: swaptier
# runs here with two file tiers of different priority, and a Debian kernel
# under QEMU (TCG) uses it as its swap disk through QEMU's own NBD client
# (virtio, discard on).
#
# 1. In a 384 MiB guest, a program fills twice the guest's memory with
#    per-page patterns and verifies every page in random order three
#    times.  Prints the guest's swap counters and the tiers' use.
#
# 2. Demotion and promotion (issue 13), twice: the defaults (demote=on,
#    promote=off) and demote=off (the behaviour before).  A fast
#    tier (HC_FAST, priority 10) and a slow one (1 GiB, priority 5); in
#    the guest, swap-workload --hot-cold runs in a memory cgroup
#    (memory.max HC_LIMIT): a cold allocation larger than the fast tier
#    is filled first and left alone, then a smaller hot set is filled (at
#    HC_FILL_RATE MiB/s) and visited at random for HC_SECONDS by
#    HC_THREADS threads, each visit checking the page and every 4th
#    rewriting it.  The hot set is larger than the cgroup's memory, so it
#    keeps swapping out and in; every hot page's swap copy fits in the fast
#    tier with room, once the cold pages have left it.  The swap device is
#    less than half full, so the kernel keeps a page's swap slot when it
#    reads it back, and writes it again only if the page was dirtied: all
#    of the hot set's copies stay live (not just the pages out right now).
#    The host samples the control socket's counters when the guest prints
#    the hot phase's first and last lines (the workload then pauses 2 s)
#    and reports, for the hot phase: the share of the client's reads (the
#    swap-ins) served by the fast tier, the slow tier's rereads among its
#    reads (pages read again since their last write: what promotion moves
#    up), the pages demoted and promoted (per tier, counted on the tier
#    the copy left, and from the demote line; also over the whole run),
#    the pages the client wrote to the slow tier, and the guest's swap
#    counters.  A backend's client reads are its reads less the copies
#    the demoter moved off it, down or up (the mover reads each once);
#    they add up to the guest's pswpin.
#
#    The hot fill is paced at 16 MiB/s in both runs: unpaced, the hot
#    set's swap-outs come faster than pages age (a page is cold after a
#    second untouched), some thousands of hot pages overflow to the slow
#    tier, and the share with the defaults varied from 0.90 to 0.99 over
#    runs (promotion moves a few thousand of them back up, but rewrites
#    in the fast tier do much the same without it): too close to 0.9 for
#    a check.
#
# Checks: every page verified in each run, counters consistent
# (swt_check_counters), enough swapping, and with the defaults at least
# HC_MIN_SHARE (0.9) of the hot phase's swap-ins served by the fast tier.
# Sizes and times can be changed through the HC_* variables below; for
# runs by hand: HC_ONLY=1 skips part 1; HC_MODES picks the runs, among
# "on" (the defaults), "promote" (demote=on promote=on) and "off"
# (demote=off promote=off), e.g. HC_MODES="on promote off"; HC_FILL_RATE=0
# (or HC_FILL_RATE_on=0 for one mode) lifts the fill limit; HC_TRACE=1
# prints the fast tier's use and the demoter's state every second (it
# costs the guest some speed).
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/vm-functions.sh"

swt_setup
swt_require qemu-system-x86_64 busybox
[[ -x /usr/bin/python3 ]] || { echo "SKIP: no /usr/bin/python3" >&2; exit 77; }
vm_kernel_version >/dev/null

drive () {
  echo "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$swt_sock,if=virtio,cache=none,discard=unmap"
}

# --- 1. Twice the guest's memory, verified three times ------------------------

if [[ ${HC_ONLY:-0} != 1 ]]; then
cat > "$swt_tmpdir/guest.sh" <<'GUEST'
mkswap /dev/vda || exit 1
swapon -d /dev/vda || swapon /dev/vda || exit 1
cat /proc/swaps
swap-workload 768 3 4
GUEST
vm_build_initramfs "$swt_tmpdir/initrd.gz" "$swt_tmpdir/guest.sh"

swt_start backend="$swt_tmpdir/fast" capacity=128M priority=10 \
          backend="$swt_tmpdir/slow" capacity=1G priority=5
vm_run "$swt_tmpdir/initrd.gz" 384 -drive "$(drive)"
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
fi

# --- 2. A cold allocation and a hot loop, with and without demotion -----------

HC_GUEST=${HC_GUEST:-256}       # guest memory, MiB
HC_LIMIT=${HC_LIMIT:-96M}       # the workload's memory.max
HC_FAST=${HC_FAST:-192M}        # the fast tier's capacity
HC_COLD=${HC_COLD:-224}         # MiB, more than the fast tier
HC_HOT=${HC_HOT:-128}           # MiB, above HC_LIMIT, below the fast tier
HC_SECONDS=${HC_SECONDS:-45}
HC_THREADS=${HC_THREADS:-4}
# MiB a second at most for the hot set's fill, so that its swap-outs
# stay below what the demoter moves down (demote-rate=, 64M by default,
# and it yields to client requests, and only pages a second old go): a
# faster burst overflows the fast tier while it is still full of cold
# pages, and the hot pages written then land on the slow tier, until
# promoted or rewritten (0 = no limit).
# HC_FILL_RATE_<mode> (e.g. HC_FILL_RATE_on=0) sets it for one mode.
HC_FILL_RATE=${HC_FILL_RATE:-16}
HC_MIN_SHARE=${HC_MIN_SHARE:-0.9}
# HC_DEMOTE_KEYS=0: leave the demote and promote keys out in every run
# (a plugin that does not know them yet).
HC_DEMOTE_KEYS=${HC_DEMOTE_KEYS:-1}

# The modes (HC_MODES, "on off" by default): on = demote=on promote=off
# (the defaults: no key given), promote = demote=on promote=on, off =
# demote=off promote=off (the behaviour before issue 13).
hc_keys () {
  [[ $HC_DEMOTE_KEYS == 1 ]] || return 0
  case $1 in
    on) ;;
    promote) echo promote=on ;;
    off) echo demote=off promote=off ;;
  esac
}
hc_label () {
  case $1 in
    on) echo "demote=on promote=off" ;;
    promote) echo "demote=on promote=on" ;;
    off) echo "demote=off promote=off" ;;
  esac
}
hc_rate () {
  local v=HC_FILL_RATE_$1
  echo "${!v:-$HC_FILL_RATE}"
}

# The initramfs of the hot/cold guest whose hot fill goes at $1 MiB/s at
# most (0: no limit), built once per rate; prints its path.
hc_initramfs () {
  local rate=$1 out=$swt_tmpdir/initrd-hc-$1.gz
  [[ -f $out ]] && { echo "$out"; return; }
  cat > "$swt_tmpdir/guest-hc.sh" <<GUEST
mkswap /dev/vda || exit 1
swapon -d /dev/vda || swapon /dev/vda || exit 1
cat /proc/swaps
grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo
mount -t cgroup2 none /sys/fs/cgroup || exit 1
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/workload
echo $HC_LIMIT > /sys/fs/cgroup/workload/memory.max
sh -c 'echo \$\$ > /sys/fs/cgroup/workload/cgroup.procs &&
       exec swap-workload --hot-cold $HC_COLD $HC_HOT $HC_SECONDS $HC_THREADS $rate'
r=\$?
echo "VM: swap-workload exited with status \$r"
exit \$r
GUEST
  vm_build_initramfs "$out" "$swt_tmpdir/guest-hc.sh" >&2
  echo "$out"
}

# The raw reply of the control command $1 (list or stats), saved to $2.
hc_ctl () {
  vm_ctl "$ctl_sock" "$1" > "$2" || vm_fail "control command $1 failed"
}

# Wait (up to $2 s) for the guest to print a line with the fixed string $1.
hc_wait_line () {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (( $(vm_log_count "$1") > 0 )) && return 0
    vm_running || vm_fail "the guest ended before printing '$1'"
    sleep 0.1
  done
  vm_fail "the guest did not print '$1' within $2 s"
}

# Field $3 of backend $2 (or of the total line with "total") in the saved
# reply $1; 0 if the reply has no such field (a plugin before issue 13).
hc_num () {
  local v
  if [[ $2 == total ]]; then
    v=$(vm_field total - "$3" < "$1")
  else
    v=$(vm_field backend "$2" "$3" < "$1")
  fi
  echo "${v:-0}"
}
hc_has () {
  [[ -n $(vm_field backend 0 "$2" < "$1") ]]
}

# One run: $1 is a mode (hc_keys).  Leaves its figures in hc_<name>_$1.
hc_run () {
  local mode=$1 t0 d keys b initrd rate
  keys=$(hc_keys "$mode")
  rate=$(hc_rate "$mode")
  initrd=$(hc_initramfs "$rate")
  ctl_sock=$swt_tmpdir/control-$mode.sock
  rm -f "$swt_tmpdir/fast-$mode" "$swt_tmpdir/slow-$mode"
  echo "=== hot/cold run, $(hc_label "$mode") (keys: ${keys:-none}):" \
       "swaptier fast $HC_FAST + slow 1G; guest $HC_GUEST MiB, workload" \
       "memory.max $HC_LIMIT, cold $HC_COLD MiB, hot $HC_HOT MiB for" \
       "$HC_SECONDS s, hot fill limit $rate MiB/s (0: none)"
  t0=$SECONDS
  # shellcheck disable=SC2086 # keys: words
  swt_start control="$ctl_sock" $keys \
            backend="$swt_tmpdir/fast-$mode" capacity="$HC_FAST" priority=10 \
            backend="$swt_tmpdir/slow-$mode" capacity=1G priority=5
  vm_start "$initrd" "$HC_GUEST" -drive "$(drive)"
  local tracer=
  if [[ ${HC_TRACE:-0} == 1 ]]; then
    # Every second: the time, the fast tier's use and the demoter's state.
    ( while sleep 1; do
        l=$(vm_ctl "$ctl_sock" list 2>/dev/null) || continue
        echo "t=$((SECONDS - t0)) fast used=$(vm_field backend 0 used <<<"$l")" \
             "demoted=$(vm_field backend 0 demoted <<<"$l")" \
             "reads=$(vm_field backend 0 reads <<<"$l")" \
             "slow reads=$(vm_field backend 1 reads <<<"$l")" \
             "promoted=$(vm_field backend 1 promoted <<<"$l")" \
             "writes=$(vm_field backend 1 writes <<<"$l")" \
             "$(grep '^demote ' <<<"$l")" \
             "console: $(tr -d '\r' < "$swt_tmpdir/vm.log" | grep '^swap-workload' | tail -n 1)"
      done ) > "$swt_tmpdir/trace-$mode" 2>&1 &
    tracer=$!
  fi
  hc_wait_line "swap-workload: hot phase start" 900
  hc_ctl stats "$swt_tmpdir/stats0-$mode"
  hc_ctl list "$swt_tmpdir/list0-$mode"
  echo "--- $(hc_label "$mode"): at the hot phase's start (at $((SECONDS - t0)) s)"
  grep -E '^(backend|demote) ' "$swt_tmpdir/list0-$mode"
  hc_wait_line "swap-workload: hot phase end" $((HC_SECONDS + 300))
  hc_ctl stats "$swt_tmpdir/stats1-$mode"
  hc_ctl list "$swt_tmpdir/list1-$mode"
  echo "--- $(hc_label "$mode"): at the hot phase's end (at $((SECONDS - t0)) s)"
  grep -E '^(backend|demote) ' "$swt_tmpdir/list1-$mode"
  vm_wait || swt_fail "$(hc_label "$mode"): the guest's workload failed"
  if [[ -n $tracer ]]; then
    kill "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
    echo "--- $(hc_label "$mode"): trace"
    cat "$swt_tmpdir/trace-$mode"
  fi
  cp "$swt_tmpdir/vm.log" "$swt_tmpdir/vm-$mode.log"
  hc_ctl list "$swt_tmpdir/list2-$mode"
  swt_stop
  swt_show_counters
  swt_check_counters
  (( $(vm_log_count "swap-workload: PASS hot-cold") == 1 )) ||
    swt_fail "$(hc_label "$mode"): the workload did not verify every page"
  eval "hc_time_$mode=$((SECONDS - t0))"
  # Pages read, demoted and promoted per backend in the hot phase
  # (demoted and promoted count on the backend the copy moved off); a
  # backend's client reads are its reads less the ones that moved pages
  # down or up (the mover reads each page once).
  for b in 0 1; do
    local r0 r1 d0 d1 q0 q1 p0 p1
    r0=$(hc_num "$swt_tmpdir/stats0-$mode" $b read_bytes)
    r1=$(hc_num "$swt_tmpdir/stats1-$mode" $b read_bytes)
    d0=$(hc_num "$swt_tmpdir/list0-$mode" $b demoted)
    d1=$(hc_num "$swt_tmpdir/list1-$mode" $b demoted)
    p0=$(hc_num "$swt_tmpdir/list0-$mode" $b promoted)
    p1=$(hc_num "$swt_tmpdir/list1-$mode" $b promoted)
    q0=$(hc_num "$swt_tmpdir/list0-$mode" $b rereads)
    q1=$(hc_num "$swt_tmpdir/list1-$mode" $b rereads)
    eval "hc_demoted${b}_$mode=$((d1 - d0))"
    eval "hc_promoted${b}_$mode=$((p1 - p0))"
    eval "hc_client${b}_$mode=$(( (r1 - r0) / 4096 - (d1 - d0) - (p1 - p0) ))"
    eval "hc_rereads${b}_$mode=$((q1 - q0))"
  done
  # The demote line's counts: in the hot phase and in all.
  local l0 l1 l2
  l0=$(vm_field demote - promoted < "$swt_tmpdir/list0-$mode")
  l1=$(vm_field demote - promoted < "$swt_tmpdir/list1-$mode")
  l2=$(vm_field demote - promoted < "$swt_tmpdir/list2-$mode")
  eval "hc_dl_promoted_$mode=$(( ${l1:-0} - ${l0:-0} ))"
  eval "hc_dl_promoted_all_$mode=${l2:-0}"
  l0=$(vm_field demote - demoted < "$swt_tmpdir/list0-$mode")
  l1=$(vm_field demote - demoted < "$swt_tmpdir/list1-$mode")
  eval "hc_dl_demoted_$mode=$(( ${l1:-0} - ${l0:-0} ))"
  # Pages the client wrote to the slow tier (its writes less the copies
  # moved down to it) before the hot phase and in it: what did not find
  # room on the fast tier.
  local w0 w1 dm0 dm1
  w0=$(hc_num "$swt_tmpdir/stats0-$mode" 1 write_bytes)
  w1=$(hc_num "$swt_tmpdir/stats1-$mode" 1 write_bytes)
  dm0=$(hc_num "$swt_tmpdir/list0-$mode" total demoted)
  dm1=$(hc_num "$swt_tmpdir/list1-$mode" total demoted)
  eval "hc_slowwr0_$mode=$((w0 / 4096 - dm0))"
  eval "hc_slowwr1_$mode=$(( (w1 - w0) / 4096 - (dm1 - dm0) ))"
  d=$(tr -d '\r' < "$swt_tmpdir/vm-$mode.log" |
      sed -n 's/^swap-workload: hot phase end: .*(+\([0-9]*\) +\([0-9]*\)).*/\1 \2/p')
  eval "hc_pswp_$mode=\"${d:-? ?}\""
  eval "hc_line_$mode=\"\$(tr -d '\r' < \"\$swt_tmpdir/vm-\$mode.log\" |
      grep '^swap-workload: hot phase end')\""
  eval "hc_total_demoted_$mode=$(hc_num "$swt_tmpdir/list2-$mode" total demoted)"
  eval "hc_rate_$mode=$rate"
}

for mode in ${HC_MODES:-on off}; do
  [[ $mode =~ ^(on|promote|off)$ ]] ||
    swt_fail "HC_MODES: unknown mode $mode (on, promote or off)"
done
vm_watch_hang
for mode in ${HC_MODES:-on off}; do
  hc_run "$mode"
done

# The figures, in one block.
hc_share () {   # client reads of the fast tier / all client reads
  awk -v f="$1" -v s="$2" 'BEGIN { printf "%.3f", (f + s) ? f / (f + s) : 0 }'
}
hc_ratio () {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b) printf "%.3f", a / b; else print "-" }'
}
echo "=== hot/cold figures (hot phase: between the workload's start and end lines)"
for mode in ${HC_MODES:-on off}; do
  eval "f=\$hc_client0_$mode s=\$hc_client1_$mode"
  eval "q=\$hc_rereads1_$mode dm=\$hc_demoted0_$mode"
  eval "tdm=\$hc_total_demoted_$mode t=\$hc_time_$mode p=\$hc_pswp_$mode"
  eval "pr0=\$hc_promoted0_$mode pr1=\$hc_promoted1_$mode"
  eval "dlp=\$hc_dl_promoted_$mode dlpa=\$hc_dl_promoted_all_$mode"
  eval "dld=\$hc_dl_demoted_$mode r=\$hc_rate_$mode"
  eval "line=\$hc_line_$mode"
  read -r pin pout <<<"$p"
  share=$(hc_share "$f" "$s")
  eval "hc_share_$mode=$share"
  printf '%s, fill limit %s MiB/s: fast share of swap-ins %s' \
         "$(hc_label "$mode")" "$r" "$share"
  printf ' (fast %s, slow %s pages); run %s s\n' "$f" "$s" "$t"
  printf '    slow rereads %s/%s = %s; guest swap-ins %s, swap-outs %s' \
         "$q" "$s" "$(hc_ratio "$q" "$s")" "$pin" "$pout"
  printf ' in the hot phase\n'
  printf '    hot phase: demoted %s (demote line %s), promoted from fast %s,' \
         "$dm" "$dld" "$pr0"
  printf ' from slow %s (demote line %s); in all: demoted %s, promoted %s\n' \
         "$pr1" "$dlp" "$tdm" "$dlpa"
  eval "w0=\$hc_slowwr0_$mode w1=\$hc_slowwr1_$mode"
  echo "    pages written by the client to the slow tier: $w0 before the" \
       "hot phase, $w1 in it"
  echo "    ${line#swap-workload: }"
done
if [[ $HC_DEMOTE_KEYS != 1 ]]; then
  echo "(HC_DEMOTE_KEYS=0: no demote or promote key given, every run uses the plugin's defaults)"
fi

for mode in ${HC_MODES:-on off}; do
  eval "p=\$hc_pswp_$mode"
  read -r pin pout <<<"$p"
  [[ $pin =~ ^[0-9]+$ && $pin -gt 5000 && $pout -gt 5000 ]] ||
    swt_fail "$(hc_label "$mode"): the hot set did not keep swapping" \
             "(in $pin, out $pout pages in the hot phase)"
done
if [[ $HC_DEMOTE_KEYS == 1 && -n ${hc_share_on:-} ]]; then
  awk -v s="$hc_share_on" -v m="$HC_MIN_SHARE" 'BEGIN { exit !(s >= m) }' ||
    swt_fail "$(hc_label on): only $hc_share_on of the hot phase's swap-ins were" \
             "served by the fast tier (at least $HC_MIN_SHARE expected)"
fi
echo "PASS"
