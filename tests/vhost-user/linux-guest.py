#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A Linux guest for the vhost-user interop tests: a kernel and an initramfs.

The kernel is Debian's own (the package linux-image-amd64 points to),
fetched once with `apt-get download` into a cache and unpacked there. The
initramfs holds busybox, the virtio network modules and one static test
program; its /init loads the modules, brings every interface up, runs the
program with the arguments given after `--` on the kernel command line,
prints "vu-init: exit N" and powers off.

    linux-guest.py --program PATH --out INITRD [--cache DIR]

prints `KERNEL=path` and `INITRD=path`. When something it needs is missing
it prints one line saying what on stderr and exits with 77, which the
tests turn into a loud skip.
"""
import argparse
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys

EXIT_SKIP = 77

# virtio-net over PCI; dependencies are found in each module's .modinfo.
MODULES = ['virtio_pci', 'virtio_net']

INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do
    insmod "/modules/$m" || echo "vu-init: insmod $m failed"
done
ip link set lo up
n=0
while [ -z "$(ls /sys/class/net | grep -v '^lo$')" ] && [ $n -lt 200 ]; do
    sleep 0.1
    n=$((n + 1))
done
for i in $(ls /sys/class/net); do
    ip link set "$i" up
done
echo "vu-init: ready, interfaces: $(ls /sys/class/net | tr '\n' ' ')"
/bin/vu-guest-program "$@"
rc=$?
grep virtio /proc/interrupts | while read -r line; do echo "vu-init: irq $line"; done
echo "vu-init: exit $rc"
poweroff -f
'''


def skip(msg):
    sys.stderr.write('linux-guest: %s\n' % msg)
    sys.exit(EXIT_SKIP)


def run(cmd, what, cwd=None):
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
    except OSError as e:
        skip('%s: cannot run %s: %s' % (what, cmd[0], e))
    if p.returncode != 0:
        last = (p.stdout.strip().splitlines() or ['(no output)'])[-1]
        skip('%s failed: %s' % (what, last))
    return p.stdout


def cached_deb(cache, pkg):
    """The .deb of @pkg in @cache, downloading it once."""
    def find():
        hits = sorted(f for f in os.listdir(cache)
                      if f.startswith(pkg + '_') and f.endswith('.deb'))
        return os.path.join(cache, hits[-1]) if hits else None
    deb = find()
    if not deb:
        run(['apt-get', 'download', '-q', pkg], 'apt-get download %s' % pkg, cwd=cache)
        deb = find()
        if not deb:
            skip('apt-get download %s left no .deb in %s' % (pkg, cache))
    return deb


def kernel_package(cache):
    """linux-image-<version>-amd64: what linux-image-amd64 points to, or one already cached."""
    try:
        out = subprocess.run(['apt-cache', 'depends', 'linux-image-amd64'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True).stdout
        m = re.search(r'Depends:\s+(linux-image-[0-9][^\s]*-amd64)\b', out)
        if m:
            return m.group(1)
    except OSError:
        pass
    cached = sorted(f.split('_')[0] for f in os.listdir(cache)
                    if re.match(r'linux-image-[0-9].*-amd64_.*\.deb$', f))
    if cached:
        return cached[-1]
    skip('cannot tell which kernel package to use: apt does not know linux-image-amd64')


def bzimage_payload_to_elf(bzimage, out):
    """The ELF vmlinux inside a bzImage (xz payload), which QEMU boots directly (PVH).

    Skips the in-guest decompression, seconds under TCG.
    """
    data = open(bzimage, 'rb').read()
    if data[0x202:0x206] != b'HdrS':
        return False
    setup_sects = data[0x1f1] or 4
    start = (setup_sects + 1) * 512
    off, length = struct.unpack_from('<II', data, 0x248)
    payload = data[start + off:start + off + length]
    if not payload.startswith(b'\xfd7zXZ'):
        return False
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if not elf.startswith(b'\x7fELF'):
        return False
    with open(out + '.tmp', 'wb') as f:
        f.write(elf)
    os.rename(out + '.tmp', out)
    return True


def module_depends(data):
    m = re.search(rb'depends=([A-Za-z0-9_,-]*)\x00', data)
    return [d for d in m.group(1).decode().split(',') if d] if m else []


def read_module(path):
    data = open(path, 'rb').read()
    if path.endswith('.xz'):
        data = lzma.decompress(data)
    return data


def kernel_tree(cache):
    """Unpack the kernel package once; returns (vmlinux or bzImage, modules dir)."""
    pkg = kernel_package(cache)
    version = pkg[len('linux-image-'):]
    tree = os.path.join(cache, 'vu-' + version)
    kernel = os.path.join(tree, 'vmlinux')
    moddir = os.path.join(tree, 'lib', 'modules', version)
    if not os.path.exists(os.path.join(tree, '.done')):
        deb = cached_deb(cache, pkg)
        shutil.rmtree(tree, ignore_errors=True)
        run(['dpkg-deb', '-x', deb, tree], 'unpacking ' + os.path.basename(deb))
        bz = os.path.join(tree, 'boot', 'vmlinuz-' + version)
        if not os.path.exists(bz):
            skip('%s has no boot/vmlinuz-%s' % (deb, version))
        if not bzimage_payload_to_elf(bz, kernel):
            shutil.copy(bz, kernel)
        open(os.path.join(tree, '.done'), 'w').close()
    return kernel, moddir


def resolve_modules(moddir):
    index = {}
    for root, _, files in os.walk(moddir):
        for f in files:
            if f.endswith('.ko') or f.endswith('.ko.xz'):
                index[f.split('.ko')[0].replace('-', '_')] = os.path.join(root, f)
    order = []

    def visit(name, depth):
        key = name.replace('-', '_')
        if depth > 20:
            skip('module dependencies of %s do not end' % name)
        if key not in index:
            skip('the kernel package has no module %s' % name)
        if index[key] in order:
            return
        for dep in module_depends(read_module(index[key])):
            visit(dep, depth + 1)
        order.append(index[key])

    for m in MODULES:
        visit(m, 0)
    return order


class Cpio:
    """newc cpio, the initramfs format."""

    def __init__(self):
        self.blobs = []
        self.ino = 1

    def add(self, name, mode, data=b''):
        name_b = name.encode() + b'\0'
        hdr = '070701' + ''.join('%08X' % v for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        blob = hdr.encode() + name_b
        blob += b'\0' * (-len(blob) % 4) + data
        blob += b'\0' * (-len(blob) % 4)
        self.blobs.append(blob)

    def finish(self):
        self.add('TRAILER!!!', 0)
        return b''.join(self.blobs)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--program', required=True, help='static program to run in the guest')
    ap.add_argument('--out', required=True, help='where to write the initramfs')
    ap.add_argument('--cache', default=os.environ.get('GW_VM_CACHE') or
                    os.path.join(os.environ.get('XDG_CACHE_HOME') or
                                 os.path.expanduser('~/.cache'), 'godwit-vm'))
    args = ap.parse_args()
    if not os.access(args.program, os.X_OK):
        skip('%s is not an executable (was it built?)' % args.program)
    for tool in ('dpkg-deb',):
        if not shutil.which(tool):
            skip('%s is not installed' % tool)
    os.makedirs(args.cache, exist_ok=True)
    kernel, moddir = kernel_tree(args.cache)
    modules = resolve_modules(moddir)
    busybox_tree = os.path.join(args.cache, 'vu-busybox')
    busybox = os.path.join(busybox_tree, 'bin', 'busybox')
    if not os.path.exists(busybox):
        deb = cached_deb(args.cache, 'busybox-static')
        tmp = busybox_tree + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        run(['dpkg-deb', '-x', deb, tmp], 'unpacking ' + os.path.basename(deb))
        shutil.rmtree(busybox_tree, ignore_errors=True)
        os.rename(tmp, busybox_tree)
    c = Cpio()
    for d in ('bin', 'dev', 'proc', 'sys', 'modules'):
        c.add(d, 0o040755)
    c.add('bin/busybox', 0o100755, open(busybox, 'rb').read())
    c.add('bin/sh', 0o120777, b'busybox')
    c.add('bin/vu-guest-program', 0o100755, open(args.program, 'rb').read())
    c.add('init', 0o100755, INIT.encode())
    names = []
    for m in modules:
        name = os.path.basename(m).replace('.ko.xz', '.ko')
        c.add('modules/' + name, 0o100644, read_module(m))
        names.append(name)
    c.add('modules.order', 0o100644, ('\n'.join(names) + '\n').encode())
    with open(args.out + '.tmp', 'wb') as f:
        f.write(c.finish())
    os.rename(args.out + '.tmp', args.out)
    print('KERNEL=%s' % kernel)
    print('INITRD=%s' % args.out)


if __name__ == '__main__':
    main()
