#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: install dependencies, build, and live-migrate a running guest.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --werror >/dev/null
ninja -C build >/dev/null
exec python3 scripts/demo.py --build build "$@"
