#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Install what godwit needs to build, test and benchmark on Debian 12.
# Idempotent; skips apt when everything is already there.
set -e
# dpdk-dev: dpdk-testpmd, the vhost-user back-end of the guest-OS network tests.
# clang, libclang-rt-14-dev: the libFuzzer targets (-Dfuzzing=true, tests/fuzz;
# libFuzzer's runtime for -fsanitize=fuzzer is in libclang-rt-14-dev).
PKGS="meson ninja-build gcc binutils pkg-config python3 libglib2.0-dev libjson-glib-dev \
      qemu-system-x86 socat iproute2 util-linux dpdk-dev clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
