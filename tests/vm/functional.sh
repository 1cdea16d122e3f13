#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the test VM (scripts/test.sh starts it through vm-run.py): the
# functional suites against the VM's nested KVM, with what the host built.
# Results go to the summary files scripts/test.sh reads (the project tree
# is shared read-write).
#
#   functional.sh         in a VM on multi-threaded TCG: the quick suite,
#                         plain and under ASan+UBSan, less the programs of
#                         the second boot (single_programs below)
#   functional.sh single  in a VM on single-threaded TCG whose CPU has
#                         SSE4.2: the programs whose guest is gwos or that
#                         run DPDK's testpmd, plain and under ASan+UBSan
#
# What runs follows the rule in docs/devel/test-vm.md: the quick suite (not
# 'slow'), all of it between the two boots. A program that cannot run here
# is passed to run-tests.py with --exclude and the measurement that keeps
# it out, and so counted as skipped, never dropped silently (none is, today).
cd "$(dirname "$0")/../.." || exit 1
export GW_TIMEOUT_SCALE="${GW_TIMEOUT_SCALE:-4}"
export GW_TEST_JOBS="${GW_TEST_JOBS:-1}"
mult=$GW_TIMEOUT_SCALE

# gwos takes interrupts; on multi-threaded TCG those reset the VM within
# about a minute, so the programs whose guest it is get a VM boot of their
# own on single-threaded TCG (docs/devel/test-vm.md). testpmd needs SSE4.2
# (under qemu64 it died of SIGILL in librte_eal), which that boot's CPU has.
single_programs="guest-os guest-os-migration vhost-user vhost-user-example vhost-user-dpdk
    vhost-user-migration"

# The sanitizer runs' environment; GW_SANITIZER_RUN trims inside the
# programs what the native sanitizer run trims.
with_sanitizers() (
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 GW_SANITIZER_RUN=1
    "$@"
)

if [ "$1" = single ]; then
    # 1 kHz markers are more port I/O than vCPU 0 gets through here (364
    # loop iterations a second); 100 Hz leaves it room to run its workload.
    export GW_MARKER_HZ="${GW_MARKER_HZ:-100}"
    set --
    for p in $single_programs; do
        set -- "$@" --only "$p"
    done
    ./scripts/run-tests.py build --no-rebuild --suite functional --no-suite slow "$@" \
        --label "functional tests (test VM, single-threaded TCG)" \
        --timeout-multiplier "$mult" --summary-file build/.summary-vm-single
    with_sanitizers ./scripts/run-tests.py build-san --no-rebuild --suite functional \
        --no-suite slow "$@" --label "sanitizer functional tests (test VM, single-threaded TCG)" \
        --timeout-multiplier "$((mult * 3))" --summary-file build-san/.summary-vm-single
    exit 0
fi

# QEMU boots vhost-user-qemu's Linux guest on the nested KVM here (to its
# init in about 46 s), where under TCG it would be TCG inside TCG. (In the
# single-threaded boot it had not reached its init after 240 s.)
export GW_VU_QEMU_ACCEL=kvm

# run-tests.py over build directory $1, less the programs of the
# single-threaded boot; the rest are more run-tests.py options.
run_suite() {
    dir=$1
    shift
    for p in $single_programs; do
        set -- "$@" --elsewhere "$p"
    done
    ./scripts/run-tests.py "$dir" --no-rebuild --suite functional --no-suite slow "$@"
}

run_suite build --label "functional tests (test VM)" --timeout-multiplier "$mult" \
    --summary-file build/.summary-vm
with_sanitizers run_suite build-san --label "sanitizer functional tests (test VM)" \
    --timeout-multiplier "$((mult * 3))" --summary-file build-san/.summary-vm
exit 0
