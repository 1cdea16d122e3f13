# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers shared by the benchmark scripts in bench/ (Python 3 stdlib only).

The QMP client is next door (gwqmp.py); this module holds the rest:

  processes   spawn() registers every child, which is killed (its whole
              process group) on exit, SIGINT, SIGTERM and SIGHUP;
              stop_process(); teardown() ends a trial in any state
  migration   each VMM's "unlimited" max-bandwidth; postcopy_trigger()
  tick        SerialFile follows a -serial file: log, with tick's pass
              markers and errors
  gwos        SerialTap reads a -serial unix socket; heartbeats(),
              markers(), problems_in(), wait_heartbeats(), guest_gaps();
              GwosVmm, the command line the gwos benchmarks boot it with
  output      parse_size(), fmt(), median(), markdown_table(),
              stderr_tails()

Importing it installs the exit hook and the signal handlers.
"""

import argparse
import atexit
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from gwqmp import QMPError

MiB = 1 << 20
GiB = 1 << 30


# ---------------------------------------------------------------------------
# Processes

_children = []


def _kill_children():
    for p in list(_children):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _children.remove(p)


def _on_signal(signum, _frame):
    _kill_children()
    sys.exit(128 + signum)


# An interrupted benchmark must not leave VMs running on a shared host.
atexit.register(_kill_children)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def spawn(argv, stdout, stderr, stdin=subprocess.DEVNULL, env=None, nice=0):
    """Start argv as a registered child; nice > 0 lowers its priority."""
    # Own session, so the whole group can be killed by its id.
    p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                         start_new_session=True, env=env,
                         preexec_fn=(lambda: os.nice(nice)) if nice else None)
    _children.append(p)
    return p


def stop_process(p, grace=5.0):
    """Wait up to grace seconds for p to exit, then kill its group."""
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)
    if p in _children:
        _children.remove(p)


def teardown(qmps, procs, closers=()):
    """End a trial whatever state it is in: quit and close every QMP
    connection, stop every process, then call every closer."""
    for q in qmps:
        try:
            q.cmd("quit", timeout=5)
        except (QMPError, OSError):
            pass    # gone or hung: stop_process kills it
        q.close()
    for p in procs:
        stop_process(p)
    # Closers last: a serial tap or a vhost-user back-end may be what a VMM
    # still talks to while it quits.
    for close in closers:
        close()


# ---------------------------------------------------------------------------
# Migration

# QEMU 7.2 treats max-bandwidth 0 as "no limit" in its rate limiter (its
# bandwidth estimate does not use the value), but we do not rely on that: a
# value far above any link here is unambiguous on every QEMU version.
QEMU_UNLIMITED_BW = 1 << 40          # 1 TiB/s
GODWIT_UNLIMITED_BW = 0              # godwit: 0 = unlimited (documented)


def postcopy_trigger(after_pass):
    """migrate-start-postcopy once MIGRATION_PASS reaches after_pass (0: at
    once, right after migrate). Pass 1 is the sync in setup, so pass 2 is
    the sync at the end of the first sweep: "after the first pass"."""
    def trigger(src, state):
        if state.get("postcopy_started"):
            return
        if after_pass > 0:
            e = src.find_event("MIGRATION_PASS",
                               lambda e: e["data"]["pass"] >= after_pass)
            if e is None:
                return
        src.cmd("migrate-start-postcopy")
        state["postcopy_started"] = time.time()
    return trigger


# ---------------------------------------------------------------------------
# Serial log files (-serial file:PATH), with tick's pass markers

class SerialFile:
    """Follows a serial log file by polling; every line gets the host time
    poll() first saw it."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.partial = b""
        self.lines = []          # (host_time, text)

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self.pos += len(data)
        now = time.time()
        data = self.partial + data
        parts = data.split(b"\n")
        self.partial = parts.pop()
        for p in parts:
            self.lines.append((now, p.decode("utf-8", "replace").rstrip("\r")))

    def text(self):
        """Complete lines only: a line still being written is not parsed."""
        return "\n".join(l for _, l in self.lines)

    def passes(self):
        out = []
        for t, l in self.lines:
            m = re.search(r"tick: pass (\d+)$", l)
            if m:
                out.append((t, int(m.group(1))))
        return out

    def errors(self):
        return [l for _, l in self.lines
                if re.search(r"tick: (error|exception|warning)", l)]


# ---------------------------------------------------------------------------
# gwos: serial socket, heartbeats, markers, command line

HEARTBEAT_RE = re.compile(
    r"^hb cpu=(\d+) t=(\d+)\.(\d+) iters=(\d+) gap_us=(\d+) "
    r"maxgap_us=(\d+) ticks=(\d+) pit=(\d+) back=(\d+) "
    r"corrupt=(\d+) pass=(\d+)")
MARKER_RE = re.compile(r"^@([0-9a-f]{8})$")


class SerialTap:
    """Reads a VM's serial unix socket in a thread of its own; every line
    gets the host wall-clock time (CLOCK_REALTIME) its newline arrived."""

    def __init__(self, path, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("no serial socket at %s" % path)
                time.sleep(0.005)
        self.sock = s
        self.lock = threading.Lock()
        self.lines = []          # (host_time, text)
        self.partial = b""
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            now = time.time()
            if not d:
                break
            with self.lock:
                data = self.partial + d
                parts = data.split(b"\n")
                self.partial = parts.pop()
                for p in parts:
                    self.lines.append((now, p.decode("utf-8", "replace")))

    def snapshot(self):
        with self.lock:
            return list(self.lines), self.partial.decode("utf-8", "replace")

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def heartbeats(lines):
    """{cpu: [dict]} from heartbeat lines."""
    out = {}
    for t, l in lines:
        m = HEARTBEAT_RE.match(l)
        if not m:
            continue
        g = [int(x) for x in m.groups()]
        out.setdefault(g[0], []).append({
            "host": t, "t": g[1] + g[2] / 1000.0, "iters": g[3],
            "gap_us": g[4], "maxgap_us": g[5], "ticks": g[6], "pit": g[7],
            "back": g[8], "corrupt": g[9], "pass": g[10]})
    return out


def markers(lines):
    out = []
    for t, l in lines:
        m = MARKER_RE.match(l)
        if m:
            out.append((t, int(m.group(1), 16)))
    return out


def problems_in(lines, side):
    bad = ("CORRUPT", "gwos: exception", "gwos: panic", "gwos: error")
    return ["%s: %s" % (side, l) for _, l in lines if any(b in l for b in bad)]


def wait_heartbeats(tap, after, count=2, timeout=30, cpus=(0, 1)):
    """Wait for count heartbeats of every vCPU printed after host time
    after; RuntimeError if they do not come within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        hb = heartbeats(tap.snapshot()[0])
        if all(len([h for h in hb.get(c, []) if h["host"] > after]) >= count
               for c in cpus):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("destination heartbeats stopped")
        time.sleep(0.05)


def guest_gaps(src_hb, dst_hb, t_migrate, t_done, cpus=(0, 1)):
    """The guest's view of a migration: per vCPU, the largest gap (ms) of
    every heartbeat interval that overlaps it (migrate .. first heartbeat
    after completion), and the problems the heartbeats report (a clock
    going back, corrupt memory). Returns (gaps, problems)."""
    gaps, problems = [], []
    for c in cpus:
        g = [h["gap_us"] for h in src_hb.get(c, []) if h["host"] > t_migrate]
        after = [h for h in dst_hb.get(c, []) if h["host"] > t_done]
        g += [h["gap_us"] for h in dst_hb.get(c, [])
              if h["host"] <= after[0]["host"]]
        gaps.append(max(g) / 1000.0 if g else None)
        for h in src_hb.get(c, []) + dst_hb.get(c, []):
            if h["back"] or h["corrupt"]:
                problems.append("cpu %d back=%d corrupt=%d"
                                % (c, h["back"], h["corrupt"]))
                break
    return gaps, problems


class GwosVmm:
    """How to start one VMM with gwos, its serial on a unix socket (for
    SerialTap) and the source stopped (-S) until the tap is connected."""

    def __init__(self, name, binary, unlimited_bw):
        self.name = name
        self.binary = binary
        self.unlimited_bw = unlimited_bw

    def argv(self, ram, smp, kernel, append, serial, qmp, incoming=None):
        # kvm_pvm refuses the ARCH_CAPABILITIES MSR and QEMU aborts on it;
        # gwos never reads it.
        cpu = "host,-arch-capabilities" if self.name == "qemu" else "host"
        a = [self.binary, "-enable-kvm", "-cpu", cpu, "-smp", str(smp),
             "-m", "%dM" % (ram // MiB), "-nodefaults", "-no-user-config",
             "-display", "none",
             "-serial", "unix:%s,server=on,wait=off" % serial,
             "-qmp", "unix:%s,server=on,wait=off" % qmp,
             "-device", "isa-debug-exit,iobase=0x501"]
        # godwit's destination takes the guest from the stream alone; QEMU's
        # needs the same -kernel (its option ROM is part of the stream).
        if incoming is None or self.name == "qemu":
            a += ["-kernel", kernel, "-append", append]
        if incoming:
            a += ["-incoming", incoming]
        else:
            a += ["-S"]
        return a


# ---------------------------------------------------------------------------
# Options and output

def parse_size(s):
    """512M, 4G, 64K; a bare number is MiB."""
    m = re.fullmatch(r"(\d+)([KMGkmg]?)", s.strip())
    if not m:
        raise argparse.ArgumentTypeError("bad size %r" % s)
    return int(m.group(1)) << {"": 20, "k": 10, "m": 20, "g": 30}[
        m.group(2).lower()]


def size_label(n):
    """4G, 256M: the shortest of parse_size's spellings that is exact."""
    return "%dG" % (n // GiB) if n % GiB == 0 else "%dM" % (n // MiB)


def fmt(v, f="%.0f"):
    if v is None:
        return "-"
    try:
        return f % v
    except TypeError:
        return str(v)


def median(vals):
    """The median of the values that are not None; None if there is none."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def markdown_table(hdr, rows, out):
    """Left-aligned columns as wide as their widest cell, so that the
    output pastes into docs/devel/benchmarks.md as it is."""
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w[i])
                                 for i, c in enumerate(cells)) + " |"
    print(line(hdr), file=out)
    print("|" + "|".join("-" * (x + 2) for x in w) + "|", file=out)
    for r in rows:
        print(line(r), file=out)


# This host's software KVM lacks CPUID bits QEMU asks for, and QEMU says so
# on every start: noise in a trial's stderr.
QEMU_CPUID_WARNING = "host doesn't support requested feature"


def stderr_tails(tmp, ignore=()):
    """{"src": ..., "dst": ...}: the last 2000 characters of src.stderr and
    dst.stderr in tmp, without QEMU's CPUID warnings and lines holding any
    of ignore; sides with nothing left are not in it."""
    drop = (QEMU_CPUID_WARNING,) + tuple(ignore)
    tails = {}
    for side in ("src", "dst"):
        try:
            with open(os.path.join(tmp, side + ".stderr"),
                      errors="replace") as f:
                txt = f.read().strip()
        except OSError:
            txt = ""
        txt = "\n".join(l for l in txt.splitlines()
                        if not any(d in l for d in drop))
        if txt:
            tails[side] = txt[-2000:]
    return tails
