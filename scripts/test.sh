#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The test command: install dependencies, build with --werror, run the unit
# and functional suites, then the suites again under ASan+UBSan (a subset of
# the functional tests, see tests/functional/meson.build), and print one
# summary line for everything.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

setup() {
    dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" --werror "$@" >/dev/null
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

setup build
setup build-san -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

# Huge pages for the hugetlb tests (root only; restored afterwards).
hp=/proc/sys/vm/nr_hugepages
if [ "$(id -u)" -eq 0 ] && [ -w "$hp" ]; then
    hp_old=$(cat "$hp")
    if [ "$hp_old" -lt 64 ]; then
        echo 64 > "$hp" 2>/dev/null || true
        trap 'echo "$hp_old" > "$hp" 2>/dev/null || true' EXIT
    fi
fi

sum=$(mktemp)
san=$(mktemp)
# A run that dies before writing its summary counts as one failure.
echo "0 1 0" > "$sum"
echo "0 1 0" > "$san"
set +e
./scripts/run-tests.py build --label "tests" --summary-file "$sum"
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
GW_SANITIZER_RUN=1 ./scripts/run-tests.py build-san --no-suite slow \
    --label "sanitizer tests" --timeout-multiplier 3 --summary-file "$san"
set -e
read p1 f1 s1 < "$sum"
read p2 f2 s2 < "$san"
rm -f "$sum" "$san"
echo "all: $((p1 + p2)) passed, $((f1 + f2)) failed, $((s1 + s2)) skipped"
[ $((f1 + f2)) -eq 0 ]
