#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Configuration that used to be accepted without a word is refused with
# an error naming what is wrong:
#   a. a device-wide key given twice (the last used to win), on the
#      command line, in a config= file, or in both; a backend key given
#      twice for one backend;
#   b. config= naming a directory, a device or a FIFO;
#   c. an unknown URI scheme (it used to be opened as a relative path);
#   d. file:// URIs: file:///PATH is that path, %-escapes decoded; other
#      hosts, queries and bad escapes are refused;
#   e. control characters in a backend target, raw or through the
#      %-escapes of swaptierctl add.
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
swt_require nbdinfo timeout mkfifo
d=$swt_tmpdir

# --- a. Keys given twice --------------------------------------------------
b=(backend="$d/f" capacity=8M)
swt_expect_error "size= is given twice (size=1M, then size=2M)" \
    "${b[@]}" size=1M size=2M
swt_expect_error "stripe= is given twice (stripe=4, then stripe=4)" \
    "${b[@]}" stripe=4 stripe=4
swt_expect_error "reserve= is given twice (reserve=1%, then reserve=1M)" \
    "${b[@]}" reserve=1% reserve=1M
swt_expect_error "max-errors= is given twice" \
    "${b[@]}" max-errors=3 max-errors=9
swt_expect_error "mlock= is given twice (mlock=on, then mlock=off)" \
    "${b[@]}" mlock=on mlock=off
swt_expect_error "control= is given twice" \
    "${b[@]}" control="$d/c1.sock" control="$d/c2.sock"
swt_expect_error "priority= is given twice for backend $d/f" \
    "${b[@]}" priority=1 priority=2
swt_expect_error "capacity= is given twice for backend $d/f" \
    "${b[@]}" capacity=16M
swt_expect_error "force= is given twice for backend $d/f" \
    "${b[@]}" force=true force=false
# The same key for two backends is fine, once each.
[[ $(swt_config_size backend="$d/f" capacity=8M priority=1 \
             backend="$d/g" capacity=8M priority=1) -gt 0 ]]
# A config= file and the command line count as one configuration.
cat > "$d/size.conf" <<EOF
backend=$d/f
capacity=8M
size=1M
EOF
swt_expect_error "size= is given twice (size=1M, then size=2M)" \
    config="$d/size.conf" size=2M
cat > "$d/twice.conf" <<EOF
backend=$d/f
capacity=8M
stripe=8
stripe=16
EOF
swt_expect_error "stripe= is given twice" config="$d/twice.conf"
swt_expect_error "twice.conf:4: in this line" config="$d/twice.conf"
[[ $(swt_config_size config="$d/size.conf") -eq 1048576 ]]
echo "ok: keys given twice are refused"

# --- b. config= that is not a regular file --------------------------------
mkdir "$d/confdir"
swt_expect_error "config=$d/confdir: not a regular file" \
    "${b[@]}" config="$d/confdir"
swt_expect_error "config=/dev/null: not a regular file" \
    "${b[@]}" config=/dev/null
mkfifo "$d/fifo"
swt_expect_error "config=$d/fifo: not a regular file" \
    "${b[@]}" config="$d/fifo"
echo "ok: config= must be a regular file"

# --- c. Unknown URI schemes -----------------------------------------------
schemes="(backends are paths or nbd://, nbds://, nbd+unix://, nbds+unix://, nbd+vsock:// or nbds+vsock:// URIs)"
swt_expect_error "foo://host/x: unknown URI scheme 'foo' $schemes" \
    backend=foo://host/x capacity=8M
swt_expect_error "unknown URI scheme 'http'" backend=http://example.com/x
swt_expect_error "unknown URI scheme 'https'" backend=https://example.com/x
swt_expect_error "unknown URI scheme 'ftp'" backend=ftp://example.com/x
[[ ! -e foo: && ! -e $d/foo: ]] || swt_fail "foo:// was created as a path"
# A relative path of that shape is still possible, written with ./.
mkdir -p "$d/rel/foo:/host"
(cd "$d/rel" && [[ $(swt_config_size backend=./foo://host/x capacity=8M) -gt 0 ]])
[[ -f $d/rel/foo:/host/x ]] || swt_fail "./foo://host/x was not created"
echo "ok: unknown URI schemes are refused"

# --- d. file:// URIs ------------------------------------------------------
mkdir "$d/with space"
[[ $(swt_config_size backend="file://$d/with%20space/u" capacity=8M) -gt 0 ]]
[[ -f "$d/with space/u" ]] ||
    swt_fail "file://.../with%20space/u did not create \"$d/with space/u\""
grep -q "^swaptier: backend 0 $d/with space/u priority" "$swt_tmpdir/config-ok.log" ||
    swt_fail "the backend of a file URI is not listed by its path"
[[ $(swt_config_size backend="file://localhost$d/with%20space/u") -gt 0 ]]
[[ $(swt_config_size backend="FILE://$d/with%20space/u") -gt 0 ]]
swt_expect_error "is the same file as backend" \
    backend="$d/with space/u" backend="file://$d/with%20space/u"
swt_expect_error "a file URI names a local file: file:///PATH or file://localhost/PATH" \
    backend=file://otherhost/x capacity=8M
swt_expect_error "a file URI names a local file" backend=file://
swt_expect_error "a file URI with a query or fragment" \
    backend="file://$d/q?x=1" capacity=8M
swt_expect_error "bad %-escape in the file URI" backend="file://$d/a%2" \
    capacity=8M
swt_expect_error "bad %-escape in the file URI" backend="file://$d/a%00" \
    capacity=8M
swt_expect_error "a backend path holds a control character (byte 0x0a" \
    backend="file://$d/a%0Ab" capacity=8M
[[ ! -e $d/otherhost && ! -e "$d/q?x=1" ]] ||
    swt_fail "a refused file URI created a file"
echo "ok: file:///PATH names PATH; other file URIs are refused"

# --- e. Control characters ------------------------------------------------
swt_expect_error "backend=: the target holds a control character (byte 0x0a at offset" \
    backend="$d/new"$'\n'"line" capacity=8M
swt_expect_error "control character (byte 0x09" \
    backend="$d/tab"$'\t' capacity=8M
swt_expect_error "control character (byte 0x1b" \
    backend=nbd+unix:///$'\e'"?socket=$d/x"
[[ -z $(find "$d" -name 'new*' -o -name 'tab*') ]] ||
    swt_fail "a target with a control character was created"

swt_start backend="$d/A" capacity=16M control="$ctl_sock"
for target in "$d/B"$'\n'"x" "$d/C"$'\r' $'\e'"[2J"; do
    rc=0
    out=$(ctl add "$target" capacity=8M 2>&1) || rc=$?
    echo "$out"
    [[ $rc -ne 0 ]] || swt_fail "swaptierctl add accepted a control character"
    [[ $out == *"the target holds a control character (byte 0x"* ]] ||
        swt_fail "swaptierctl add: no clear message: $out"
done
[[ $(ctl_get total backends) -eq 1 ]] || swt_fail "a backend was added"
[[ -z $(find "$d" -name 'B*' -o -name 'C*') ]] ||
    swt_fail "swaptierctl add created a file for a refused target"
out=$(ctl add "file://$d/ctl%20added" capacity=8M)
echo "$out"
[[ -f "$d/ctl added" && $(ctl_get 1 target) == "$d/ctl added" ]] ||
    swt_fail "swaptierctl add of a file URI: $(ctl list)"
swt_stop
echo "ok: control characters are refused, raw and through swaptierctl add"

echo "PASS"
