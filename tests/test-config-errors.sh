#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Configuration checking: every bad configuration makes nbdkit exit
# non-zero, before serving, with an error message naming the problem; a
# good config= file (comments, blank lines, indentation) is accepted and
# gives the expected export size and priorities.  Where a case has a
# near-identical valid configuration, that one is shown to work too, so
# that the refusal is due to the one thing changed.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
swt_require nbdinfo timeout truncate
d=$swt_tmpdir

# --- Keys -----------------------------------------------------------------
swt_expect_error "unknown parameter 'colour'" \
    backend="$d/f" capacity=8M colour=blue
swt_expect_error "no backend: give at least one backend=PATH" size=1M
swt_expect_error "no backend: give at least one backend=PATH"
swt_expect_error "backend= needs a path" backend=

# --- priority= ------------------------------------------------------------
swt_expect_error "priority=32768: out of range (-1 to 32767)" \
    backend="$d/f" capacity=8M priority=32768
swt_expect_error "priority=-2: out of range (-1 to 32767)" \
    backend="$d/f" capacity=8M priority=-2
# (The message for a non-number comes from nbdkit_parse_int; it names
# the key.)
swt_expect_error "priority: " backend="$d/f" capacity=8M priority=high
swt_expect_error "priority= must follow the backend= it applies to" \
    priority=5 backend="$d/f" capacity=8M
swt_expect_error "capacity= must follow the backend= it applies to" \
    capacity=8M backend="$d/f"
# The limits themselves are accepted.
[[ $(swt_config_size backend="$d/f" capacity=8M priority=32767) -gt 0 ]]
[[ $(swt_config_size backend="$d/f" capacity=8M priority=-1) -gt 0 ]]

# --- size= ----------------------------------------------------------------
# 8 MiB = 2048 slots, slot 0 the header: 2047, of which 512 are spare: at
# most 1535 pages.
[[ $(swt_config_size backend="$d/f" capacity=8M size=$(( 1535 * 4096 ))) \
       -eq $(( 1535 * 4096 )) ]] ||
    swt_fail "size=$(( 1535 * 4096 )) is not the export size"
swt_expect_error "is larger than the backends can hold" \
    backend="$d/f" capacity=8M size=$(( 1536 * 4096 ))
swt_expect_error "is larger than the backends can hold" \
    backend="$d/f" capacity=8M size=8M
swt_expect_error "must be a nonzero multiple of 4096" \
    backend="$d/f" capacity=8M size=1000000
swt_expect_error "must be a nonzero multiple of 4096" \
    backend="$d/f" capacity=8M size=4097
swt_expect_error "must be a nonzero multiple of 4096" \
    backend="$d/f" capacity=8M size=0
# Backends smaller than the spare slots cannot export anything.
swt_expect_error "slots kept spare" backend="$d/tiny" capacity=1M

# --- stripe= --------------------------------------------------------------
swt_expect_error "stripe=0: out of range (1 to 256 pages)" \
    backend="$d/f" capacity=8M stripe=0
swt_expect_error "stripe=257: out of range (1 to 256 pages)" \
    backend="$d/f" capacity=8M stripe=257
[[ $(swt_config_size backend="$d/f" capacity=64M stripe=256) -gt 0 ]]

# --- Other keys -----------------------------------------------------------
swt_expect_error "reserve=51%: the percentage must be 0 to 50" \
    backend="$d/f" capacity=8M reserve=51%
swt_expect_error "max-errors=0: must be at least 1" \
    backend="$d/f" capacity=8M max-errors=0
swt_expect_error "capacity=100: at least one 4096-byte slot is needed" \
    backend="$d/f" capacity=100
swt_expect_error "could not parse size string (lots)" \
    backend="$d/f" capacity=lots
# reserve= and stripe= set the spare: 16 MiB = 4095 data slots, with
# reserve=0 and stripe=1 only 32 requests x 1 page are kept.
[[ $(swt_config_size backend="$d/g" capacity=16M reserve=0% stripe=1) \
       -eq $(( (4095 - 32) * 4096 )) ]] ||
    swt_fail "reserve=0% stripe=1 does not export 4063 pages"
[[ $(swt_config_size backend="$d/g" capacity=16M reserve=1M stripe=1) \
       -eq $(( (4095 - 256) * 4096 )) ]] ||
    swt_fail "reserve=1M stripe=1 does not export 3839 pages"

# --- Files ----------------------------------------------------------------
swt_expect_error "no such file (give capacity= to create it)" \
    backend="$d/missing"
[[ ! -e $d/missing ]] || swt_fail "a refused backend file was created"
swt_expect_error "not a regular file or block device" backend=/dev/null
mkdir "$d/dir"
swt_expect_error "not a regular file or block device" backend="$d/dir"

# An existing file without capacity= is used at its size, in whole slots:
# 8 MiB + 1000 bytes is 2048 slots, the header and 2047 data slots, 512
# of them spare.  A file needs two slots: the header and one for data.
truncate -s $(( 8 * 1048576 + 1000 )) "$d/existing"
[[ $(swt_config_size backend="$d/existing") -eq $(( (2047 - 512) * 4096 )) ]] ||
    swt_fail "an existing 8M+1000 file does not export 1535 pages"
truncate -s 1000 "$d/small"
swt_expect_error "less than two 4096-byte slots" backend="$d/small"
truncate -s 8191 "$d/small"
swt_expect_error "less than two 4096-byte slots" backend="$d/small"
swt_expect_error "less than two 4096-byte slots" \
    backend="$d/small-new" capacity=4096
[[ ! -e $d/small-new ]] || swt_fail "a refused capacity= file was left"

# A file that another swaptier is serving from is refused (flock).
swt_start backend="$d/existing"
swt_expect_error "in use by another process" backend="$d/existing"
swt_stop

# Two backends on one file: the same path, a symlink, a hard link, and
# one created by the first backend's capacity= in the same run.
truncate -s 8M "$d/same"
ln -s "$d/same" "$d/symlink"
ln "$d/same" "$d/hardlink"
swt_expect_error "is the same file as backend" \
    backend="$d/same" backend="$d/same"
swt_expect_error "is the same file as backend" \
    backend="$d/same" backend="$d/symlink"
swt_expect_error "is the same file as backend" \
    backend="$d/hardlink" capacity=8M backend="$d/same" capacity=8M
ln -s "$d/new" "$d/newlink"
swt_expect_error "is the same file as backend" \
    backend="$d/new" capacity=8M backend="$d/newlink"
# Two different files are fine: 2 x 2047 slots less 512 spare.
[[ $(swt_config_size backend="$d/same" backend="$d/other" capacity=8M) \
       -eq $(( (4094 - 512) * 4096 )) ]] ||
    swt_fail "two distinct 8M backends do not give $(( (4094 - 512) * 4096 )) bytes"

# --- capacity= on a block device (a loop device, if one can be made) ----
if command -v losetup >/dev/null 2>&1 &&
   truncate -s 8M "$d/loopfile" &&
   loopdev=$(losetup -f --show "$d/loopfile" 2>/dev/null); then
    # Detach it on exit too, should a check below fail.
    swt_on_exit '[[ -z $loopdev ]] || losetup -d "$loopdev"'
    swt_expect_error "capacity= cannot be set for a block device" \
        backend="$loopdev" capacity=8M
    # Without capacity= the block device works: its size is probed.
    [[ $(swt_config_size backend="$loopdev") -eq $(( (2047 - 512) * 4096 )) ]] ||
        swt_fail "the 8M loop device does not export $(( (2047 - 512) * 4096 )) bytes"
    losetup -d "$loopdev"
    loopdev=
else
    echo "note: no loop device (needs losetup and root); skipped the" \
         "capacity= on a block device case"
fi

# --- config= files --------------------------------------------------------
cat > "$d/bad-line.conf" <<EOF
# a comment
backend=$d/c1
this line has no equals sign
EOF
swt_expect_error "bad-line.conf:3: expected key=value" config="$d/bad-line.conf"

cat > "$d/bad-key.conf" <<EOF
backend=$d/c1
capacity=8M

   speed=fast
EOF
swt_expect_error "unknown parameter 'speed'" config="$d/bad-key.conf"
swt_expect_error "bad-key.conf:4: in this line" config="$d/bad-key.conf"

cat > "$d/bad-priority.conf" <<EOF
priority=3
backend=$d/c1
EOF
swt_expect_error "bad-priority.conf:1: in this line" \
    config="$d/bad-priority.conf"

cat > "$d/empty-key.conf" <<EOF
backend=$d/c1
=8M
EOF
swt_expect_error "empty-key.conf:2: expected key=value" \
    config="$d/empty-key.conf"

cat > "$d/nested.conf" <<EOF
config=$d/bad-line.conf
EOF
swt_expect_error "config= cannot be used inside a config file" \
    config="$d/nested.conf"
swt_expect_error "config=$d/nonexistent.conf" config="$d/nonexistent.conf"

# A good file: comments, blank lines, indentation, trailing blanks, a CRLF
# line.  Two 8 MiB backends (4094 data slots, 512 spare) and size=12M.
{
    echo "# swaptier test configuration"
    echo ""
    echo "backend=$d/c1"
    echo "  capacity=8M   "
    echo "	priority=3"
    echo "   # an indented comment"
    printf 'backend=%s\r\n' "$d/c2"
    echo "capacity=8M"
    echo "priority=-1"
    echo ""
    echo "size=12M"
} > "$d/good.conf"
size=$(swt_config_size config="$d/good.conf")
[[ $size -eq $(( 12 * 1048576 )) ]] ||
    swt_fail "config file: export size $size, expected $(( 12 * 1048576 ))"
[[ $(swt_priority 0 "$swt_tmpdir/config-ok.log") -eq 3 &&
   $(swt_priority 1 "$swt_tmpdir/config-ok.log") -eq -1 ]] ||
    swt_fail "config file: priorities not applied: $(cat "$swt_tmpdir/config-ok.log")"
grep -q "^swaptier: backend 1 $d/c2 priority" "$swt_tmpdir/config-ok.log" ||
    swt_fail "config file: the CRLF line did not give backend $d/c2"
echo "ok: good config file, size $size"

# Keys from the file and from the command line combine, in order.
size=$(swt_config_size config="$d/good.conf" backend="$d/c3" capacity=8M)
[[ $size -eq $(( 12 * 1048576 )) && $(swt_nbackends "$swt_tmpdir/config-ok.log") -eq 3 ]] ||
    swt_fail "config file + command line: size $size, $(swt_nbackends "$swt_tmpdir/config-ok.log") backends"

echo "PASS"
