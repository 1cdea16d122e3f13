#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the test VM (scripts/test.sh starts it through vm-run.py): the
# functional suites against the VM's nested KVM, with what the host built.
# Results go to the summary files scripts/test.sh reads (the project tree
# is shared read-write).
#
#   functional.sh        in a VM on multi-threaded TCG: the quick suite,
#                        plain and under ASan+UBSan, less the gwos programs
#   functional.sh gwos   in a VM on single-threaded TCG: the gwos programs
#
# What runs follows the rule in docs/devel/test-vm.md: the quick suite (not
# 'slow'), less the programs named below with the measurement that keeps
# them out. Those are counted as skipped, never dropped silently.
cd "$(dirname "$0")/../.." || exit 1
export GW_TIMEOUT_SCALE="${GW_TIMEOUT_SCALE:-4}"
export GW_TEST_JOBS="${GW_TEST_JOBS:-1}"
mult=$GW_TIMEOUT_SCALE

# gwos takes interrupts; on multi-threaded TCG those reset the VM within
# about a minute, so its programs get a VM boot of their own on
# single-threaded TCG (docs/devel/test-vm.md).
gwos_programs="guest-os guest-os-migration"

if [ "$1" = gwos ]; then
    # 1 kHz markers are more port I/O than vCPU 0 gets through here (364
    # loop iterations a second); 100 Hz leaves it room to run its workload.
    export GW_MARKER_HZ="${GW_MARKER_HZ:-100}"
    set --
    for p in $gwos_programs; do
        set -- "$@" --only "$p"
    done
    ./scripts/run-tests.py build --no-rebuild --suite functional --no-suite slow "$@" \
        --label "functional tests, gwos (test VM, single-threaded TCG)" \
        --timeout-multiplier "$mult" --summary-file build/.summary-vm-gwos
    exit 0
fi

vhost="in the test VM /vhost-user/testpmd/boot made no progress in 8 min with the VM idle (not explained; the example back-end's boot passes in 5 s), and their guest is gwos, whose interrupts reset a VM on multi-threaded TCG; runs where the host has its own KVM"
gwos_san="under ASan+UBSan the gwos programs run only where the host has its own KVM (here the plain run on single-threaded TCG covers them)"
precopy_san="under ASan in the test VM precopy of the busy tick guest does not converge (240 s, 30 passes); the plain run in the VM and the native sanitizer run cover it"

# Sets $opts to the run-tests.py options of this VM boot, one per line;
# $1 = plain or san.
excludes() {
    kind=$1
    set --
    for p in vhost-user vhost-user-migration vhost-user-example vhost-user-dpdk \
             vhost-user-qemu; do
        set -- "$@" --exclude "$p=$vhost"
    done
    for p in $gwos_programs; do
        if [ "$kind" = plain ]; then
            set -- "$@" --elsewhere "$p"
        else
            set -- "$@" --exclude "$p=$gwos_san"
        fi
    done
    [ "$kind" = plain ] || set -- "$@" --exclude "migration-precopy=$precopy_san"
    opts=$(for o in "$@"; do printf '%s\n' "$o"; done)
}

excludes plain
IFS='
'
# shellcheck disable=SC2086 # one option per line
./scripts/run-tests.py build --no-rebuild --suite functional --no-suite slow $opts \
    --label "functional tests (test VM)" --timeout-multiplier "$mult" \
    --summary-file build/.summary-vm

# Under the sanitizers the same rule (GW_SANITIZER_RUN trims inside the
# programs what the native sanitizer run trims), and precopy is left to the
# plain run above: an ASan source in the VM sends slower than the tick
# guest dirties.
unset IFS
excludes san
IFS='
'
# shellcheck disable=SC2086 # one option per line
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 GW_SANITIZER_RUN=1 \
    ./scripts/run-tests.py build-san --no-rebuild --suite functional --no-suite slow $opts \
    --label "sanitizer functional tests (test VM)" \
    --timeout-multiplier "$((mult * 3))" --summary-file build-san/.summary-vm
exit 0
