#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: install dependencies, build, and live-migrate a running guest.
# Without a usable /dev/kvm the same demo runs inside the test VM
# (tests/vm/vm-run.py: a nested KVM under QEMU's TCG). GW_DEMO_VM=1 forces
# the VM, GW_DEMO_VM=0 forbids it.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --werror >/dev/null
ninja -C build >/dev/null
why="this host has no usable /dev/kvm"
case "${GW_DEMO_VM:-auto}" in
    1|yes) vm=1 why="GW_DEMO_VM=$GW_DEMO_VM" ;;
    0|no) vm=0 ;;
    *) if tests/vm/vm-run.py --host-kvm; then vm=0; else vm=1; fi ;;
esac
if [ "$vm" = 1 ]; then
    echo "demo: $why: running the demo inside the test VM (nested KVM under QEMU TCG; slower than a real KVM)"
    exec tests/vm/vm-run.py --timeout 1800 -- python3 scripts/demo.py --build build --slow-host "$@"
fi
exec python3 scripts/demo.py --build build "$@"
