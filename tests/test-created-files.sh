#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A start that fails after capacity= created files removes exactly the
# files it created, never one that existed; so does a swaptierctl add
# that fails after creating its file.  Failures after the creation: the
# file cannot be allocated (capacity=1E), a later backend is refused,
# the export does not fit (size=), the control socket cannot be made,
# and (for add) the tier set has no room for another backend.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require timeout truncate sha256sum
d=$swt_tmpdir

# Fail unless none of the named files exists.
cf_gone ()
{
    local f
    for f in "$@"; do
        [[ ! -e $f ]] || swt_fail "$f was left behind by a failed start or add"
    done
}

# --- Starts ---------------------------------------------------------------
swt_expect_error "$d/huge: allocating" backend="$d/huge" capacity=1E
cf_gone "$d/huge"
swt_expect_error "$d/missing: no such file" \
    backend="$d/a" capacity=8M backend="$d/b" capacity=8M \
    backend="$d/missing"
cf_gone "$d/a" "$d/b"
swt_expect_error "is larger than the backends can hold" \
    backend="$d/a" capacity=8M size=1G
cf_gone "$d/a"
swt_expect_error "the file exists and is not a socket" \
    backend="$d/a" capacity=8M control="$d"
cf_gone "$d/a"

# Files that existed stay, with their size; only the new one goes.
truncate -s 8M "$d/old"
truncate -s 4M "$d/short"
swt_expect_error "$d/missing: no such file" \
    backend="$d/old" backend="$d/short" capacity=8M \
    backend="$d/new" capacity=8M backend="$d/missing"
cf_gone "$d/new"
[[ -f $d/old && -f $d/short ]] || swt_fail "a file that existed was removed"
echo "ok: a failed start removes exactly the files it created"

# The same file twice in one start: created by the first, refused as
# the second; the one file goes.
ln -s "$d/twice" "$d/twicelink"
swt_expect_error "is the same file as backend" \
    backend="$d/twice" capacity=8M backend="$d/twicelink"
cf_gone "$d/twice"

# --- swaptierctl add ------------------------------------------------------
# 64 backends, the most a set holds, of three slots (the header and two
# data slots) each.
args=()
for ((i = 0; i < 63; i++)); do
    args+=(backend="$d/t$i" capacity=12k)
done
swt_start "${args[@]}" stripe=1 reserve=0% control="$ctl_sock"
rc=0
out=$(ctl add "$d/huge" capacity=1E 2>&1) || rc=$?
echo "$out"
[[ $rc -ne 0 && $out == *"$d/huge: allocating"* ]] ||
    swt_fail "add capacity=1E: $out"
cf_gone "$d/huge"
ctl add "$d/t63" capacity=12k
rc=0
out=$(ctl add "$d/extra" capacity=12k 2>&1) || rc=$?
echo "$out"
[[ $rc -ne 0 ]] || swt_fail "a 65th backend was added"
cf_gone "$d/extra"
[[ -f $d/t63 ]] || swt_fail "the backend added is gone"
swt_stop
[[ $(swt_nbackends) -eq 64 ]] || swt_fail "$(swt_nbackends) backends"
echo "ok: a failed swaptierctl add removes the file it created"

echo "PASS"
