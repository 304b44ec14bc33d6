#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The systemd units: systemd-analyze verify accepts them (keys, and the
# commands they run exist), swaptier-swap@.service (a template whose
# instance is the NBD device) is bound to and ordered after
# swaptier.service (so it stops first) with a bounded stop timeout, and
# every command line they run is shown, word for word, in
# swaptier-guide(7) for nbd0.  swaptier.service is hardened.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
# verify checks that the first command of each Exec*= kind exists.
swt_require systemd-analyze modprobe swapoff timeout
d=$swt_tmpdir
# The swap unit is a template: it is checked as its instance for nbd0.
units="swaptier.service swaptier-swap@.service"
config_src=${srcdir:-$(dirname "$0")}/../config
guide=${srcdir:-$(dirname "$0")}/../docs/swaptier-guide.pod

# --- systemd-analyze verify -----------------------------------------------
# On copies in a directory of their own, where each finds the other.  It
# only warns (exit 0) about unknown keys, so any message about the units
# fails the test too.
# swaptierctl is not installed: the copies run the one built.
ctl_bin=$(cd "$top_builddir/ctl" && pwd)/swaptierctl
for u in $units; do
    sed "s|[^ '=]*/bin/swaptierctl|$ctl_bin|g" "$top_builddir/config/$u" >"$d/$u"
done
rc=0
(cd "$d" && systemd-analyze verify --man=no swaptier.service \
     swaptier-swap@nbd0.service) >"$d/verify.log" 2>&1 || rc=$?
if [[ $rc -ne 0 ]] || grep -q 'swaptier' "$d/verify.log"; then
    cat "$d/verify.log" >&2
    swt_fail "systemd-analyze verify: exit status $rc"
fi
echo "ok: systemd-analyze verify $units"

# --- Lifetime -------------------------------------------------------------
# units_require UNIT LINE...: every LINE is a line of UNIT, whole.
units_require ()
{
    local unit=$1 line
    shift
    for line in "$@"; do
        grep -qx -- "$line" "$d/$unit" || swt_fail "$unit: no $line"
    done
}

# The swap must be off before nbdkit goes, and nothing restarts nbdkit.
for dep in BindsTo PartOf After; do
    grep -qx "$dep=swaptier.service" "$d/swaptier-swap@.service" ||
        swt_fail "swaptier-swap@.service lacks $dep=swaptier.service"
done
grep -qx 'Restart=no' "$d/swaptier.service" ||
    swt_fail "swaptier.service does not say Restart=no"
grep -qx 'DefaultInstance=nbd0' "$d/swaptier-swap@.service" ||
    swt_fail "swaptier-swap@.service has no default instance"
grep -q '^ExecStart=.*/dev/nbd' "$d/swaptier-swap@.service" &&
    swt_fail "swaptier-swap@.service names an NBD device itself"
grep -qE '^TimeoutStopSec=[0-9]+min$' "$d/swaptier-swap@.service" ||
    swt_fail "swaptier-swap@.service has no bounded TimeoutStopSec"
# nbdkit is stopped by swaptierctl stop (refused while the kernel holds
# an NBD connection), and systemd's signals do not stop it: SIGCONT, no
# SIGKILL, the run directory kept for the server that stays.
grep -qx "ExecStop=$ctl_bin -s /run/swaptier/control.sock stop" \
    "$d/swaptier.service" || swt_fail "swaptier.service is not stopped by swaptierctl stop"
units_require swaptier.service KillSignal=SIGCONT SendSIGKILL=no \
              SendSIGHUP=no RuntimeDirectoryPreserve=yes
grep -qE '^TimeoutStopSec=[0-9]+min$' "$d/swaptier.service" ||
    swt_fail "swaptier.service has no bounded TimeoutStopSec"
echo "ok: swaptier-swap@.service is bound to swaptier.service, a template"
echo "ok: swaptier.service is stopped by swaptierctl stop, not by a signal"

# --- The commands are those of the guide ----------------------------------
# Lines continued with a backslash are joined and blanks squeezed, in the
# guide and in the units, which the guide shows for --sysconfdir=/etc.
normalize ()
{
    sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$1" |
        sed -e 's/^[[:blank:]]*//' -e 's/[[:blank:]]\{1,\}/ /g'
}
normalize "$guide" > "$d/guide.txt"
n=0
for u in $units; do
    while IFS= read -r cmd; do
        grep -qxF -- "$cmd" "$d/guide.txt" ||
            swt_fail "$u runs '$cmd', which swaptier-guide.pod does not show"
        n=$((n + 1))
    done < <(normalize "$config_src/$u.in" |
             sed -n -e 's|@sysconfdir@|/etc|g' -e 's|@bindir@|/usr/bin|g' \
                    -e 's|%i|nbd0|g' \
                    -e 's/^Exec[A-Za-z]*=[-@:+!]*//p')
done
[[ $n -ge 8 ]] || swt_fail "only $n command lines found in the units"
echo "ok: the $n command lines of the units are in the guide"

# --- Hardening ------------------------------------------------------------
# systemd-analyze security rates swaptier.service at most 5.0; it keeps
# exactly the capabilities it needs; and what the sandbox must not take
# away is still there (no PrivateDevices: block devices; no ProtectProc:
# another instance's claim is judged by its process; no PrivateNetwork:
# remote backends).
exposure=$(systemd-analyze security --offline=yes "$d/swaptier.service" 2>&1 |
           sed -n 's/.*Overall exposure level for swaptier.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
[[ -n $exposure ]] || swt_fail "systemd-analyze security gave no exposure"
awk -v e="$exposure" 'BEGIN { exit !(e <= 5.0) }' ||
    swt_fail "swaptier.service exposure $exposure, above 5.0"
grep -qx 'CapabilityBoundingSet=CAP_IPC_LOCK CAP_SYS_RESOURCE' \
    "$d/swaptier.service" || swt_fail "swaptier.service capabilities"
units_require swaptier.service NoNewPrivileges=yes ProtectHome=yes \
              PrivateTmp=yes ProtectSystem=strict
grep -q '^RestrictAddressFamilies=.*AF_UNIX' "$d/swaptier.service" ||
    swt_fail "no address family list with AF_UNIX"
for key in PrivateDevices ProtectProc PrivateNetwork; do
    if grep -q "^$key=" "$d/swaptier.service"; then
        swt_fail "swaptier.service sets $key, which breaks a backend"
    fi
done
echo "ok: swaptier.service is hardened (exposure $exposure)"

echo "PASS"
