#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Fuzz the control protocol parser (lib/ctlproto) for a short while with
# libFuzzer (tests/fuzz-ctlproto, built when configure found a clang that
# links -fsanitize=fuzzer, else this test is skipped).  Any crash, leak,
# sanitizer report or abort (a broken property of the parser) fails the
# test; the input that caused it is left in the test log.
# FUZZ_SECONDS overrides the duration (default 15).
set -euo pipefail

top=${abs_top_builddir:-${top_builddir:-$(dirname "$0")/..}}
fuzzer=$top/tests/fuzz-ctlproto
if [[ ! -x $fuzzer ]]; then
    echo "SKIP: $fuzzer was not built (no clang with -fsanitize=fuzzer)" >&2
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/swaptier-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/corpus"

# Seeds: every command, valid and not, escapes, keys, a reply line.
i=0
while IFS= read -r seed; do
    printf '%s' "$seed" > "$tmp/corpus/seed$((i++))"
done <<'SEEDS'
list
stats
drain
help
add /var/swap%20one priority=5 capacity=16G
add nbd+unix:///?socket=/tmp/s connections=4 timeout=30 grace=60
priority 2 -1
remove 1023
remove 1024
add f capacity=1kk
add a%zz
backend id=3 target=/a%20b kind=file priority=5 state=active
SEEDS

rc=0
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-15}" -max_len=5000 \
    -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$tmp/" \
    -print_final_stats=1 "$tmp/corpus" > "$tmp/log" 2>&1 || rc=$?
tail -n 25 "$tmp/log"
if [[ $rc -ne 0 ]]; then
    for f in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* "$tmp"/oom-*; do
        [[ -e $f ]] || continue
        echo "--- $f (hex):" >&2
        od -A d -t x1z "$f" | head -n 20 >&2
    done
    echo "FAIL: the fuzzer exited with status $rc" >&2
    exit 1
fi
echo "PASS"
