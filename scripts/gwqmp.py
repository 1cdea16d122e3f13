# SPDX-License-Identifier: GPL-2.0-or-later
"""A small QMP client (stdlib only) for godwit's scripts and benchmarks.

It speaks QEMU's QMP, so it drives QEMU too. Not a library for users: the
demo and the benchmark share it.
"""
import json
import os
import socket
import subprocess
import tempfile
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError('cannot connect to QMP socket %s' % path)
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.events = []
        self.greeting = self._read()
        self.cmd('qmp_capabilities')

    def _read(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self._read()
            if 'event' in r:
                self.events.append(r)
                continue
            if 'error' in r:
                raise QMPError('%s: %s' % (name, r['error']['desc']))
            return r['return']

    def wait_event(self, name, timeout=30.0, pred=None):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e['event'] == name and (pred is None or pred(e.get('data', {}))):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError('timed out waiting for event %s' % name)
            self.sock.settimeout(left)
            try:
                r = self._read()
            except socket.timeout:
                raise QMPError('timed out waiting for event %s' % name)
            if 'event' in r:
                self.events.append(r)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def event_time(e):
    t = e['timestamp']
    return t['seconds'] + t['microseconds'] / 1e6


class VM:
    """A VMM process with a QMP socket and a serial log in a temp dir."""

    def __init__(self, binary, args, tmpdir, name, extra_env=None):
        self.dir = tmpdir
        self.name = name
        self.qmp_path = os.path.join(tmpdir, name + '.qmp')
        self.serial_path = os.path.join(tmpdir, name + '.serial')
        self.stderr_path = os.path.join(tmpdir, name + '.stderr')
        cmd = [binary] + args + ['-display', 'none',
                                 '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path,
                                 '-serial', 'file:%s' % self.serial_path]
        self.errf = open(self.stderr_path, 'w')
        env = dict(os.environ)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.errf, env=env)
        try:
            self.qmp = QMP(self.qmp_path)
        except QMPError:
            self.kill()
            raise QMPError('%s did not start: %s' % (name, self.stderr()))

    def serial(self):
        try:
            with open(self.serial_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read().strip()
        except OSError:
            return ''

    def wait_serial(self, text, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.serial():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd('quit')
            except Exception:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()
