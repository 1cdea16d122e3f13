# SPDX-License-Identifier: GPL-2.0-or-later
"""A small synchronous QMP client shared by the benchmarks in bench/.

It talks to godwit and QEMU alike over a unix socket: connect (retrying
until the VMM has created the socket), negotiate capabilities, run commands,
and keep every event with the host wall-clock time it was read
(``_host_time``), so a benchmark can time a migration from both sides.
"""

import json
import select
import socket
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise QMPError("no QMP socket at %s after %.0f s"
                                   % (path, timeout))
                time.sleep(0.02)
        self.sock = s
        self.buf = b""
        self.events = []
        greeting = self._read(timeout)
        if "QMP" not in greeting:
            raise QMPError("no QMP greeting: %r" % greeting)
        self.cmd("qmp_capabilities")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError("QMP read timed out")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None, timeout=30.0):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._read(timeout)
            if "event" in m:
                m["_host_time"] = time.time()
                self.events.append(m)
                continue
            if "error" in m:
                raise QMPError("%s: %s" % (name, m["error"].get("desc")))
            return m.get("return")

    def pump(self, timeout=0.0):
        """Read whatever events are pending (waiting up to timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            if b"\n" not in self.buf:
                left = max(0.0, deadline - time.monotonic())
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise QMPError("QMP connection closed")
                self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                m = json.loads(line)
                if "event" in m:
                    m["_host_time"] = time.time()
                    self.events.append(m)
            if time.monotonic() >= deadline:
                return

    def find_event(self, name, pred=None):
        for e in self.events:
            if e["event"] == name and (pred is None or pred(e)):
                return e
        return None

    def wait_event(self, name, timeout, pred=None):
        deadline = time.monotonic() + timeout
        while True:
            e = self.find_event(name, pred)
            if e is not None:
                return e
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 0.05))


def event_time(e):
    ts = e.get("timestamp") or {}
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
