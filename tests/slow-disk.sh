#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# An nbdkit sh plugin script for the fault tests: a disk kept in the file
# $SLOW_DIR/disk, whose requests misbehave while files exist in $SLOW_DIR:
#   trim-delay   holds a number of seconds: each trim sleeps that long and
#                then zeroes its range, whether or not the client is still
#                there, and appends "trim COUNT OFFSET" to trims.log
#   read-hang    reads of the data slots (offset >= 4096; slot 0 holds
#                swaptier's header) do not answer while it exists
# The requests run in parallel (a sleeping trim holds up nothing else).
# shellcheck disable=SC2154
disk=$SLOW_DIR/disk
case "$1" in
    thread_model) echo parallel ;;
    get_size) stat -L -c %s "$disk" ;;
    can_write | can_trim | can_flush | flush) exit 0 ;;
    can_fua) echo native ;;
    pread)
        while [[ -e $SLOW_DIR/read-hang && $4 -ge 4096 ]]; do
            sleep 0.2
        done
        dd if="$disk" iflag=skip_bytes,count_bytes skip="$4" count="$3" \
           bs=64K status=none ;;
    pwrite)
        dd of="$disk" oflag=seek_bytes seek="$4" conv=notrunc bs=64K \
           iflag=fullblock status=none ;;
    trim)
        if [[ -s $SLOW_DIR/trim-delay ]]; then
            sleep "$(cat "$SLOW_DIR/trim-delay")"
        fi
        dd if=/dev/zero of="$disk" oflag=seek_bytes seek="$4" \
           iflag=count_bytes count="$3" conv=notrunc bs=64K status=none
        echo "trim $3 $4" >>"$SLOW_DIR/trims.log" ;;
    *) exit 2 ;;
esac
