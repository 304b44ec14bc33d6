#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Install the Debian packages swaptier needs.  With no argument (or
# "all"): everything the build, the tests and the benchmarks need, QEMU
# and a kernel image for the tests that swap under a real kernel, and
# clang for the sanitizers.  With "build": only what building and
# running it need (./quickstart).  Safe to run again: apt-get skips what
# is already there.
set -e

build="
  autoconf automake libtool make gcc pkg-config perl
  nbdkit nbdkit-plugin-dev libnbd-dev libblkid-dev libisal-dev libssl-dev
  check fio nbd-client
"
tests="
  libnbd-bin python3-libnbd python3-prometheus-client strace gnuplot-nox
  clang libclang-rt-dev
  qemu-system-x86 linux-image-amd64 busybox-static
"

case "${1:-all}" in
  build) packages=$build ;;
  all) packages="$build $tests" ;;
  *) echo "usage: $0 [build|all]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $packages
