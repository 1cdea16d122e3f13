#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run one command inside a small Linux VM that offers a real (nested) KVM.

For hosts without /dev/kvm: QEMU emulates AMD SVM under TCG, Debian's own
kernel loads kvm-amd inside, and the command runs in a chroot of the host's
root (shared read-only over 9p) with the project tree shared read-write, so
the binaries built on the host run unchanged against the VM's /dev/kvm.

    tests/vm/vm-run.py [options] -- COMMAND [ARG...]

The command's stdout and stderr are streamed to ours; our exit status is
the command's. A launcher problem (no QEMU, no kernel, timeout, a guest
kernel panic) is one line on stderr and exit status 125 (126 for a timeout,
127 for a VM that died), so a caller can tell the VM's failure from the
command's. docs/devel/testing.md describes it.
"""
import argparse
import lzma
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

EXIT_LAUNCHER = 125
EXIT_TIMEOUT = 126
EXIT_VM_DIED = 127
BOOT_HUNG = -1      # supervise(): no "gwvm: ready" in time; main() retries once

# Modules the init script loads, in this order after their dependencies:
# KVM for AMD, virtio PCI, the 9p filesystem over virtio, and the virtio
# console that carries the command's output.
WANTED_MODULES = ['kvm-amd', 'virtio_pci', '9pnet_virtio', '9p', 'virtio_console']

# Lines on the VM console that end a run at once: the guest kernel is dead
# or dying, and waiting for the timeout would only hide why.
FATAL_CONSOLE = re.compile(r'Kernel panic|BUG: (?!soft lockup)|Oops|general protection fault|'
                           r'corrupted stack end|Unable to handle kernel|'
                           r'Out of memory: Killed')
# A soft lockup or an RCU stall inside the VM can be a host that starves
# the VM's vCPU threads for a while: the run goes on, with a warning. A CPU
# stuck for minutes is not starvation but a hung VM (as when TCG ran stale
# code, docs/devel/test-vm.md): that ends the run like a panic.
STALL_CONSOLE = re.compile(r'BUG: soft lockup|rcu_preempt self-detected stall|'
                           r'rcu: INFO: rcu_preempt detected stalls')
STUCK_FOR = re.compile(r'soft lockup - CPU#\d+ stuck for (\d+)s')
STUCK_FATAL_S = 120

STATUS_MARK = 'gwvm-exit-status='


def fail(msg, code=EXIT_LAUNCHER):
    sys.stderr.write('vm-run: %s\n' % msg)
    sys.exit(code)


def default_cache():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return os.path.join(base, 'godwit-vm')


def run_quiet(cmd, what, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if p.returncode != 0:
        last = p.stdout.strip().splitlines()[-1:] or ['(no output)']
        fail('%s failed: %s' % (what, last[0]))
    return p.stdout


def kernel_package():
    """The versioned package linux-image-amd64 points to today."""
    out = run_quiet(['apt-cache', 'depends', 'linux-image-amd64'],
                    'asking apt which kernel linux-image-amd64 is')
    m = re.search(r'Depends:\s+(linux-image-[0-9][^\s]*-amd64)\b', out)
    if not m:
        fail('apt does not know linux-image-amd64 (is Debian\'s archive configured?)')
    return m.group(1)


def fetch_debs(cache, pkgs):
    """apt-get download each package into cache once; returns the .deb paths."""
    debs = []
    for pkg in pkgs:
        found = [f for f in os.listdir(cache) if f.startswith(pkg + '_') and f.endswith('.deb')]
        if not found:
            run_quiet(['apt-get', 'download', '-q', pkg],
                      'downloading %s from Debian\'s archive' % pkg, cwd=cache)
            found = [f for f in os.listdir(cache)
                     if f.startswith(pkg + '_') and f.endswith('.deb')]
            if not found:
                fail('apt-get download %s left no .deb in %s' % (pkg, cache))
        debs.append(os.path.join(cache, sorted(found)[-1]))
    return debs


def bzimage_to_vmlinux(bzimage, out):
    """Unpack the xz payload of a bzImage: an ELF vmlinux QEMU boots by PVH.

    PVH skips the real-mode setup and the in-guest decompression, which
    under TCG costs seconds.
    """
    with open(bzimage, 'rb') as f:
        data = f.read()
    if data[0x202:0x206] != b'HdrS':
        fail('%s is not a bzImage' % bzimage)
    setup_sects = data[0x1f1] or 4
    pm_start = (setup_sects + 1) * 512
    payload_off, payload_len = struct.unpack_from('<II', data, 0x248)
    payload = data[pm_start + payload_off:pm_start + payload_off + payload_len]
    if not payload.startswith(b'\xfd7zXZ'):
        fail('the kernel payload is not xz; cannot unpack %s' % bzimage)
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if not elf.startswith(b'\x7fELF'):
        fail('the unpacked kernel is not an ELF file')
    with open(out + '.tmp', 'wb') as f:
        f.write(elf)
    os.rename(out + '.tmp', out)


def module_deps(path):
    with open(path, 'rb') as f:
        data = f.read()
    m = re.search(rb'depends=([A-Za-z0-9_,-]*)\x00', data)
    if not m or not m.group(1):
        return []
    return m.group(1).decode().split(',')


def resolve_modules(moddir):
    """The .ko files WANTED_MODULES need, dependencies first."""
    index = {}
    for root, _, files in os.walk(moddir):
        for fn in files:
            if fn.endswith('.ko'):
                index[fn[:-3].replace('-', '_')] = os.path.join(root, fn)
    order = []

    def visit(name, chain):
        key = name.replace('-', '_')
        if key in chain:
            fail('module dependency loop at %s' % name)
        if key not in index:
            fail('the kernel package has no module %s' % name)
        if index[key] in order:
            return
        for dep in module_deps(index[key]):
            visit(dep, chain + [key])
        order.append(index[key])

    for name in WANTED_MODULES:
        visit(name, [])
    return order


class Cpio:
    """A newc cpio archive, the format the kernel unpacks as initramfs."""

    def __init__(self):
        self.parts = []
        self.ino = 1

    def _add(self, name, mode, data=b'', nlink=1):
        name_b = name.encode() + b'\x00'
        hdr = '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' % (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
        self.ino += 1
        blob = hdr.encode() + name_b
        blob += b'\x00' * (-len(blob) % 4)
        blob += data
        blob += b'\x00' * (-len(blob) % 4)
        self.parts.append(blob)

    def dir(self, name):
        self._add(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._add(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._add(name, 0o120777, target.encode())

    def bytes(self):
        self._add('TRAILER!!!', 0)
        return b''.join(self.parts)


# Run inside the VM (the host's python3, in the chroot): create a KVM VM
# with an in-kernel irqchip and one vCPU, never run it, keep it.
KVM_HOLD = r'''
import fcntl, os, signal
KVM_CREATE_VM, KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU = 0xAE01, 0xAE60, 0xAE41
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
fcntl.ioctl(vm, KVM_CREATE_IRQCHIP, 0)
fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
open("/run/gwvm-kvm-held", "w").close()
while True:
    signal.pause()
'''

INIT = r'''#!/bin/busybox sh
# godwit test VM: mount the host, load KVM, run one command, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "gwvm: $*" > /dev/ttyS0; }
. /run.conf
for m in $(cat /modules.order); do
    params=
    [ "$m" = kvm-amd.ko ] && params=$GWVM_KVM_AMD
    insmod "/modules/$m" $params || say "insmod $m failed"
done
mkdir -p /host
opts=trans=virtio,version=9p2000.L,msize=524288
# The host's root is read-only: cache it. Shared trees are written on both
# sides; their writes must reach the host at once (logs read while we run).
rwopts="$opts,cache=mmap"
opts="$opts,cache=loose"
mount -t 9p -o "$opts,ro" host /host || { say "cannot mount the host's root"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm /host/dev/hugepages
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 shm /host/dev/shm
mount -t hugetlbfs hugetlbfs /host/dev/hugepages
mount -t tmpfs -o mode=1777 tmp /host/tmp
mount -t tmpfs -o mode=1777 vartmp /host/var/tmp
mount -t tmpfs -o mode=755 run /host/run
mount -t tmpfs tmp /host/var/lib/apt 2>/dev/null
# The shared trees last, so that one under /tmp (a clone there) is not
# hidden by the scratch tmpfs mounted over it.
i=0
for d in $GWVM_RW; do
    mkdir -p "/host$d" 2>/dev/null
    mount -t 9p -o "$rwopts" "rw$i" "/host$d" || { say "cannot mount $d"; poweroff -f; }
    i=$((i + 1))
done
ip link set lo up
echo 1 > /proc/sys/vm/unprivileged_userfaultfd
[ -n "$GWVM_THP" ] && echo "$GWVM_THP" > /sys/kernel/mm/transparent_hugepage/enabled
[ "$GWVM_HUGEPAGES" -gt 0 ] && echo "$GWVM_HUGEPAGES" > /proc/sys/vm/nr_hugepages
[ -c /dev/kvm ] || say "no /dev/kvm in the VM (kvm-amd did not load)"
# One KVM VM with a vCPU (its APIC never enabled) is held open for the VM's
# whole life. Otherwise each first or last KVM VM flips the kernel's
# preempt-notifier static key (and KVM's apic_sw_disabled key), which
# rewrites live code in the scheduler; QEMU 7.2's TCG then sometimes goes
# on running its stale translation of the breakpoint byte of that rewrite,
# and both vCPUs spin in int3 for ever (seen as soft lockups at the
# scheduler's preempt-notifier sites; docs/devel/test-vm.md).
if [ -x /host/usr/bin/python3 ]; then
    chroot /host /usr/bin/python3 -c "$GWVM_KVM_HOLD" < /dev/null > /dev/ttyS0 2>&1 &
    i=0
    while [ ! -e /host/run/gwvm-kvm-held ] && [ $i -lt 600 ]; do usleep 100000; i=$((i + 1)); done
    [ -e /host/run/gwvm-kvm-held ] || say "warning: no KVM VM held open after 60 s: the VM may hang"
else
    say "warning: no /usr/bin/python3 to hold a KVM VM open: the VM may hang (see docs/devel/test-vm.md)"
fi
out=/dev/hvc0
[ -c "$out" ] || out=/dev/ttyS0
if [ -n "$GWVM_DEBUG_SHELL" ]; then
    setsid chroot /host /bin/sh -c 'cd "$GWVM_CWD"; exec /bin/sh -i' \
        < /dev/hvc1 > /dev/hvc1 2>&1 &
fi
say "ready"
# Through a pipe, not straight to the console: the command must not see a
# terminal (meson would redraw a progress line many times a second).
{ chroot /host /bin/sh -c "cd \"\$GWVM_CWD\" && exec \"\$@\"" gwvm "$@" < /dev/null 2>&1
  echo $? > /rc; } | cat > "$out"
rc=$(cat /rc)
sync
say "exit-status=$rc"
poweroff -f
'''


def build_base_initramfs(cache, work):
    """busybox + the modules + init, cached per kernel version."""
    pkg = kernel_package()
    version = pkg[len('linux-image-'):]
    vmlinux = os.path.join(cache, 'vmlinux-' + version)
    initrd = os.path.join(cache, 'initramfs-%s.cpio' % version)
    stamp = os.path.join(cache, 'init-' + version + '.sh')
    init_same = os.path.exists(stamp) and open(stamp).read() == INIT
    if os.path.exists(vmlinux) and os.path.exists(initrd) and init_same:
        return vmlinux, initrd
    kdeb, bbdeb = fetch_debs(cache, [pkg, 'busybox-static'])
    kdir = os.path.join(work, 'kernel')
    bdir = os.path.join(work, 'busybox')
    run_quiet(['dpkg-deb', '-x', kdeb, kdir], 'unpacking ' + os.path.basename(kdeb))
    run_quiet(['dpkg-deb', '-x', bbdeb, bdir], 'unpacking ' + os.path.basename(bbdeb))
    bz = os.path.join(kdir, 'boot', 'vmlinuz-' + version)
    if not os.path.exists(bz):
        fail('%s has no boot/vmlinuz-%s' % (kdeb, version))
    bzimage_to_vmlinux(bz, vmlinux)
    mods = resolve_modules(os.path.join(kdir, 'lib', 'modules', version))
    c = Cpio()
    for d in ['bin', 'dev', 'proc', 'sys', 'modules', 'host']:
        c.dir(d)
    with open(os.path.join(bdir, 'bin', 'busybox'), 'rb') as f:
        c.file('bin/busybox', f.read(), 0o755)
    c.symlink('bin/sh', 'busybox')
    c.file('init', INIT.encode(), 0o755)
    names = []
    for m in mods:
        with open(m, 'rb') as f:
            c.file('modules/' + os.path.basename(m), f.read())
        names.append(os.path.basename(m))
    c.file('modules.order', ('\n'.join(names) + '\n').encode())
    with open(initrd + '.tmp', 'wb') as f:
        f.write(c.bytes())
    os.rename(initrd + '.tmp', initrd)
    with open(stamp, 'w') as f:
        f.write(INIT)
    return vmlinux, initrd


def run_conf(args, cwd, rw):
    """The per-run part of the initramfs: command, directory, environment."""
    env = dict(os.environ)
    for k in ('TERM', 'DISPLAY', 'SSH_AUTH_SOCK', 'TMPDIR', 'XDG_RUNTIME_DIR'):
        env.pop(k, None)
    env['HOME'] = '/tmp'
    # The host's cache, read-only in here: what the host fetched and unpacked
    # (the Linux test guest's kernel tree) is found without apt.
    env['GW_VM_CACHE'] = args.cache
    env['GW_IN_TEST_VM'] = '1'
    lines = ['export %s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items())
             if re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', k)]
    lines.append('export GWVM_CWD=%s' % shlex.quote(cwd))
    lines.append('GWVM_RW=%s' % shlex.quote(' '.join(rw)))
    lines.append('GWVM_HUGEPAGES=%d' % args.hugepages)
    lines.append('GWVM_KVM_AMD=%s' % shlex.quote(args.kvm_amd))
    lines.append('GWVM_DEBUG_SHELL=%s' % ('1' if args.debug_shell else ''))
    lines.append('GWVM_THP=%s' % shlex.quote(args.thp))
    lines.append('GWVM_KVM_HOLD=%s' % shlex.quote(KVM_HOLD))
    lines.append('set -- ' + ' '.join(shlex.quote(a) for a in args.command))
    c = Cpio()
    c.file('run.conf', ('\n'.join(lines) + '\n').encode())
    return c.bytes()


def host_kvm_usable():
    """True if this host's /dev/kvm can create a VM (API version 12)."""
    import fcntl
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, 0xAE00, 0) != 12:          # KVM_GET_API_VERSION
            return False
        vm = fcntl.ioctl(fd, 0xAE01, 0)               # KVM_CREATE_VM
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def qemu_binary(wanted):
    if wanted:
        if not os.access(wanted, os.X_OK):
            fail('%s (--qemu) is not an executable' % wanted)
        return wanted
    q = shutil.which('qemu-system-x86_64')
    if not q:
        fail('qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)')
    return q


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cpus', type=int, default=2, help='vCPUs of the VM (default 2)')
    ap.add_argument('--mem', default='8G', help='RAM of the VM (default 8G)')
    ap.add_argument('--rw', action='append', default=[],
                    help='a host directory shared read-write at the same path '
                         '(default: the project tree); repeatable')
    ap.add_argument('--hugepages', type=int, default=0,
                    help='2 MiB huge pages to reserve inside the VM')
    ap.add_argument('--timeout', type=float, default=3600,
                    help='seconds before the VM is killed (default 3600)')
    ap.add_argument('--boot-timeout', type=int, default=180,
                    help='seconds for the VM to boot before it is started once more '
                         '(default 180)')
    ap.add_argument('--cpu-model', default=os.environ.get('GW_VM_CPU', 'qemu64,+svm,+npt'),
                    help='QEMU -cpu for the VM (default qemu64,+svm,+npt)')
    ap.add_argument('--kvm-amd', default=os.environ.get('GW_VM_KVM_AMD', 'npt=0'),
                    help='kvm-amd module parameters inside the VM (default "npt=0": '
                         'shadow paging; with nested paging the VM crashed under '
                         'migration load, docs/devel/testing.md)')
    ap.add_argument('--thp', default=os.environ.get('GW_VM_THP', ''),
                    help='transparent huge pages inside the VM: always, madvise or never')
    ap.add_argument('--accel', default=os.environ.get('GW_VM_ACCEL', 'tcg,thread=multi'),
                    help='QEMU -accel for the VM (default tcg,thread=multi)')
    ap.add_argument('--cache', default=os.environ.get('GW_VM_CACHE') or default_cache(),
                    help='where the kernel and initramfs are kept')
    ap.add_argument('--console', help='also write the VM console to this file')
    ap.add_argument('--debug-shell', metavar='SOCKET',
                    help='a root shell inside the VM on this unix socket '
                         '(connect with: socat -,raw,echo=0 UNIX:SOCKET)')
    ap.add_argument('--monitor', metavar='SOCKET',
                    help='QEMU\'s human monitor on this unix socket, to look at a VM '
                         'that seems stuck (info registers, info lapic, info irq)')
    ap.add_argument('--qemu', default=os.environ.get('GW_VM_QEMU'),
                    help='the qemu-system-x86_64 that runs the VM (default: the one on PATH)')
    ap.add_argument('--qemu-arg', action='append', default=[], metavar='ARG',
                    help='one more argument for QEMU (repeatable), e.g. --qemu-arg=-d '
                         '--qemu-arg=cpu_reset --qemu-arg=-D --qemu-arg=FILE to log the '
                         'CPU state of a reset')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='echo the VM console to stderr')
    ap.add_argument('--host-kvm', action='store_true',
                    help='only report: exit 0 if this host\'s own /dev/kvm works, 1 if not')
    ap.add_argument('command', nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.host_kvm:
        sys.exit(0 if host_kvm_usable() else 1)
    if args.command and args.command[0] == '--':
        args.command = args.command[1:]
    if not args.command:
        fail('no command given: vm-run.py [options] -- COMMAND [ARG...]')

    here = os.path.dirname(os.path.abspath(__file__))
    project = os.path.dirname(os.path.dirname(here))
    rw = [os.path.realpath(d) for d in (args.rw or [project])]
    for d in rw:
        if not os.path.isdir(d):
            fail('%s is not a directory' % d)
    cwd = os.path.realpath(os.getcwd())
    qemu = qemu_binary(args.qemu)
    os.makedirs(args.cache, exist_ok=True)
    t0 = time.monotonic()

    with tempfile.TemporaryDirectory(prefix='gwvm-') as work:
        vmlinux, base = build_base_initramfs(args.cache, work)
        initrd = os.path.join(work, 'initrd')
        with open(initrd, 'wb') as out, open(base, 'rb') as b:
            shutil.copyfileobj(b, out)
            out.write(run_conf(args, cwd, rw))
        outlog = os.path.join(work, 'out')
        open(outlog, 'wb').close()
        cmd = [qemu, '-nodefaults', '-no-user-config', '-display', 'none',
               '-no-reboot', '-machine', 'pc', '-accel', args.accel,
               '-cpu', args.cpu_model, '-smp', str(args.cpus), '-m', args.mem,
               '-kernel', vmlinux, '-initrd', initrd,
               '-append', 'console=ttyS0 loglevel=7 panic=-1 oops=panic '
                          'mitigations=off rdinit=/init tsc=reliable',
               '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
               '-device', 'virtio-serial-pci',
               '-chardev', 'file,id=out,path=' + outlog,
               '-device', 'virtconsole,chardev=out',
               '-virtfs', 'local,path=/,mount_tag=host,security_model=none,'
                          'readonly=on,multidevs=remap']
        if args.debug_shell:
            cmd += ['-chardev', 'socket,id=dbg,server=on,wait=off,path=' + args.debug_shell,
                    '-device', 'virtconsole,chardev=dbg']
        if args.monitor:
            cmd += ['-monitor', 'unix:%s,server=on,wait=off' % args.monitor]
        cmd += args.qemu_arg
        for i, d in enumerate(rw):
            cmd += ['-virtfs', 'local,path=%s,mount_tag=rw%d,security_model=none,'
                               'multidevs=remap' % (d, i)]
        for attempt in range(2):
            rc = supervise(cmd, outlog, args, t0, attempt)
            if rc != BOOT_HUNG:
                sys.exit(rc)
            if attempt == 0:
                # Seen once in some dozens of boots on a loaded host: the
                # kernel stops early in boot under TCG. A fresh start works.
                sys.stderr.write('vm-run: the VM had not booted after %d s (its kernel '
                                 'hung under TCG); starting it once more\n'
                                 % args.boot_timeout)
                open(outlog, 'wb').close()
                t0 = time.monotonic()
        fail('the VM hung while booting twice (no "gwvm: ready" within %d s); '
             'see --console or --verbose' % args.boot_timeout, EXIT_VM_DIED)


def supervise(cmd, outlog, args, t0, attempt):
    """Run QEMU, stream the command's output, watch the console; exit code,
    or BOOT_HUNG if the VM did not finish booting within --boot-timeout."""
    console = open(args.console, 'a' if attempt else 'w') if args.console else None
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                preexec_fn=lambda: _die_with_parent())
    except OSError as e:
        fail('cannot start %s: %s' % (cmd[0], e))

    interrupted = []

    def on_signal(signum, _frame):
        # Only flag it and kill QEMU: the main loop may be inside
        # proc.poll(), whose lock a proc.wait() here would deadlock on.
        interrupted.append(signum)
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    out = open(outlog, 'rb')
    conbuf = b''
    tail = []
    status = None
    fatal = None
    fatal_lines = []
    deadline = t0 + args.timeout
    booted = None
    stdout = sys.stdout.buffer
    while True:
        r, _, _ = select.select([proc.stdout], [], [], 0.05)
        chunk = b''
        if r:
            chunk = os.read(proc.stdout.fileno(), 65536)
        data = out.read()
        if data:
            stdout.write(data)
            stdout.flush()
        if chunk:
            conbuf += chunk
            *lines, conbuf = conbuf.split(b'\n')
            for raw in lines:
                line = raw.decode(errors='replace').rstrip('\r')
                if console:
                    console.write(line + '\n')
                    console.flush()
                if args.verbose:
                    sys.stderr.write('[vm] %s\n' % line)
                tail = (tail + [line])[-40:]
                if line.startswith('gwvm: ready') and booted is None:
                    booted = time.monotonic() - t0
                if line.startswith('gwvm: exit-status='):
                    status = int(line.split('=', 1)[1])
                elif fatal is not None:
                    fatal_lines.append(line)
                elif FATAL_CONSOLE.search(line) or stuck_for_long(line):
                    fatal = time.monotonic()
                    fatal_lines = tail[-3:]
                elif STALL_CONSOLE.search(line):
                    sys.stderr.write('vm-run: warning: the VM\'s kernel reports a stall, '
                                     'likely a host that starves its vCPUs: %s\n'
                                     % line.strip())
        if fatal is not None and time.monotonic() - fatal > 2:
            proc.kill()
            break
        if not chunk and r:
            break          # QEMU closed its stdout: it is exiting
        if proc.poll() is not None and not r:
            break
        if booted is None and time.monotonic() - t0 > args.boot_timeout:
            proc.kill()
            proc.wait()
            if console:
                console.close()
            return BOOT_HUNG
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            stdout.write(out.read())
            fail('the command did not finish within %.0f s; VM killed' % args.timeout,
                 EXIT_TIMEOUT)
    proc.wait()
    if interrupted:
        fail('interrupted by signal %d; VM stopped' % interrupted[0], 128 + interrupted[0])
    rest = out.read()
    if rest:
        stdout.write(rest)
        stdout.flush()
    if console:
        console.close()
    if fatal is not None:
        sys.stderr.write('vm-run: the VM\'s kernel died or hung:\n')
        for line in fatal_lines[:40]:
            sys.stderr.write('vm-run:   %s\n' % line)
        return EXIT_VM_DIED
    if status is None:
        # -no-reboot turns a guest reset into QEMU's exit with status 0: a
        # triple fault in the VM's kernel ends like this, with no message.
        why = ('the VM reset itself (a triple fault in its kernel, or a reboot)'
               if proc.returncode == 0 else 'QEMU exited with status %s' % proc.returncode)
        sys.stderr.write('vm-run: %s %.0f s after start, before the command finished; '
                         'last console lines:\n' % (why, time.monotonic() - t0))
        for line in tail[-15:]:
            sys.stderr.write('vm-run:   %s\n' % line)
        return EXIT_VM_DIED
    if os.environ.get('GW_VM_TIMES'):
        sys.stderr.write('vm-run: booted in %.1f s, ran in %.1f s\n'
                         % (booted or -1, time.monotonic() - t0))
    return status


def stuck_for_long(line):
    m = STUCK_FOR.search(line)
    return m is not None and int(m.group(1)) >= STUCK_FATAL_S


def _die_with_parent():
    """PR_SET_PDEATHSIG: QEMU never outlives the launcher."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    os.setsid()


if __name__ == '__main__':
    main()
