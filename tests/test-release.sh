#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What a distribution needs to package swaptier (issue 15): the licence
# and the files that carry it.
#
#   1. Every source file (C, headers, scripts, automake and autoconf
#      inputs, units, the example configuration, POD) names the licence
#      in an SPDX line near its top.
#   2. Every man page has a LICENSE section naming BSD-3-Clause.
#   3. LICENSE is the BSD 3-clause text; NEWS has an entry for the
#      version configure.ac declares; the top Makefile.am distributes
#      LICENSE and NEWS.
#   4. install-deps.sh build (what ./quickstart runs) installs what
#      building and running need, and not what only the tests need
#      (QEMU, a kernel image, clang); with no argument it installs both.
#      apt-get is a stand-in that records its arguments.
#   5. The plugin exports only nbdkit's entry point and its debug flags,
#      and a debug flag still works from nbdkit's -D.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

swt_setup
d=$swt_tmpdir
src=$(cd "${srcdir:-$(dirname "$0")}/.." && pwd)

# --- 1. SPDX lines ----------------------------------------------------------
missing=()
while IFS= read -r -d '' f; do
    head -n 5 "$f" | grep -q 'SPDX-License-Identifier: BSD-3-Clause' ||
        missing+=("${f#"$src"/}")
done < <(find "$src" \( -path "$src/autom4te.cache" -o -path "$src/m4" \
                        -o -path "$src/build-aux" -o -name '.*' \
                        -o -path "$src/config.h" \) -prune -o \
              -type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' \
                         -o -name '*.py' -o -name 'Makefile.am' \
                         -o -name 'configure.ac' -o -name '*.service.in' \
                         -o -name '*.conf' -o -name '*.pod' \
                         -o -name quickstart -o -name run-tests \) \
              -print0)
(( ${#missing[@]} == 0 )) ||
    swt_fail "no SPDX-License-Identifier line in: ${missing[*]}"
echo "ok: every source file names its licence"

# --- 2. Man pages -----------------------------------------------------------
for pod in "$src"/docs/*.pod; do
    awk '/^=head1 LICENSE/ { on = 1; next } /^=head1/ { on = 0 }
         on && /BSD-3-Clause/ { found = 1 } END { exit !found }' "$pod" ||
        swt_fail "$(basename "$pod"): no LICENSE section naming BSD-3-Clause"
done
echo "ok: every man page has a LICENSE section"

# --- 3. LICENSE, NEWS, the tarball's list ---------------------------------
grep -q 'Redistribution and use in source and binary forms' "$src/LICENSE" &&
grep -q 'Neither the name' "$src/LICENSE" ||
    swt_fail "LICENSE is not the BSD 3-clause licence"
version=$(sed -n 's/^AC_INIT(\[swaptier\], \[\([^]]*\)\].*/\1/p' \
              "$src/configure.ac")
[[ -n $version ]] || swt_fail "no version in configure.ac's AC_INIT"
grep -q "^$version\b" "$src/NEWS" || swt_fail "NEWS has no entry for $version"
for f in LICENSE NEWS; do
    sed -n '/^EXTRA_DIST/,/[^\\]$/p' "$src/Makefile.am" | grep -qw "$f" ||
        swt_fail "Makefile.am does not distribute $f"
done
echo "ok: LICENSE, NEWS ($version) and the distributed files"

# --- 4. install-deps.sh -----------------------------------------------------
mkdir "$d/bin"
cat >"$d/bin/apt-get" <<EOF
#!/bin/sh
echo "\$*" >>"$d/apt.log"
EOF
cat >"$d/bin/sudo" <<'EOF'
#!/bin/sh
exec "$@"
EOF
chmod +x "$d/bin/apt-get" "$d/bin/sudo"
for mode in build all; do
    : >"$d/apt.log"
    PATH=$d/bin:$PATH sh "$src/install-deps.sh" "$mode" >/dev/null
    install=$(grep '^install ' "$d/apt.log") ||
        swt_fail "install-deps.sh $mode ran no apt-get install"
    for p in gcc nbdkit-plugin-dev libnbd-dev libisal-dev libssl-dev \
             libblkid-dev check fio; do
        [[ " $install " == *" $p "* ]] ||
            swt_fail "install-deps.sh $mode does not install $p"
    done
    for p in qemu-system-x86 linux-image-amd64 clang; do
        if [[ $mode == build && " $install " == *" $p "* ]]; then
            swt_fail "install-deps.sh build installs $p (only the tests need it)"
        fi
        if [[ $mode == all && " $install " != *" $p "* ]]; then
            swt_fail "install-deps.sh does not install $p"
        fi
    done
done
if PATH=$d/bin:$PATH sh "$src/install-deps.sh" tests >"$d/out" 2>&1; then
    swt_fail "install-deps.sh accepted an unknown argument"
fi
grep -q usage "$d/out" || swt_fail "install-deps.sh tests: $(cat "$d/out")"
grep -q '^\./install-deps.sh build$' "$src/quickstart" ||
    swt_fail "quickstart does not run install-deps.sh build"
echo "ok: install-deps.sh build installs what building and running need"

# --- 5. Exported symbols ----------------------------------------------------
swt_require nm
nm -D --defined-only "$swt_plugin" | awk '{ print $3 }' | sort >"$d/symbols"
extra=$(grep -vxE 'plugin_init|swaptier_debug_[a-z]+' "$d/symbols" || true)
[[ -z $extra ]] || swt_fail "the plugin exports more than it should: $extra"
grep -qx plugin_init "$d/symbols" || swt_fail "plugin_init is not exported"
grep -qx swaptier_debug_alloc "$d/symbols" ||
    swt_fail "swaptier_debug_alloc is not exported"
swt_require_python_nbd
nbdkit -U - -D swaptier.alloc=1 -v "$swt_plugin" backend="$d/a" capacity=16M \
    --run "$swt_python"' -c "import nbd; h = nbd.NBD(); h.connect_uri(\"$uri\"); h.pwrite(b\"x\" * 4096, 0)"' \
    2>"$d/debug.log" || { cat "$d/debug.log" >&2; swt_fail "nbdkit -D failed"; }
grep -q 'debug: alloc: backend 0' "$d/debug.log" ||
    swt_fail "-D swaptier.alloc=1 printed no allocation"
echo "ok: $(wc -l <"$d/symbols") symbols exported; -D swaptier.alloc=1 works"
