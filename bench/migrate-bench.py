#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Live-migration benchmark: godwit side by side with QEMU.

Boots the same test guest (tests/guest/tick.elf, idle.elf) under godwit and,
when it is installed, under qemu-system-x86_64 with KVM, migrates it over a
local unix (default) or TCP socket with the same explicit limits, and prints
a precopy table and a postcopy table (medians of N runs) plus the raw floors
of this machine (loopback TCP and unix-socket throughput, memcpy bandwidth,
and one 4 KiB page from a peer process into UFFDIO_COPY, bench/uffd-floor.c
built on the fly with the system cc). Python 3 stdlib only.
docs/devel/benchmarks.md explains the rows, the columns and the choices.
"""

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)

if HERE not in sys.path:
    sys.path.insert(0, HERE)
from gwqmp import QMP, QMPError, event_time  # noqa: E402
from gwbench import (GODWIT_UNLIMITED_BW, QEMU_UNLIMITED_BW,  # noqa: E402
                     GiB, MiB, SerialFile, fmt, parse_size, postcopy_trigger,
                     spawn, stderr_tails, teardown)


# ---------------------------------------------------------------------------
# What is run: VMMs, workloads, migration modes.

class VMM:
    """How to start one VMM; godwit and QEMU take the same options here."""

    def __init__(self, name, binary, unlimited_bw):
        self.name = name
        self.binary = binary
        self.unlimited_bw = unlimited_bw

    def argv(self, ram, kernel, append, serial, qmp, incoming=None):
        # -nodefaults: QEMU would otherwise add a VGA card (16 MiB of video
        # RAM in the stream) and a NIC with option ROMs; godwit has neither.
        a = [self.binary, "-enable-kvm", "-m", "%dM" % (ram // MiB),
             "-nodefaults", "-no-user-config", "-display", "none",
             "-kernel", kernel, "-append", append,
             "-serial", "file:" + serial,
             "-qmp", "unix:%s,server=on,wait=off" % qmp,
             "-device", "isa-debug-exit,iobase=0x501"]
        if incoming:
            a += ["-incoming", incoming]
        return a


class Workload:
    def __init__(self, name, guest, append, ready, desc):
        self.name = name
        self.guest = guest           # "tick" or "idle"
        self.append = append         # -append string
        self.ready = ready           # "idle" or "tick"
        self.desc = desc


def make_workloads(ws_rate):
    return {
        "idle": Workload("idle", "idle", "", "idle",
                         "idle.elf: prints 'idle: ready', then cli; hlt"),
        "ws256": Workload("ws256", "tick",
                          "start=0x10000000 end=0x20000000 rate=%d" % ws_rate,
                          "tick",
                          "tick.elf over 256 MiB at %d MiB/s" % ws_rate),
        "wholeram": Workload("wholeram", "tick", "", "tick",
                             "tick.elf over all RAM, flat out"),
    }


class Mode:
    """A migration mode: capabilities on both sides, parameters on the
    source, and an optional trigger run on every loop of the wait
    (postcopy's migrate-start-postcopy goes there). extra_metrics are extra
    columns (key, header, format) filled by collect(trial, src_info,
    dst_info); postcopy modes have their own table and downtime limits."""

    def __init__(self, name, caps=(), src_params=None, trigger=None,
                 extra_metrics=(), collect=None, postcopy=False,
                 dl_option="downtime_limits"):
        self.name = name
        self.caps = list(caps)
        self.src_params = dict(src_params or {})
        self.trigger = trigger
        self.extra_metrics = list(extra_metrics)
        self.collect = collect
        self.postcopy = postcopy
        self.dl_option = dl_option     # which option lists its limits


def _postcopy_collect(trial, src_info, dst_info):
    ram = src_info.get("ram", {})
    trial["postcopy_requests"] = ram.get("postcopy-requests")
    trial["postcopy_bytes"] = ram.get("postcopy-bytes")
    trial["precopy_bytes"] = ram.get("precopy-bytes")
    # QEMU 7.2 reports blocktime on the destination only once completed,
    # which is when this is called.
    trial["blocktime_ms"] = dst_info.get("postcopy-blocktime")
    trial["vcpu_blocktime_ms"] = dst_info.get("postcopy-vcpu-blocktime")
    # QEMU 10.1 names (godwit reports them live); QEMU 7.2 has none of
    # them, and its rows say n/a rather than a number.
    trial["fault_latency_avg_us"] = (dst_info["postcopy-latency"] / 1000.0
                                     if "postcopy-latency" in dst_info
                                     else None)
    trial["latency_dist"] = dst_info.get("postcopy-latency-dist")
    pct = dst_info.get("x-postcopy-latency-percentiles") or {}
    trial["fault_p50_us"] = pct.get("p50")
    trial["fault_p99_us"] = pct.get("p99")
    trial["fault_max_us"] = pct.get("max")
    trial["remote_faults"] = pct.get("faults")


_POSTCOPY_METRICS = [
    ("postcopy_requests", "req", "%d"),
    ("blocktime_ms", "blk ms", "%d"),
    ("fault_p50_us", "p50 us", "%.1f"),
    ("fault_p99_us", "p99 us", "%.1f"),
    ("fault_max_us", "max us", "%.0f"),
]

# Adding a mode is one entry here (plus, if it needs one, a trigger).
MODES = {
    "precopy": Mode("precopy"),
    "postcopy-after-pass": Mode(
        "postcopy-after-pass", caps=["postcopy-ram", "postcopy-blocktime"],
        trigger=postcopy_trigger(2), extra_metrics=_POSTCOPY_METRICS,
        collect=_postcopy_collect, postcopy=True,
        dl_option="after_pass_downtime_limits"),
    "postcopy-pure": Mode(
        "postcopy-pure", caps=["postcopy-ram", "postcopy-blocktime"],
        trigger=postcopy_trigger(0), extra_metrics=_POSTCOPY_METRICS,
        collect=_postcopy_collect, postcopy=True,
        dl_option="postcopy_downtime_limits"),
}


# ---------------------------------------------------------------------------
# One trial: boot the source, boot the destination, migrate, check, tear down.

def host_cpu_khz():
    """The host CPU's nominal kHz (/proc/cpuinfo), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"cpu MHz\s*:\s*([\d.]+)", f.read())
        return float(m.group(1)) * 1000 if m else None
    except OSError:
        return None


class GuestNotReady(RuntimeError):
    """The guest did not come up as it should; worth one more try."""


def wait_ready(serial, wl, vm_proc, timeout, log):
    """Wait until the guest runs its workload; for tick, also measure the
    dirty rate it achieves from the pass markers. Returns a dict."""
    deadline = time.monotonic() + timeout
    host = host_cpu_khz()
    info = {}
    pages = None
    t_start = None
    while time.monotonic() < deadline:
        serial.poll()
        if vm_proc.poll() is not None:
            raise RuntimeError("the source exited early (status %d)"
                               % vm_proc.returncode)
        txt = serial.text()
        if wl.ready == "idle":
            if "idle: ready" in txt:
                return info
        else:
            m = re.search(r"tsc-khz=(\d+)", txt)
            if m and host and not 0.5 < int(m.group(1)) / host < 2:
                # tick calibrates its TSC against PIT channel 0 over 100 ms;
                # a vCPU preempted for more than a PIT wrap (55 ms) on a
                # loaded host reads the TSC as many times too fast, and
                # the rate-limited loop then crawls.
                raise GuestNotReady(
                    "guest TSC calibration is off (%s kHz, host %.0f kHz)"
                    % (m.group(1), host))
            if pages is None:
                m = re.search(r"tick: start=\S+ end=\S+ pages=(\d+)", txt)
                if m:
                    pages = int(m.group(1))
                    t_start = time.time()
            if pages is not None:
                ps = serial.passes()
                # At least 1 s and 3 passes of history (whole RAM passes are
                # tens of ms, a rate-limited working set about a second).
                if len(ps) >= 3 and ps[-1][0] - ps[0][0] >= 1.0:
                    n = ps[-1][1] - ps[0][1]
                    dt = ps[-1][0] - ps[0][0]
                    info["pages"] = pages
                    info["pass_s"] = dt / n
                    info["dirty_mibps"] = n * pages * 4096 / MiB / dt
                    m = re.search(r"tsc-khz=(\d+)", txt)
                    if m:
                        info["tsc_khz"] = int(m.group(1))
                    return info
                if time.time() - t_start > 30:
                    break
        time.sleep(0.005)
    raise GuestNotReady("guest not ready within %.0f s; serial: %r"
                        % (timeout, serial.text()[-300:]))


def run_trial(vmm, mode, wl, ram, downtime_ms, args, guests, log):
    tmp = tempfile.mkdtemp(prefix="gw-bench-")
    trial = {"vmm": vmm.name, "mode": mode.name, "ram": ram,
             "workload": wl.name, "downtime_limit": downtime_ms,
             "transport": args.transport,
             "load1": round(os.getloadavg()[0], 2)}
    procs = []
    qmps = []
    try:
        kernel = guests[wl.guest]
        s_serial, d_serial = (os.path.join(tmp, n) for n in ("src.serial",
                                                            "dst.serial"))
        s_qmp, d_qmp = (os.path.join(tmp, n) for n in ("src.qmp", "dst.qmp"))
        if args.transport == "unix":
            incoming = "unix:" + os.path.join(tmp, "mig.sock")
        else:
            incoming = "tcp:127.0.0.1:0"

        s_err = open(os.path.join(tmp, "src.stderr"), "wb")
        d_err = open(os.path.join(tmp, "dst.stderr"), "wb")
        src = spawn(vmm.argv(ram, kernel, wl.append, s_serial, s_qmp),
                    subprocess.DEVNULL, s_err)
        procs.append(src)
        sq = QMP(s_qmp)
        qmps.append(sq)
        ser = SerialFile(s_serial)
        trial["guest"] = wait_ready(ser, wl, src, args.boot_timeout, log)

        dst = spawn(vmm.argv(ram, kernel, wl.append, d_serial, d_qmp,
                             incoming), subprocess.DEVNULL, d_err)
        procs.append(dst)
        dq = QMP(d_qmp)
        qmps.append(dq)

        caps = [{"capability": "events", "state": True}] + \
            [{"capability": c, "state": True} for c in mode.caps]
        for q in (sq, dq):
            q.cmd("migrate-set-capabilities", {"capabilities": caps})
        params = {"downtime-limit": downtime_ms,
                  "max-bandwidth": vmm.unlimited_bw}
        params.update(mode.src_params)
        sq.cmd("migrate-set-parameters", params)
        trial["params"] = sq.cmd("query-migrate-parameters")

        uri = incoming
        if args.transport == "tcp":
            info = dq.cmd("query-migrate")
            sa = (info.get("socket-address") or [{}])[0]
            if not sa.get("port"):
                raise RuntimeError("destination reports no listening port")
            uri = "tcp:127.0.0.1:%s" % sa["port"]

        sq.events.clear()
        dq.events.clear()
        state = {}
        t0 = time.monotonic()
        sq.cmd("migrate", {"uri": uri})
        status = None
        last = None
        next_poll = 0.0
        while True:
            now = time.monotonic()
            sq.pump(0.02)
            dq.pump(0.0)
            ser.poll()
            if mode.trigger:
                mode.trigger(sq, state)
            ev = [e for e in sq.events if e["event"] == "MIGRATION"]
            st = ev[-1]["data"]["status"] if ev else None
            if st in ("completed", "failed", "cancelled"):
                status = st
                break
            if now >= next_poll:
                # Progress for the not-converged case; kept rare so the
                # monitor does not compete with the migration.
                last = sq.cmd("query-migrate")
                if last.get("status") in ("completed", "failed",
                                          "cancelled"):
                    status = last["status"]
                    break
                next_poll = now + 1.0
            if now - t0 > args.timeout:
                status = "timeout"
                break
            if src.poll() is not None:
                status = "source-died"
                break
        trial["wall_s"] = time.monotonic() - t0
        trial["switched"] = sq.find_event(
            "MIGRATION",
            lambda e: e["data"]["status"] == "postcopy-active") is not None
        if state.get("postcopy_started"):
            trial["switch_request_s"] = round(
                state["postcopy_started"] - (time.time() - trial["wall_s"]), 4)
        # Pass timeline (s after migrate), for looking into slow rows.
        t_mig = time.time() - trial["wall_s"]
        trial["pass_times_s"] = [
            round(event_time(e) - t_mig, 4) for e in sq.events
            if e["event"] == "MIGRATION_PASS"]

        if status == "timeout" and trial["switched"]:
            # Past the switch there is no cancel: the guest runs on the
            # destination. Record how far it got; teardown kills both.
            trial["status"] = "timeout-postcopy"
            last = sq.cmd("query-migrate")
            trial["progress"] = last
            ram_i = (last or {}).get("ram", {})
            trial["transferred"] = ram_i.get("transferred")
            trial["error"] = "still %s after %.0f s" % (last.get("status"),
                                                        args.timeout)
            return trial
        if status == "timeout":
            last = sq.cmd("query-migrate")
            try:
                sq.cmd("migrate_cancel")
            except QMPError as e:
                trial["cancel_error"] = str(e)
            sq.wait_event("MIGRATION", 10,
                          lambda e: e["data"]["status"] in ("cancelled",
                                                            "failed"))
            trial["status"] = "no-converge"
            trial["progress"] = last
            ram_i = (last or {}).get("ram", {})
            trial["passes"] = ram_i.get("dirty-sync-count")
            trial["transferred"] = ram_i.get("transferred")
            trial["mbps"] = ram_i.get("mbps")
            trial["expected_downtime"] = (last or {}).get("expected-downtime")
            trial["remaining"] = ram_i.get("remaining")
            # The source must still run the guest after a cancel.
            st = sq.cmd("query-status")
            trial["source_after_cancel"] = st.get("status")
            return trial
        if status != "completed":
            trial["status"] = status
            try:
                info = sq.cmd("query-migrate")
                trial["error"] = info.get("error-desc")
            except QMPError as e:
                trial["error"] = str(e)
            return trial

        info = sq.cmd("query-migrate")
        ram_i = info.get("ram", {})
        trial["status"] = "completed"
        trial["total_ms"] = info.get("total-time")
        trial["downtime_ms"] = info.get("downtime")
        trial["setup_ms"] = info.get("setup-time")
        trial["transferred"] = ram_i.get("transferred")
        trial["passes"] = ram_i.get("dirty-sync-count")
        trial["mbps"] = ram_i.get("mbps")
        trial["duplicate"] = ram_i.get("duplicate")
        trial["normal"] = ram_i.get("normal")
        trial["downtime_bytes"] = ram_i.get("downtime-bytes")
        if "x-downtime-split" in info:
            trial["split_src"] = info["x-downtime-split"]

        resume = dq.wait_event("RESUME", 10)
        stop = sq.find_event("STOP")
        if resume and stop:
            trial["gap_ms"] = (event_time(resume) - event_time(stop)) * 1000
        else:
            trial["gap_ms"] = None
            trial["note"] = "no %s event" % ("STOP" if not stop else "RESUME")
        dq.wait_event("MIGRATION", 5,
                      lambda e: e["data"]["status"] == "completed")
        dinfo = dq.cmd("query-migrate")
        if "x-downtime-split" in dinfo:
            trial["split_dst"] = dinfo["x-downtime-split"]
        if mode.collect:
            mode.collect(trial, info, dinfo)

        trial["check"] = check_destination(dq, d_serial, ser, wl, trial,
                                           args)
        if mode.postcopy and not trial["switched"]:
            # Precopy converged before the switch request took effect:
            # the row then says nothing about postcopy.
            note = "no switch (completed in precopy)"
            trial["check"] = note if trial["check"] == "ok" else \
                trial["check"] + "; " + note
        return trial
    except (QMPError, RuntimeError, OSError) as e:
        trial["status"] = "error"
        trial["error"] = str(e)
        trial["retryable"] = isinstance(e, GuestNotReady)
        return trial
    finally:
        teardown(qmps, procs)
        tails = stderr_tails(tmp)
        if tails:
            trial["stderr"] = tails
        if args.keep_tmp:
            trial["tmp"] = tmp
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def check_destination(dq, d_serial, src_serial, wl, trial, args):
    """The guest must go on where it stopped: running on the destination,
    pass markers continuing the source's count, no error on either side."""
    problems = []
    st = dq.cmd("query-status")
    if st.get("status") != "running":
        problems.append("destination status %s" % st.get("status"))
    src_serial.poll()
    problems += ["source serial: " + l for l in src_serial.errors()]
    if wl.ready == "tick":
        ser = SerialFile(d_serial)
        src_passes = src_serial.passes()
        last_src = src_passes[-1][1] if src_passes else 0
        wait = max(5.0, 3 * trial["guest"].get("pass_s", 1.0))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            ser.poll()
            if len(ser.passes()) >= 2:
                break
            time.sleep(0.02)
        ps = [n for _, n in ser.passes()]
        if len(ps) < 2:
            problems.append("destination printed %d pass markers in %.0f s"
                            % (len(ps), wait))
        else:
            if ps[0] > last_src + 2 or ps[0] < last_src:
                problems.append("destination pass %d after source pass %d"
                                % (ps[0], last_src))
            if any(b != a + 1 for a, b in zip(ps, ps[1:])):
                problems.append("destination pass markers not consecutive")
        problems += ["destination serial: " + l for l in ser.errors()]
    return "ok" if not problems else "; ".join(problems)


# ---------------------------------------------------------------------------
# Raw floors of this machine.

def floor_socket(family, total=2 * GiB, chunk=4 * MiB):
    """Single-stream throughput of a local stream socket, bytes/s."""
    tmp = None
    if family == socket.AF_UNIX:
        tmp = tempfile.mkdtemp(prefix="gw-bench-floor-")
        addr = os.path.join(tmp, "s")
    else:
        addr = ("127.0.0.1", 0)
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.bind(addr)
    ls.listen(1)
    addr = ls.getsockname()
    pid = os.fork()
    if pid == 0:
        try:
            c = socket.socket(family, socket.SOCK_STREAM)
            c.connect(addr)
            buf = memoryview(bytearray(b"\x5a" * chunk))
            sent = 0
            while sent < total:
                c.sendall(buf)
                sent += chunk
            c.close()
        finally:
            os._exit(0)
    try:
        conn, _ = ls.accept()
        buf = bytearray(chunk)
        mv = memoryview(buf)
        got = 0
        t0 = None
        while got < total:
            n = conn.recv_into(mv)
            if n == 0:
                break
            if t0 is None:
                t0 = time.perf_counter()
            got += n
        dt = time.perf_counter() - t0
        conn.close()
    finally:
        ls.close()
        os.waitpid(pid, 0)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return got / dt


MEMCPY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(void)
{
    size_t n = 256u << 20;
    char *a = malloc(n), *b = malloc(n);
    struct timespec t0, t1;
    double best = 0;
    if (!a || !b) return 1;
    memset(a, 1, n); memset(b, 2, n);
    for (int i = 0; i < 8; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        memcpy(i & 1 ? a : b, i & 1 ? b : a, n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (n / s > best) best = n / s;
    }
    printf("%.0f %d\n", best, a[12345] + b[54321]);
    return 0;
}
"""


def floor_memcpy():
    """memcpy bandwidth (bytes/s, best of 8 copies of 256 MiB): with a tiny
    C helper built by the system cc, or Python's buffer copy without one."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        tmp = tempfile.mkdtemp(prefix="gw-bench-memcpy-")
        try:
            src = os.path.join(tmp, "memcpy.c")
            exe = os.path.join(tmp, "memcpy")
            with open(src, "w") as f:
                f.write(MEMCPY_C)
            r = subprocess.run([cc, "-O2", "-o", exe, src],
                               capture_output=True)
            if r.returncode == 0:
                out = subprocess.run([exe], capture_output=True, text=True,
                                     timeout=60).stdout.split()
                return float(out[0]), "C memcpy"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    n = 256 * MiB
    a = bytearray(b"\x01" * n)
    b = bytearray(n)
    best = 0.0
    for _ in range(6):
        t0 = time.perf_counter()
        b[:] = a
        best = max(best, n / (time.perf_counter() - t0))
    return best, "python buffer copy"


# CPU placements of the UFFDIO_COPY floor: (name, CPU of the faulting
# process, CPU of the peer); -1 = free, as the VMMs run.
UFFD_PLACEMENTS = [("free", -1, -1), ("one core", 0, 0), ("two cores", 0, 1)]


def build_uffd_floor(tmp):
    """Compile bench/uffd-floor.c with the system cc; (path, None) or
    (None, why not)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    try:
        glib = subprocess.run(["pkg-config", "--cflags", "--libs",
                               "glib-2.0"], capture_output=True, text=True,
                              check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None, "pkg-config glib-2.0 failed"
    exe = os.path.join(tmp, "uffd-floor")
    r = subprocess.run([cc, "-std=c11", "-O2", "-D_GNU_SOURCE", "-pthread",
                        "-I" + os.path.join(SRC_ROOT, "include"),
                        "-o", exe, os.path.join(HERE, "uffd-floor.c")] +
                       glib, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "cc failed: " + r.stderr.strip()[-300:]
    return exe, None


def floor_uffd(transports, pages, runs, log):
    """One 4 KiB page from a peer process into UFFDIO_COPY, per transport
    and CPU placement: the run with the median place_p50 of `runs`."""
    tmp = tempfile.mkdtemp(prefix="gw-bench-uffd-")
    out = {}
    try:
        exe, why = build_uffd_floor(tmp)
        if exe is None:
            out["error"] = why
            return out
        ncpu = os.cpu_count() or 1
        for tr in transports:
            for name, a, b in UFFD_PLACEMENTS:
                if max(a, b) >= ncpu:
                    continue
                got = []
                for _ in range(runs):
                    r = subprocess.run([exe, tr, str(pages), str(a), str(b)],
                                       capture_output=True, text=True,
                                       timeout=120)
                    if r.returncode != 0:
                        out.setdefault("errors", []).append(
                            r.stderr.strip())
                        continue
                    kv = dict(f.split("=", 1) for f in r.stdout.split())
                    got.append({k: float(v) for k, v in kv.items()
                                if k.endswith("_us")})
                if got:
                    got.sort(key=lambda g: g["place_p50_us"])
                    med = got[len(got) // 2]
                    med["runs"] = len(got)
                    med["pages"] = pages
                    out["%s/%s" % (tr, name)] = med
                    log("   uffd floor %s %-9s place p50 %.1f us, fault "
                        "p50 %.1f us" % (tr, name, med["place_p50_us"],
                                         med["fault_p50_us"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def measure_floors(log, args):
    floors = {}
    log("floors: measuring loopback TCP, unix socket and memcpy ...")
    size = 512 * MiB if args.quick else 2 * GiB
    floors["tcp_Bps"] = max(floor_socket(socket.AF_INET, size)
                            for _ in range(2))
    floors["unix_Bps"] = max(floor_socket(socket.AF_UNIX, size)
                             for _ in range(2))
    floors["memcpy_Bps"], floors["memcpy_how"] = floor_memcpy()
    if any(m.postcopy for m in ACTIVE_MODES) or args.uffd_floor:
        log("floors: one page from a peer process into UFFDIO_COPY ...")
        floors["uffd"] = floor_uffd(["unix", "tcp"], args.floor_pages,
                                    1 if args.quick else 3, log)
    return floors


# ---------------------------------------------------------------------------
# Aggregation and output.

NUMERIC = ["total_ms", "downtime_ms", "gap_ms", "setup_ms", "transferred",
           "passes", "mbps"]


def aggregate(trials):
    """Median of each numeric field over the completed trials."""
    done = [t for t in trials if t.get("status") == "completed"]
    agg = {"runs": len(trials), "completed": len(done)}
    if not done:
        st = sorted({t.get("status") for t in trials})
        agg["status"] = "/".join(st)
        nc = [t for t in trials if t.get("status") == "no-converge"]
        if nc:
            agg["passes"] = statistics.median(
                t["passes"] or 0 for t in nc)
            agg["transferred"] = statistics.median(
                t["transferred"] or 0 for t in nc)
            agg["mbps"] = statistics.median(t["mbps"] or 0 for t in nc)
        errs = [t.get("error") for t in trials if t.get("error")]
        if errs:
            agg["error"] = errs[0]
        return agg
    agg["status"] = "completed" if len(done) == len(trials) else \
        "%d/%d done" % (len(done), len(trials))
    # Latency percentiles of a run with a handful of faults say little;
    # take them from the runs with at least 10 when there are such runs.
    many = [t for t in done if (t.get("remote_faults") or 0) >= 10]
    for k in NUMERIC + [m[0] for m in extra_metric_defs()] + \
            ["fault_latency_avg_us", "remote_faults", "postcopy_bytes"]:
        src = many if many and k.startswith("fault_") else done
        vals = [t[k] for t in src if t.get(k) is not None]
        if vals:
            agg[k] = statistics.median(vals)
    dists = [t["latency_dist"] for t in done if t.get("latency_dist")]
    if dists:
        agg["latency_dist"] = [sum(col) for col in zip(*dists)]
    agg["switched"] = sum(1 for t in done if t.get("switched"))
    agg["load1"] = statistics.median(t.get("load1", 0) for t in trials)
    for side in ("split_src", "split_dst"):
        splits = [t[side] for t in done if isinstance(t.get(side), dict)]
        if splits:
            agg[side] = {k: statistics.median(s.get(k, 0) for s in splits)
                         for k in splits[0]}
    checks = sorted({t.get("check", "?") for t in done})
    agg["check"] = "ok" if checks == ["ok"] else "; ".join(checks)
    rates = [t["guest"]["dirty_mibps"] for t in trials
             if t.get("guest", {}).get("dirty_mibps")]
    if rates:
        agg["dirty_mibps"] = statistics.median(rates)
    return agg


def extra_metric_defs():
    seen = []
    for m in ACTIVE_MODES:
        for d in m.extra_metrics:
            if d not in seen:
                seen.append(d)
    return seen


ACTIVE_MODES = []


def ratio(a, b):
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return "%.2f" % (a / b)


def floor_p50(floors, transport):
    """The UFFDIO_COPY floor comparable to godwit's fault latency (read of
    the fault to the page placed), same transport, CPUs free as the VMMs."""
    f = (floors or {}).get("uffd", {}).get("%s/free" % transport)
    return f.get("place_p50_us") if f else None


def _table(rows, hdr, out):
    widths = [max(len(str(r[i])) for r in rows + [hdr])
              for i in range(len(hdr) - 1)]

    def line(r):
        return "  ".join(str(c).rjust(w) if i >= 3 else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))) \
            + "  " + str(r[-1])
    print(line(hdr), file=out)
    print("-" * (sum(widths) + 2 * len(widths) + 5), file=out)
    last = None
    for r in rows:
        if last and r[:4] != last[:4]:
            print("", file=out)
        print(line(r), file=out)
        last = r


def _rows(results, postcopy, floor, have_qemu):
    rows = []
    for key, per_vmm in results:
        mode, ram, wl, dl = key
        if MODES[mode].postcopy != postcopy:
            continue
        q = per_vmm.get("qemu")
        for vname in ("godwit", "qemu"):
            a = per_vmm.get(vname)
            if a is None:
                continue
            sent = a["transferred"] / MiB if a.get("transferred") \
                is not None else None
            row = [mode, "%dG" % (ram // GiB), wl, "%d" % dl, vname,
                   a["status"], fmt(a.get("total_ms")),
                   fmt(a.get("downtime_ms")), fmt(a.get("gap_ms"), "%.1f")]
            if not postcopy:
                row += [fmt(a.get("setup_ms")), fmt(sent, "%.1f"),
                        fmt(a.get("passes")), fmt(a.get("mbps")),
                        fmt(a.get("dirty_mibps"))]
            else:
                row += [fmt(sent, "%.1f"), fmt(a.get("passes")),
                        fmt(a.get("dirty_mibps"))]
                for k, _, f in _POSTCOPY_METRICS:
                    v = a.get(k)
                    # QEMU 7.2 reports no fault latency: say so, not "-".
                    row.append("n/a" if v is None and vname == "qemu" and
                               k.startswith("fault_") else fmt(v, f))
            if vname == "godwit" and q is not None:
                row += [ratio(a.get("total_ms"), q.get("total_ms")),
                        ratio(a.get("downtime_ms"), q.get("downtime_ms")),
                        ratio(a.get("gap_ms"), q.get("gap_ms"))]
            else:
                row += ["", "", ""]
            if postcopy:
                row.append(ratio(a.get("fault_p50_us"), floor)
                           if a.get("fault_p50_us") is not None else "")
            chk = a.get("check", a.get("error", "")) or ""
            if postcopy and a.get("completed") and \
                    0 < a.get("switched", 0) < a["completed"]:
                chk = "switched in %d of %d runs; %s" % (
                    a["switched"], a["completed"], chk)
            row.append(chk)
            rows.append(row)
    return rows


def print_table(results, have_qemu, out, floors=None, transport="unix"):
    floor = floor_p50(floors, transport)
    pre = _rows(results, False, floor, have_qemu)
    if pre:
        _table(pre, ["mode", "RAM", "workload", "DL", "VMM", "status",
                     "total ms", "down ms", "gap ms", "setup ms", "MiB sent",
                     "passes", "Mbit/s", "dirty MiB/s", "T ratio", "D ratio",
                     "gap ratio", "check"], out)
    post = _rows(results, True, floor, have_qemu)
    if post:
        if pre:
            print("", file=out)
        print("Postcopy: down = switchover downtime (source), req = "
              "postcopy-requests (source),\nblk = postcopy-blocktime "
              "(destination), p50/p99/max = remote fault latency "
              "(destination,\nx-postcopy-latency-percentiles; QEMU 7.2 "
              "reports none), p50/floor = p50 / UFFDIO_COPY floor\n"
              "(%s, CPUs free: %s us)\n" %
              (transport, fmt(floor, "%.1f")), file=out)
        _table(post, ["mode", "RAM", "workload", "DL", "VMM", "status",
                      "total ms", "down ms", "gap ms", "MiB sent", "passes",
                      "dirty MiB/s"] + [h for _, h, _ in _POSTCOPY_METRICS] +
               ["T ratio", "D ratio", "gap ratio", "p50/floor", "check"],
               out)
    if not have_qemu:
        print("\nQEMU not found: godwit-only rows, no ratios.", file=out)

    split_rows = []
    for key, per_vmm in results:
        a = per_vmm.get("godwit")
        if not a or "split_src" not in a:
            continue
        s = a["split_src"]
        d = a.get("split_dst", {})
        split_rows.append([key[0], "%dG" % (key[1] // GiB), key[2],
                           "%d" % key[3]] +
                          ["%.2f" % s.get(k, 0) for k in
                           ("stop", "sync", "pages", "state", "flush")] +
                          [fmt(d.get("load"), "%.2f"),
                           fmt(a.get("downtime_ms")),
                           fmt(a.get("gap_ms"), "%.1f")])
    if split_rows:
        sh = ["mode", "RAM", "workload", "DL", "src stop", "src sync",
              "src pages",
              "src state", "src flush", "dst load", "downtime", "gap"]
        w = [max(len(r[i]) for r in split_rows + [sh]) for i in range(len(sh))]
        print("\ngodwit x-downtime-split (ms, medians; stop = pausing the "
              "vCPUs, before the STOP event;\npostcopy: pages = the discard "
              "list, state = the package):", file=out)
        print("  ".join(c.rjust(x) for c, x in zip(sh, w)), file=out)
        for r in split_rows:
            print("  ".join(c.rjust(x) for c, x in zip(r, w)), file=out)

    dist_rows = []
    for key, per_vmm in results:
        a = per_vmm.get("godwit")
        if not a or not a.get("latency_dist"):
            continue
        d = a["latency_dist"]
        cells = ["%s:%d" % (_bucket_name(i), n) for i, n in enumerate(d) if n]
        dist_rows.append("%-20s %-3s %-8s %4d  %s" % (
            key[0], "%dG" % (key[1] // GiB), key[2], key[3],
            " ".join(cells)))
    if dist_rows:
        print("\ngodwit postcopy-latency-dist (remote faults per latency "
              "bucket, all runs summed;\nbucket '8us' = [8, 16) us):",
              file=out)
        for r in dist_rows:
            print(r, file=out)


def _bucket_name(i):
    v = 1 << i
    if v >= 1000000:
        return "%gs" % (v / 1e6)
    if v >= 1000:
        return "%gms" % (v / 1e3)
    return "%dus" % v


def print_floors(floors, results, out):
    f = floors
    print("\nRaw floors (this machine, this run):", file=out)
    for k, name in (("unix_Bps", "unix socket, 1 stream"),
                    ("tcp_Bps", "loopback TCP, 1 stream"),
                    ("memcpy_Bps", "memcpy (%s)" % f.get("memcpy_how"))):
        if k in f:
            print("  %-28s %8.0f MiB/s  %8.0f Mbit/s" %
                  (name, f[k] / MiB, f[k] * 8 / 1e6), file=out)
    u = f.get("uffd")
    if u:
        if u.get("error"):
            print("  UFFDIO_COPY floor: not measured (%s)" % u["error"],
                  file=out)
            return
        print("  one 4 KiB page from a peer process into UFFDIO_COPY, us "
              "(median run of %d,\n  %d pages each): place = fault read to "
              "page placed (as godwit times it),\n  fault = touch to "
              "resume in the faulting thread" %
              (max(v.get("runs", 0) for v in u.values()
                   if isinstance(v, dict)),
               max(v.get("pages", 0) for v in u.values()
                   if isinstance(v, dict))), file=out)
        print("    %-5s %-10s %9s %9s %9s %9s" % (
            "", "CPUs", "place p50", "place p99", "fault p50", "fault p99"),
            file=out)
        for k, v in u.items():
            if not isinstance(v, dict):
                continue
            tr, pl = k.split("/", 1)
            print("    %-5s %-10s %9.1f %9.1f %9.1f %9.1f" % (
                tr, pl, v["place_p50_us"], v["place_p99_us"],
                v["fault_p50_us"], v["fault_p99_us"]), file=out)
        for e in u.get("errors", [])[:3]:
            print("  uffd-floor: %s" % e, file=out)


# ---------------------------------------------------------------------------

def report(files, out):
    """Reprint the tables from JSON results: rows of later files replace
    the same rows (mode, RAM, workload, limit) of earlier ones, so noisy
    rows can be rerun alone and merged into the table of a full run."""
    rows = {}
    order = []
    docs = []
    for path in files:
        with open(path) as f:
            doc = json.load(f)
        docs.append(doc)
        for m in doc["args"]["modes"].split(","):
            if MODES[m] not in ACTIVE_MODES:
                ACTIVE_MODES.append(MODES[m])
        # Aggregate again from the runs (a failed boot that was retried
        # did not count at run time and does not here).
        per = {}
        for t in doc["trials"]:
            if t.get("status") == "error" and t.get("retryable"):
                continue
            key = (t["mode"], t["ram"], t["workload"], t["downtime_limit"])
            per.setdefault(key, {}).setdefault(t["vmm"], []).append(t)
        for key, vm in per.items():
            if key not in rows:
                order.append(key)
            rows[key] = {v: aggregate(ts) for v, ts in vm.items()}
    mode_order = list(MODES)
    wl_order = ["idle", "ws256", "wholeram"]
    order.sort(key=lambda k: (mode_order.index(k[0]), k[1],
                              wl_order.index(k[2]) if k[2] in wl_order
                              else 9, -k[3]))
    results = [(k, rows[k]) for k in order]
    first = docs[0]
    have_qemu = any("qemu" in v for v in rows.values())
    print("Merged from %s; floors from the first file." % ", ".join(files),
          file=out)
    for path, doc in zip(files, docs):
        a = doc["args"]
        ld = doc.get("load", {})
        print("  %s: repeat %s, modes %s, RAM %s, workloads %s, load "
              "%s -> %s" % (path, a.get("repeat"), a.get("modes"),
                            a.get("ram"), a.get("workloads"),
                            " ".join("%.2f" % x for x in ld.get("start", [])),
                            " ".join("%.2f" % x for x in ld.get("end", []))),
              file=out)
    print("", file=out)
    print_table(results, have_qemu, out, first.get("floors"),
                first["args"].get("transport", "unix"))
    if first.get("floors"):
        print_floors(first["floors"], results, out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        if len(sys.argv) < 3:
            sys.exit("usage: migrate-bench.py --report RESULTS.json...")
        report(sys.argv[2:], sys.stdout)
        return
    ap = argparse.ArgumentParser(
        description="godwit vs QEMU live-migration benchmark "
                    "(docs/devel/benchmarks.md)")
    ap.add_argument("--build", default=os.path.join(SRC_ROOT, "build"),
                    help="godwit build directory (default: %(default)s)")
    ap.add_argument("--godwit", help="godwit binary (default: BUILD/godwit)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"),
                    help="QEMU binary (default: from PATH); 'none' to skip")
    ap.add_argument("--vmms", default="godwit,qemu")
    ap.add_argument("--qemu-max-bandwidth", type=int,
                    default=QEMU_UNLIMITED_BW,
                    help="max-bandwidth given to QEMU, B/s "
                         "(default: %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="a quick look: 1 run, 1G only, downtime-limit 300, "
                         "smaller floors (explicit options still win)")
    ap.add_argument("--ram", default=None,
                    help="comma-separated RAM sizes (default: 1G,4G)")
    ap.add_argument("--workloads", default="ws256,wholeram",
                    help="from idle, ws256, wholeram (default: %(default)s)")
    ap.add_argument("--modes",
                    default="precopy,postcopy-after-pass,postcopy-pure",
                    help="comma-separated, from: %s (default: %%(default)s)"
                    % ", ".join(MODES))
    ap.add_argument("--downtime-limits", default=None,
                    help="downtime-limit values in ms for precopy "
                         "(default: 300,10)")
    ap.add_argument("--postcopy-downtime-limits", default=None,
                    help="downtime-limit values in ms for postcopy-pure "
                         "(default: 300; it switches before any limit "
                         "matters)")
    ap.add_argument("--after-pass-downtime-limits", default=None,
                    help="downtime-limit values in ms for "
                         "postcopy-after-pass (default: 300,1: at 300 "
                         "precopy may converge at the end of the first "
                         "pass, before the switch; 1 keeps it from "
                         "converging, so the switch always happens)")
    ap.add_argument("--floor-pages", type=int, default=None,
                    help="pages per UFFDIO_COPY floor run (default: 2000)")
    ap.add_argument("--uffd-floor", action="store_true",
                    help="measure the UFFDIO_COPY floor even without a "
                         "postcopy mode")
    ap.add_argument("--floors-only", action="store_true",
                    help="measure and print the floors, no migrations")
    ap.add_argument("--ws-rate", type=int, default=256,
                    help="dirty rate of the 256 MiB working set, MiB/s "
                         "(default: %(default)s)")
    ap.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per row, the table shows medians "
                         "(default: 3; --quick: 1)")
    ap.add_argument("--repeat-no-converge", action="store_true",
                    help="repeat rows whose first run did not converge "
                         "(by default they run once: the result is the same)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds before a migration counts as not "
                         "converging and is cancelled (default: %(default)s)")
    ap.add_argument("--boot-timeout", type=float, default=60.0)
    ap.add_argument("--no-floors", action="store_true")
    ap.add_argument("--json", default="migrate-bench.json",
                    help="results file (default: %(default)s)")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep each trial's temp dir (serial logs, stderr)")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--report", metavar="JSON", nargs="+",
                    help="only reprint the tables from result files (must "
                         "come first); rows of later files replace those "
                         "of earlier ones")
    args = ap.parse_args()
    quick = {"repeat": 1, "ram": "1G", "downtime_limits": "300",
             "postcopy_downtime_limits": "300",
             "after_pass_downtime_limits": "1", "floor_pages": 500}
    full = {"repeat": 3, "ram": "1G,4G", "downtime_limits": "300,10",
            "postcopy_downtime_limits": "300",
            "after_pass_downtime_limits": "300,1", "floor_pages": 2000}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    log = (lambda *a: None) if args.quiet else \
        (lambda *a: print(*a, file=sys.stderr, flush=True))

    godwit = args.godwit or os.path.join(args.build, "godwit")
    guests = {g: os.path.join(args.build, "tests", "guest", g + ".elf")
              for g in ("tick", "idle")}
    for p in [godwit] + list(guests.values()):
        if not os.access(p, os.R_OK):
            sys.exit("migrate-bench: %s not found; build with "
                     "'ninja -C %s' first." % (p, args.build))
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("migrate-bench: /dev/kvm is not accessible.")
    # Run copies: a rebuild of the tree during a long run (other work on the
    # same build dir) must neither break a trial nor mix two binaries.
    snap = tempfile.mkdtemp(prefix="gw-bench-bin-")
    atexit.register(shutil.rmtree, snap, True)
    build_info = {"godwit": godwit,
                  "godwit_mtime": time.strftime(
                      "%Y-%m-%d %H:%M:%S",
                      time.localtime(os.path.getmtime(godwit)))}
    try:
        build_info["commit"] = subprocess.run(
            ["git", "-C", SRC_ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True).stdout.strip()
        build_info["dirty"] = bool(subprocess.run(
            ["git", "-C", SRC_ROOT, "status", "--porcelain", "-uno"],
            capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    godwit = shutil.copy2(godwit, os.path.join(snap, "godwit"))
    guests = {g: shutil.copy2(p, os.path.join(snap, g + ".elf"))
              for g, p in guests.items()}

    vmms = []
    want = args.vmms.split(",")
    if "godwit" in want:
        vmms.append(VMM("godwit", godwit, GODWIT_UNLIMITED_BW))
    have_qemu = False
    if "qemu" in want:
        if args.qemu and args.qemu != "none" and shutil.which(args.qemu):
            vmms.append(VMM("qemu", args.qemu, args.qemu_max_bandwidth))
            have_qemu = True
        else:
            log("migrate-bench: QEMU not found: godwit-only rows.")

    for m in args.modes.split(","):
        if m not in MODES:
            sys.exit("migrate-bench: unknown mode %r (known: %s)"
                     % (m, ", ".join(MODES)))
        ACTIVE_MODES.append(MODES[m])
    workloads = make_workloads(args.ws_rate)
    wls = []
    for w in args.workloads.split(","):
        if w not in workloads:
            sys.exit("migrate-bench: unknown workload %r" % w)
        wls.append(workloads[w])
    rams = [parse_size(r) for r in args.ram.split(",")]
    def dl_list(mode):
        return [int(x) for x in getattr(args, mode.dl_option).split(",")]

    load_start = os.getloadavg()
    t_start = time.time()
    floors = {} if args.no_floors else measure_floors(log, args)
    if args.floors_only:
        print_floors(floors, [], sys.stdout)
        return

    results = []
    all_trials = []
    for mode in ACTIVE_MODES:
        for ram in rams:
            for wl in wls:
                for dl in dl_list(mode):
                    key = (mode.name, ram, wl.name, dl)
                    per_vmm = {}
                    for vmm in vmms:
                        trials = []
                        for i in range(args.repeat):
                            log("%s %s %dG %s DL=%d run %d/%d ..." %
                                (vmm.name, mode.name, ram // GiB, wl.name,
                                 dl, i + 1, args.repeat))
                            t = run_trial(vmm, mode, wl, ram, dl, args,
                                          guests, log)
                            for _ in range(2):
                                if t.get("status") != "error" or \
                                        not t.get("retryable"):
                                    break
                                # A host hiccup before the migration: up
                                # to two more tries, the failed ones kept
                                # in the JSON.
                                log("   -> %s; once more" % t["error"])
                                all_trials.append(t)
                                t = run_trial(vmm, mode, wl, ram, dl, args,
                                              guests, log)
                                t["retry_of_error"] = True
                            log("   -> %s total=%s down=%s gap=%s "
                                "passes=%s%s load=%.1f %s" %
                                (t.get("status"), t.get("total_ms"),
                                 t.get("downtime_ms"),
                                 fmt(t.get("gap_ms"), "%.1f"),
                                 t.get("passes"),
                                 "" if not mode.postcopy else
                                 " req=%s blk=%s p50=%s p99=%s" % (
                                     t.get("postcopy_requests"),
                                     t.get("blocktime_ms"),
                                     fmt(t.get("fault_p50_us"), "%.1f"),
                                     fmt(t.get("fault_p99_us"), "%.1f")),
                                 t.get("load1", 0),
                                 t.get("check", t.get("error", ""))))
                            trials.append(t)
                            all_trials.append(t)
                            if t.get("status") == "no-converge" and \
                                    not args.repeat_no_converge:
                                break
                        per_vmm[vmm.name] = aggregate(trials)
                    results.append((key, per_vmm))

    out = sys.stdout
    load_end = os.getloadavg()
    print("\nMigration benchmark: %s transport, max-bandwidth unlimited "
          "(godwit 0, QEMU %d B/s), medians of %d run(s), timeout %.0f s" %
          (args.transport, args.qemu_max_bandwidth, args.repeat,
           args.timeout),
          file=out)
    print("%s; %.0f min; load average (1/5/15 min) at start %.2f %.2f "
          "%.2f, at end %.2f %.2f %.2f; %d CPUs" %
          (time.strftime("%Y-%m-%d %H:%M", time.localtime(t_start)),
           (time.time() - t_start) / 60, *load_start, *load_end,
           os.cpu_count() or 0), file=out)
    print("godwit: %s (built %s), tree at %s%s" % (
        build_info["godwit"], build_info["godwit_mtime"],
        build_info.get("commit", "?"),
        " plus uncommitted changes" if build_info.get("dirty") else ""),
        file=out)
    print("DL = downtime-limit ms; gap = source STOP to destination RESUME "
          "(event timestamps); ratios = godwit/QEMU (< 1: godwit better)\n",
          file=out)
    print_table(results, have_qemu, out, floors, args.transport)
    if floors:
        print_floors(floors, results, out)

    doc = {
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "python": platform.python_version()},
        "args": vars(args),
        "qemu": args.qemu if have_qemu else None,
        "floors": floors,
        "load": {"start": load_start, "end": load_end},
        "build": build_info,
        "rows": [{"mode": k[0], "ram": k[1], "workload": k[2],
                  "downtime_limit": k[3], "results": v}
                 for k, v in results],
        "trials": all_trials,
    }
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print("\nJSON: %s" % os.path.abspath(args.json), file=out)


if __name__ == "__main__":
    main()
