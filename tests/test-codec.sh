#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Swapped pages stay secret and are never returned wrong (issue 14), with
# real components: nbdkit swaptier over a local file and a remote
# `nbdkit file` server on a Unix socket, written and read with nbdsh.
#
#   1. With the defaults no backend's storage (the local file, the file
#      under the remote server) holds any page written through swaptier:
#      each of 64 pages carries a marker that is searched for in both
#      files.  With encrypt=off the same run finds them (the test can
#      fail), and encrypt=off after one backend= leaves only that one in
#      clear.
#   2. A byte flipped in a backend's storage while swaptier runs: with
#      one copy the page fails with EIO (and is counted corrupt and
#      lost); the other pages read.  With copies=2 over two files of two
#      domains the page reads from its other copy and the copy is counted
#      corrupt.  Both encrypted and in clear.
#   3. The old content of a rewritten page put back at the page's new
#      slot (a replay) is caught the same way.
#   4. swaptierctl add: a backend added follows the device's encrypt=
#      (before the first backend=) unless given encrypt=on or off (its
#      file holds the markers when in clear); encrypt=on is refused, with
#      the reason, on a device that holds no key, and works on one
#      started with encrypt=off whose one backend is encrypt=on; a bad
#      value is refused naming the key.
#   5. checksum=off does not fault in the sums (resident memory 2 MiB
#      less for a 2 GiB device).
set -euo pipefail
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/remote-functions.sh"
source "$(dirname "$0")/ctl-functions.sh"

swt_setup
ctl_setup
rmt_setup
swt_require_python_nbd
swt_on_exit rmt_cleanup
d=$swt_tmpdir

section () { echo "=== $* (at ${SECONDS} s)"; }

# Write 64 pages, page p full of "SWAPTIER-MARKER-p;" repeated, flush.
write_markers ()
{
    "$swt_python" - "$swt_uri" <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for p in range(64):
    m = b"SWAPTIER-MARKER-%d;" % p
    h.pwrite((m * (4096 // len(m) + 1))[:4096], p * 4096)
h.flush()
for p in range(64):
    m = b"SWAPTIER-MARKER-%d;" % p
    assert h.pread(4096, p * 4096) == (m * (4096 // len(m) + 1))[:4096]
h.shutdown()
EOF
}

# How many markers file $1 holds.
count_markers ()
{
    { grep -a -o "SWAPTIER-MARKER-" "$1" || true; } | wc -l
}

# =============================================================================
section "1: no plaintext in any backend's storage"
for mode in default off half; do
    rm -f "$d/local" "$d/remote.img"
    truncate -s 64M "$d/remote.img"
    rmt_start "r-$mode" file "$d/remote.img"
    case $mode in
        default) keys=() ;;
        off) keys=(encrypt=off) ;;
        half) keys=() ;;
    esac
    if [[ $mode == half ]]; then
        swt_start backend="$d/local" capacity=16M priority=10 encrypt=off \
                  backend="$(rmt_uri "r-$mode")" priority=10 stripe=1 \
                  control="$ctl_sock"
    else
        swt_start "${keys[@]}" backend="$d/local" capacity=16M priority=10 \
                  backend="$(rmt_uri "r-$mode")" priority=10 stripe=1 \
                  control="$ctl_sock"
    fi
    write_markers
    ctl_raw list >"$d/list.raw"
    enc0=$(ctl_raw_get 0 encrypted "$d/list.raw")
    enc1=$(ctl_raw_get 1 encrypted "$d/list.raw")
    swt_stop
    rmt_stop "r-$mode"
    local_n=$(count_markers "$d/local")
    remote_n=$(count_markers "$d/remote.img")
    echo "$mode: encrypted $enc0/$enc1; markers in the local file" \
         "$local_n, in the remote's $remote_n"
    case $mode in
        default)
            [[ $enc0 == yes && $enc1 == yes ]] ||
                swt_fail "by default both backends should say encrypted=yes"
            (( local_n == 0 && remote_n == 0 )) ||
                swt_fail "plaintext found in a backend's storage" ;;
        off)
            [[ $enc0 == no && $enc1 == no ]] ||
                swt_fail "encrypt=off: backends should say encrypted=no"
            (( local_n > 0 && remote_n > 0 )) ||
                swt_fail "encrypt=off: the markers should be in clear" ;;
        half)
            [[ $enc0 == no && $enc1 == yes ]] ||
                swt_fail "encrypt=off after the first backend= only: $enc0/$enc1"
            (( local_n > 0 && remote_n == 0 )) ||
                swt_fail "encrypt=off for the local file only: local" \
                         "$local_n, remote $remote_n" ;;
    esac
done

# Flip bit 5 of byte $3 of block $2 (4 KiB slot) of file $1, bypassing the
# page cache (the backend uses O_DIRECT).
flip ()
{
    "$swt_python" - "$1" "$2" "$3" <<'EOF'
import mmap, os, sys
path, slot, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
os.preadv(fd, [buf], slot * 4096)
buf[at] ^= 0x20
os.pwritev(fd, [buf], slot * 4096)
os.close(fd)
EOF
}

# Read page $1 through swaptier: prints "data" or the errno name.
read_page ()
{
    "$swt_python" - "$swt_uri" "$1" <<'EOF'
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(4096, int(sys.argv[2]) * 4096)
    print("data")
except nbd.Error as e:
    print(errno.errorcode.get(e.errno, e.errno))
h.shutdown()
EOF
}

# =============================================================================
section "2 and 3: a flipped byte and a replayed block are never returned"
for enc in on off; do
    rm -f "$d/a" "$d/b"
    # One copy, one file: page p is in slot p + 1 (slot 0 holds the header).
    swt_start encrypt=$enc backend="$d/a" capacity=16M control="$ctl_sock"
    write_markers
    flip "$d/a" 4 1000                       # page 3
    r=$(read_page 3)
    [[ $r == EIO ]] || swt_fail "encrypt=$enc: a flipped page read as $r"
    for p in 2 4; do
        r=$(read_page $p)
        [[ $r == data ]] || swt_fail "encrypt=$enc: page $p read as $r"
    done
    ctl_raw list >"$d/list.raw"
    corrupt=$(ctl_raw_num 0 corrupt "$d/list.raw")
    lost=$(ctl_raw_num 0 lost "$d/list.raw")
    (( corrupt == 1 && lost == 1 )) ||
        swt_fail "encrypt=$enc: corrupt $corrupt, lost $lost (expected 1, 1)"
    echo "ok: encrypt=$enc, one copy: the flipped page reads EIO, counted" \
         "corrupt and lost; its neighbours read"
    # A replay: page 10 (slot 11) rewritten goes to a new slot; its old
    # block copied there.
    "$swt_python" - "$swt_uri" "$d/a" <<'EOF'
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
fd = os.open(sys.argv[2], os.O_RDONLY)
old = os.pread(fd, 4096, 11 * 4096)
h.pwrite(b"\x55" * 4096, 10 * 4096)
h.flush()
os.close(fd)
h.shutdown()
open(sys.argv[2] + ".old", "wb").write(old)
EOF
    # The rewrite took the first free slot after the 64 pages: slot 65.
    "$swt_python" - "$d/a" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
buf[:] = open(sys.argv[1] + ".old", "rb").read()
os.pwritev(fd, [buf], 65 * 4096)
os.close(fd)
EOF
    r=$(read_page 10)
    [[ $r == EIO ]] || swt_fail "encrypt=$enc: a replayed block read as $r"
    corrupt=$(ctl_raw_num 0 corrupt)
    (( corrupt == 2 )) ||
        swt_fail "encrypt=$enc: corrupt $corrupt after the replay, expected 2"
    echo "ok: encrypt=$enc: the replayed old block is caught"
    swt_stop

    # Two copies, two domains; a is preferred (priority), so reads take
    # its copy first, and page p is in slot p + 1 of both files.
    swt_start encrypt=$enc copies=2 \
              backend="$d/a" capacity=16M domain=a priority=10 \
              backend="$d/b" capacity=16M domain=b priority=5 \
              control="$ctl_sock"
    write_markers
    flip "$d/a" 4 2000                       # page 3's copy on a
    "$swt_python" - "$swt_uri" <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
m = b"SWAPTIER-MARKER-3;"
assert h.pread(4096, 3 * 4096) == (m * (4096 // len(m) + 1))[:4096]
h.shutdown()
EOF
    ctl_raw list >"$d/list.raw"
    corrupt=$(ctl_raw_num 0 corrupt "$d/list.raw")
    lost=$(ctl_raw_num total lost "$d/list.raw")
    (( corrupt == 1 && lost == 0 )) ||
        swt_fail "encrypt=$enc, copies=2: corrupt $corrupt, lost $lost"
    echo "ok: encrypt=$enc, copies=2: the flipped copy is counted corrupt" \
         "and the page reads its bytes from the other copy"
    swt_stop
done

# =============================================================================
section "4: swaptierctl add encrypt="
for start in on off mixed; do
    rm -f "$d/a" "$d/added-"*
    clear_id=
    if [[ $start == mixed ]]; then
        # Off for all, on for the one backend: the device holds a key,
        # and a backend added follows encrypt=off unless told otherwise.
        swt_start encrypt=off backend="$d/a" capacity=16M priority=1 \
                  encrypt=on control="$ctl_sock"
    else
        swt_start encrypt=$start backend="$d/a" capacity=16M priority=1 \
                  control="$ctl_sock"
    fi
    for add in default off on; do
        keys=()
        [[ $add == default ]] || keys=(encrypt=$add)
        if [[ $start == off && $add == on ]]; then
            if ctl add "$d/added-$add" capacity=16M priority=20 "${keys[@]}" \
                   >"$d/out" 2>&1; then
                swt_fail "add encrypt=on on a device without a key succeeded"
            fi
            grep -q "encrypt=on: this device holds no key" "$d/out" ||
                swt_fail "add encrypt=on refused without the reason: $(cat "$d/out")"
            continue
        fi
        ctl add "$d/added-$add" capacity=16M priority=20 "${keys[@]}" \
            >/dev/null
        write_markers
        id=$(ctl list --json | python3 -c '
import json, sys
print(max(b["id"] for b in json.load(sys.stdin)["backends"]))')
        enc=$(ctl_get "$id" encrypted)
        ctl priority "$id" 0 >/dev/null
        n=$(count_markers "$d/added-$add")
        want=yes
        [[ $add == off || ( $add == default && $start != on ) ]] && want=no
        echo "started encrypt=$start, added with encrypt=$add:" \
             "encrypted=$enc, markers in its file $n"
        clear_line=$(ctl list | grep "^in clear (encrypt=off): " || true)
        if [[ $start == on ]]; then
            # Only the backend added with encrypt=off is named, once added.
            [[ $add == off ]] && clear_id=$id
            if [[ -n $clear_id ]]; then
                [[ $clear_line == "in clear (encrypt=off): backend $clear_id" ]] ||
                    swt_fail "list should name backend $clear_id in clear: '$clear_line'"
            elif [[ -n $clear_line ]]; then
                swt_fail "list names backends in clear: '$clear_line'"
            fi
        fi
        if [[ $want == yes ]]; then
            [[ $enc == True || $enc == true || $enc == yes ]] ||
                swt_fail "added ($start/$add): encrypted=$enc, expected yes"
            (( n == 0 )) || swt_fail "added ($start/$add): plaintext in its file"
        else
            [[ $enc == False || $enc == false || $enc == no ]] ||
                swt_fail "added ($start/$add): encrypted=$enc, expected no"
            (( n > 0 )) || swt_fail "added ($start/$add): markers not in clear"
        fi
    done
    if ctl add "$d/added-bad" encrypt=maybe >"$d/out" 2>&1; then
        swt_fail "add encrypt=maybe succeeded"
    fi
    grep -q "encrypt=maybe: not on or off" "$d/out" ||
        swt_fail "add encrypt=maybe: $(cat "$d/out")"
    swt_stop
done
echo "ok: swaptierctl add encrypt="

# =============================================================================
section "5: checksum=off costs no memory for the sums"
# The plugin faults in (and locks) what the request path uses; with
# checksum=off that is not the sums' 4 bytes a page: 2 MiB for 2 GiB.
# Sets rss: the resident kB of the server with checksum=$1.
rss_with ()
{
    local pid
    rm -f "$d/big"
    swt_start backend="$d/big" capacity=2G checksum="$1"
    pid=$(cat "$swt_tmpdir/nbdkit.$swt_runs.pid")
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    swt_stop
    rm -f "$d/big"
}
rss_with on
on=$rss
rss_with off
off=$rss
echo "resident memory: checksum=on $on kB, checksum=off $off kB"
(( on - off >= 1536 )) ||
    swt_fail "checksum=off saves $(( on - off )) kB, not the sums' 2048 kB"
echo "ok: checksum=off leaves the sums untouched"
