#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Install every Debian package that swaptier's build, tests and benchmarks
# need.  Safe to run again: apt-get skips what is already there.
set -e

packages="
  autoconf automake libtool make gcc pkg-config
  nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
  check fio perl libblkid-dev strace libisal-dev libssl-dev
  clang libclang-rt-dev
  qemu-system-x86 linux-image-amd64 busybox-static nbd-client
"

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $packages
