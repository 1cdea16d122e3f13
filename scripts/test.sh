#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The test command: install dependencies, build with --werror, run the unit
# and functional suites, then the suites again under ASan+UBSan (a subset of
# the functional tests, see tests/functional/meson.build), run each fuzz
# target for a minute, and print one summary line for everything.
#
# Functional tests need KVM. Where this host has no usable /dev/kvm they run
# inside the test VM (tests/vm/vm-run.py: Debian's kernel under QEMU's TCG
# with emulated AMD SVM, so a real nested /dev/kvm), and are counted as
# passed or failed like any others. GW_TEST_VM=1 forces the VM, GW_TEST_VM=0
# forbids it (the functional tests then skip loudly without /dev/kvm).
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

where=native
why="no usable /dev/kvm on this host"
case "${GW_TEST_VM:-auto}" in
    1|yes) where=vm why="GW_TEST_VM=$GW_TEST_VM" ;;
    0|no) ;;
    *) tests/vm/vm-run.py --host-kvm || where=vm ;;
esac

# Huge pages for the hugetlb tests (root only; restored afterwards).
hp=/proc/sys/vm/nr_hugepages
if [ "$where" = native ] && [ "$(id -u)" -eq 0 ] && [ -w "$hp" ]; then
    hp_old=$(cat "$hp")
    if [ "$hp_old" -lt 64 ]; then
        echo 64 > "$hp" 2>/dev/null || true
        trap 'echo "$hp_old" > "$hp" 2>/dev/null || true' EXIT
    fi
fi

# Each run writes "passed failed skipped" to its summary file; a run that
# dies before writing it counts as one failure.
sums=""
summary() {
    f=$1
    echo "0 1 0" > "$f"
    sums="$sums $f"
}
SAN_ENV="ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 GW_SANITIZER_RUN=1"

set +e
if [ "$where" = native ]; then
    summary build/.summary-tests
    summary build-san/.summary-tests
    ./scripts/run-tests.py build --label "tests" --summary-file build/.summary-tests
    env $SAN_ENV ./scripts/run-tests.py build-san --no-suite slow \
        --label "sanitizer tests" --timeout-multiplier 3 \
        --summary-file build-san/.summary-tests
else
    echo "test: $why: the functional suites run inside the test VM (nested KVM)"
    summary build/.summary-unit
    summary build-san/.summary-unit
    summary build/.summary-vm
    summary build-san/.summary-vm
    summary build/.summary-vm-single
    summary build-san/.summary-vm-single
    ./scripts/run-tests.py build --suite unit --label "unit tests" \
        --summary-file build/.summary-unit
    env $SAN_ENV ./scripts/run-tests.py build-san --suite unit \
        --label "sanitizer unit tests" --timeout-multiplier 3 \
        --summary-file build-san/.summary-unit
    GW_VM_TIMES=1 tests/vm/vm-run.py --hugepages 160 --timeout 3600 \
        --console build/vm-console.log -- tests/vm/functional.sh
    rc=$?
    if [ $rc -ge 125 ]; then
        echo "test: the test VM failed (exit $rc, see above and build/vm-console.log): its runs count as failed"
    fi
    # gwos's interrupts reset a VM on multi-threaded TCG, and testpmd needs
    # SSE4.2 (docs/devel/test-vm.md)
    GW_VM_TIMES=1 tests/vm/vm-run.py --accel tcg,thread=single \
        --cpu-model qemu64,+svm,+npt,+ssse3,+sse4.1,+sse4.2,+popcnt --timeout 1800 \
        --console build/vm-console-single.log -- tests/vm/functional.sh single
    rc=$?
    if [ $rc -ge 125 ]; then
        echo "test: the single-threaded test VM failed (exit $rc, see above and build/vm-console-single.log): its runs count as failed"
    fi
fi

# Each libFuzzer target for a minute on its committed corpus (clang builds
# them in build-fuzz; tests/fuzz/run-fuzzers.sh). A crash, leak or timeout
# fails the run; GW_FUZZ_SECONDS changes the time per target.
summary build/.summary-fuzz
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz --werror -Dfuzzing=true >/dev/null
fi
if ninja -C build-fuzz fuzzers >/dev/null || ninja -C build-fuzz fuzzers; then
    echo "fuzzing: each target for ${GW_FUZZ_SECONDS:-60} s"
    GW_FUZZ_SUMMARY=build/.summary-fuzz \
        tests/fuzz/run-fuzzers.sh build-fuzz "${GW_FUZZ_SECONDS:-60}"
fi
set -e

p=0 f=0 s=0
for sum in $sums; do
    read p1 f1 s1 < "$sum"
    p=$((p + p1)) f=$((f + f1)) s=$((s + s1))
    rm -f "$sum"
done
echo "all: $p passed, $f failed, $s skipped"
[ $f -eq 0 ]
