#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the test VM (scripts/test.sh starts it through vm-run.py): the
# functional suites against the VM's nested KVM, plain and then under
# ASan+UBSan, with what the host built. Results go to the summary files
# scripts/test.sh reads (the project tree is shared read-write).
#
# What runs here follows the rule in docs/devel/test-vm.md: the quick
# suite (not 'slow'), less the programs named below with the measurement
# that keeps them out. They are counted as skipped, never dropped silently.
cd "$(dirname "$0")/../.."
export GW_TIMEOUT_SCALE="${GW_TIMEOUT_SCALE:-4}"
export GW_TEST_JOBS="${GW_TEST_JOBS:-1}"
mult=$GW_TIMEOUT_SCALE

gwos="in the test VM a guest taking interrupts at gwos's rates resets the VM within about a minute (QEMU's emulated SVM delivers an interrupt before KVM restores the host GS base; docs/devel/test-vm.md), and its 1 kHz serial markers are more port I/O than the VM keeps up with; runs where the host has its own KVM"
vhost="in the test VM /vhost-user/testpmd/boot made no progress in 8 min with the VM idle (not explained; the example back-end's boot passes in 5 s), and their guest is gwos, whose interrupts reset the VM (see the gwos programs); runs where the host has its own KVM"
excluded="
guest-os=$gwos
guest-os-migration=$gwos
guest-os-net=$gwos
vhost-user=$vhost
vhost-user-migration=$vhost
vhost-user-example=$vhost
vhost-user-dpdk=$vhost
vhost-user-qemu=$vhost
"
set --
IFS='
'
for e in $excluded; do
    set -- "$@" --exclude "$e"
done
unset IFS

./scripts/run-tests.py build --no-rebuild --suite functional --no-suite slow "$@" \
    --label "functional tests (test VM)" --timeout-multiplier "$mult" \
    --summary-file build/.summary-vm

# Under the sanitizers the same rule (GW_SANITIZER_RUN trims inside the
# programs what the native sanitizer run trims), and precopy is left to the
# plain run above: an ASan source in the VM sends slower than the tick
# guest dirties, so a case that must converge did not in 240 s (30 passes).
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 GW_SANITIZER_RUN=1 \
    ./scripts/run-tests.py build-san --no-rebuild --suite functional --no-suite slow "$@" \
    --exclude "migration-precopy=under ASan in the test VM precopy of the busy tick guest does not converge (240 s, 30 passes); the plain run in the VM and the native sanitizer run cover it" \
    --label "sanitizer functional tests (test VM)" \
    --timeout-multiplier "$((mult * 3))" --summary-file build-san/.summary-vm
exit 0
