#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What swaptierctl does on its own side (issue 15), against a real nbdkit
# swaptier:
#
#   1. add resolves a relative path from swaptierctl's directory, not
#      the plugin's (which is another).
#   2. Usage errors exit with 2, also those only the plugin's parser
#      knows (an unknown key, an unknown command, a bad id); a refusal
#      of a well-formed command exits with 1.
#   3. drain --json before any removal prints an empty object.
#   4. list shows a USE% column (used / size of each backend, as
#      swapctl -l) and a line on the device: its size, spare, use.
#   5. help lists the commands, swaptierctl's own too, and every key
#      of add.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require_python_nbd
d=$swt_tmpdir
mkdir "$d/elsewhere"

swt_start backend="$d/a" capacity=16M control="$ctl_sock"

# --- 1 ----------------------------------------------------------------------
out=$(cd "$d/elsewhere" && ctl add rel.img capacity=8M)
echo "$out"
[[ $out == "backend 1 added: $d/elsewhere/rel.img" ]] || swt_fail "add said: $out"
[[ $(ctl_get 1 target) == "$d/elsewhere/rel.img" && -f $d/elsewhere/rel.img ]] ||
    swt_fail "the relative path was not made absolute: $(ctl_get 1 target)"
echo "ok: a relative path is resolved on swaptierctl's side"

# --- 2 ----------------------------------------------------------------------
expect_code ()
{
    local want=$1 rc=0
    shift
    ctl "$@" >"$d/out" 2>&1 || rc=$?
    echo "swaptierctl $*: exit $rc: $(head -1 "$d/out")"
    (( rc == want )) || swt_fail "swaptierctl $*: exit $rc, not $want"
}
expect_code 2 add "$d/x" bogus=1
grep -q "unknown key 'bogus'" "$d/out" || swt_fail "no reason for bogus="
expect_code 2 frobnicate
expect_code 2 priority x 1
expect_code 2 remove
expect_code 2 add "$d/x" capacity=1Q
[[ ! -e $d/x ]] || swt_fail "a refused add created its file"
expect_code 1 add "$d/a"
grep -q "same file as backend" "$d/out" || swt_fail "no reason for the refusal"
expect_code 1 remove 9
echo "ok: usage errors exit with 2, refusals with 1"

# --- 3 ----------------------------------------------------------------------
[[ $(ctl drain --json) == "{}" ]] ||
    swt_fail "drain --json without a removal: $(ctl drain --json)"
echo "ok: drain --json prints {} before any removal"

# --- 4 ----------------------------------------------------------------------
"$swt_python" - "$swt_uri" <<'PY'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(os.urandom(1000 * 4096), 0)
h.flush()
h.shutdown()
PY
ctl list | tee "$d/list.txt"
head -1 "$d/list.txt" | grep -q 'USE%$' || swt_fail "list has no USE% column"
ctl list --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = {l.split()[0]: l.split()[-1] for l in open(sys.argv[1])
        if l.split() and l.split()[0].isdigit()}
for b in doc["backends"]:
    want = "%d%%" % (b["used"] * 100 // b["capacity"])
    assert rows[str(b["id"])] == want, (b["id"], rows, want)
t = doc["total"]
line = [l for l in open(sys.argv[1]) if l.startswith("device: ")]
assert len(line) == 1, line
assert line[0].rstrip().endswith(", %d%% in use" % (t["mapped"] * 100 // t["pages"])), line
print("ok: USE% per backend and the device line agree with list --json")
' "$d/list.txt"

# --- 5 ----------------------------------------------------------------------
ctl help >"$d/help.txt"
cat "$d/help.txt"
for verb in list stats add priority remove drain help check metrics; do
    grep -q "^$verb\b" "$d/help.txt" || swt_fail "help does not list $verb"
done
grep -q "^add .*domain=NAME.*encrypt=BOOL" "$d/help.txt" ||
    swt_fail "help does not give every key of add"
echo "ok: help lists the commands"
swt_stop
