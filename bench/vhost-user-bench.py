#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vhost-user migration benchmark: godwit side by side with QEMU 7.2.

gwos (tests/guest/os, -smp 2, net=on) exchanges numbered frames through a
virtio-net-pci NIC whose data plane is a vhost-user back-end (DPDK's
testpmd reflecting them with io forwarding, or our example back-end),
one back-end per side, and is migrated by godwit and by QEMU on the same
KVM: precopy, postcopy after a pass, pure postcopy, and after a pass with
a 4 MiB/s postcopy stream (MODES). Per run: total time and downtime as
each VMM reports them, the STOP->RESUME gap, frames lost across the move
and the longest gap in the guest's frame stream (gwos's own counters),
frames corrupted, guest memory the workload found damaged, and the
destination back-end's postcopy
faults with their resolution latency (p50/p99) as godwit sees them and as
the example back-end sees them. Python 3 stdlib only; the QMP client is
bench/gwqmp.py, the process and serial helpers are in bench/gwbench.py.
docs/devel/benchmarks.md, section "vhost-user", explains it.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)

sys.path.insert(0, HERE)
import gwqmp  # noqa: E402
from gwbench import (GODWIT_UNLIMITED_BW, QEMU_UNLIMITED_BW,  # noqa: E402
                     MiB, SerialFile, fmt, markdown_table, parse_size,
                     postcopy_trigger, spawn, stderr_tails, stop_process,
                     teardown)

MAC = "52:54:00:12:34:56"

# gwos's results page (tests/guest/os/gwos-results.h).
RESULTS_GPA = 0x4000
RESULTS_SIZE = 0x2000
RESULTS_MAGIC = 0x31534552534f5747
NET_OFF = 0x1100
NET_FIELDS = {           # name: offset in GwosNetResults (all u64 but state)
    "tx": 0x40, "rx": 0x48, "lost": 0x50, "dup": 0x58, "reorder": 0x60,
    "late": 0x68, "corrupt": 0x70, "foreign": 0x78, "maxgap_ns": 0x80,
    "gap_hb_ns": 0x88, "probes": 0x160, "skipped": 0x168,
}

NET_LINE = re.compile(r"^net t=(\d+)\.(\d+) (.*)$")
GODWIT_PC_END = re.compile(
    r"vhost-user back-end '[^']*': postcopy ended: (\d+) page faults, (\d+) "
    r"pages woken after (\d+) us \(p50\), (\d+) us \(p99\), (\d+) still waiting")

MODES = {
    # name: (postcopy, switch after pass N (0: at once), downtime-limit ms,
    #        max-postcopy-bandwidth bytes/s (0: unlimited, both VMMs' default))
    "precopy": (False, None, 300, 0),
    "postcopy-after-pass": (True, 2, 1, 0),
    "postcopy-pure": (True, 0, 300, 0),
    # After a pass with the background stream at 4 MiB/s: the RX buffers
    # the source back-end wrote last are still on the source when the
    # destination back-end writes them again, so it faults and the fault
    # path (read its userfaultfd, request, place, wake) is measured. Without
    # the limit, or from the start, gwos's own touches of the same pages (its
    # rings are in .bss, first in the stream) usually win: no back-end faults.
    "postcopy-after-pass-4M": (True, 2, 1, 4 * MiB),
    # From the start at 4 MiB/s: no back-end faults either (gwos touches its
    # rings first), but the vCPUs' own faults dominate: how each VMM serves
    # a guest that writes its memory in order. Not run by default.
    "postcopy-pure-4M": (True, 0, 300, 4 * MiB),
}
DEFAULT_MODES = ["precopy", "postcopy-after-pass", "postcopy-pure", "postcopy-after-pass-4M"]


# ---------------------------------------------------------------------------
# Processes

def spawn_piped(argv, log_path, env=None):
    """spawn() with a pipe on stdin (testpmd leaves on Enter) and both
    output streams in one log."""
    log = open(log_path, "wb")
    # testpmd's forwarding core polls: at the VMMs' priority two of them
    # (source and destination) would take both CPUs of a small host. The
    # functional tests run back-ends at nice +10 for the same reason.
    p = spawn(argv, log, subprocess.STDOUT, stdin=subprocess.PIPE, env=env,
              nice=10)
    log.close()
    return p


class Backend:
    """One vhost-user back-end process, a client that retries until the
    VMM listens."""

    def __init__(self, kind, bins, tmp, name, seq):
        self.kind = kind
        self.log_path = os.path.join(tmp, name + ".log")
        self.stats_path = os.path.join(tmp, name + ".json")
        self.sock = os.path.join(tmp, name + ".sock")
        if kind == "testpmd":
            argv = [bins["testpmd"], "--no-huge", "-m", "512", "--no-pci",
                    "--lcores=0@(0,1),1@(0,1)",
                    "--file-prefix=gwvubench%d-%d" % (os.getpid(), seq),
                    "--vdev", "net_vhost0,iface=%s,client=1,postcopy-support=1"
                    % self.sock,
                    "--", "--total-num-mbufs=16384", "--no-mlockall",
                    "--forward-mode=io", "--port-topology=loop", "-a"]
            env = None
        else:
            argv = [bins["example"], "--socket-path", self.sock, "--client",
                    "--postcopy", "--stats-file", self.stats_path,
                    "--interval", "1"]
            env = dict(os.environ, LD_LIBRARY_PATH=bins["example_lib"])
        self.argv = argv
        self.proc = spawn_piped(argv, self.log_path, env)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """Ends it the graceful way (its final report), then reaps it."""
        if self.proc.poll() is None:
            try:
                if self.kind == "testpmd":
                    self.proc.stdin.write(b"\n")
                    self.proc.stdin.flush()
                else:
                    self.proc.send_signal(signal.SIGTERM)
            except (BrokenPipeError, OSError):
                pass
        stop_process(self.proc, grace=10.0)
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stats(self):
        """The example's final counters (its stats file), or None."""
        if self.kind != "example":
            return None
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


class Vmm:
    def __init__(self, name, binary, unlimited_bw):
        self.name = name
        self.binary = binary
        self.unlimited_bw = unlimited_bw

    def argv(self, ram, kernel, append, sock, serial, qmp, incoming=None):
        mem = "%dM" % (ram // MiB)
        a = [self.binary, "-accel", "kvm"]
        if self.name == "qemu":
            # kvm_pvm refuses the ARCH_CAPABILITIES MSR and QEMU aborts on it.
            a += ["-cpu", "host,-arch-capabilities"]
        a += ["-smp", "2", "-m", mem, "-nodefaults", "-no-user-config",
              "-display", "none",
              "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
              "-machine", "pc,memory-backend=mem",
              "-chardev", "socket,id=chr0,path=%s,server=on" % sock,
              "-netdev", "vhost-user,id=net0,chardev=chr0",
              "-device", "virtio-net-pci,netdev=net0,mac=" + MAC,
              "-kernel", kernel, "-append", append,
              "-serial", "file:" + serial,
              "-qmp", "unix:%s,server=on,wait=off" % qmp,
              "-device", "isa-debug-exit,iobase=0x501"]
        if incoming:
            a += ["-incoming", incoming]
        return a


# ---------------------------------------------------------------------------
# What the guest says

def net_lines(serial):
    """gwos's "net t=" lines as dicts (complete lines only)."""
    out = []
    for host_t, line in serial.lines:
        m = NET_LINE.match(line)
        if not m:
            continue
        d = {"host": host_t, "t": int(m.group(1)) + int(m.group(2)) / 1000.0}
        for kv in m.group(3).split():
            k, _, v = kv.partition("=")
            if v.isdigit():
                d[k] = int(v)
        out.append(d)
    return out


def read_results(q, tmp, name):
    path = os.path.join(tmp, name + ".results")
    q.cmd("pmemsave", {"val": RESULTS_GPA, "size": RESULTS_SIZE,
                       "filename": path})
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < RESULTS_SIZE or struct.unpack_from("<Q", b, 0)[0] != RESULTS_MAGIC:
        raise RuntimeError("%s: no gwos results page" % name)
    r = {"corrupt_total": struct.unpack_from("<Q", b, 0x48)[0],
         "net_state": struct.unpack_from("<I", b, NET_OFF)[0]}
    for k, off in NET_FIELDS.items():
        r[k] = struct.unpack_from("<Q", b, NET_OFF + off)[0]
    # Per vCPU (GwosCpuResults at 0x100, 128 bytes each): what a damaged
    # page looked like to the memory workload, for whoever chases it.
    r["cpu_corrupt"] = [struct.unpack_from("<Q", b, 0x100 + 128 * i + 0x30)[0]
                        for i in range(2)]
    r["cpu_first_bad_addr"] = ["0x%x" % struct.unpack_from("<Q", b, 0x100 + 128 * i + 0x50)[0]
                               for i in range(2)]
    return r


def wait_net(serial, proc, count, timeout, after=0.0):
    """Wait for @count net lines printed after host time @after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        serial.poll()
        text = serial.text()
        if "network workload off" in text:
            raise RuntimeError("gwos: " + next(
                l for l in text.splitlines() if "network workload off" in l))
        if len([l for l in net_lines(serial) if l["host"] > after]) >= count:
            return
        if proc.poll() is not None:
            raise RuntimeError("the VMM exited (status %s)" % proc.returncode)
        time.sleep(0.1)
    raise RuntimeError("no %d net lines from gwos in %.0f s" % (count, timeout))


# ---------------------------------------------------------------------------
# One run

def run_trial(vmm, kind, mode, args, bins, seq, log):
    postcopy, after_pass, dl, pc_bw = MODES[mode]
    tmp = tempfile.mkdtemp(prefix="gw-vubench-")
    trial = {"vmm": vmm.name, "backend": kind, "mode": mode,
             "ram": args.ram, "append": args.append,
             "load1": round(os.getloadavg()[0], 2)}
    procs, qmps, bes = [], [], []
    try:
        p = lambda n: os.path.join(tmp, n)
        s_be = Backend(kind, bins, tmp, "src-be", 2 * seq)
        bes.append(s_be)
        s_err = open(p("src.stderr"), "wb")
        src = spawn(vmm.argv(args.ram_bytes, bins["gwos"], args.append, s_be.sock,
                             p("src.serial"), p("src.qmp")), subprocess.DEVNULL, s_err)
        procs.append(src)
        sq = gwqmp.QMP(p("src.qmp"), timeout=args.boot_timeout)
        qmps.append(sq)
        s_ser = SerialFile(p("src.serial"))
        wait_net(s_ser, src, args.warmup, args.boot_timeout)

        d_be = Backend(kind, bins, tmp, "dst-be", 2 * seq + 1)
        bes.append(d_be)
        d_err = open(p("dst.stderr"), "wb")
        incoming = "unix:" + p("mig.sock")
        dst = spawn(vmm.argv(args.ram_bytes, bins["gwos"], args.append, d_be.sock,
                             p("dst.serial"), p("dst.qmp"), incoming),
                    subprocess.DEVNULL, d_err)
        procs.append(dst)
        dq = gwqmp.QMP(p("dst.qmp"), timeout=args.boot_timeout)
        qmps.append(dq)
        d_ser = SerialFile(p("dst.serial"))  # polled from here on: lines get their times

        caps = [{"capability": "events", "state": True}]
        if postcopy:
            caps += [{"capability": c, "state": True}
                     for c in ("postcopy-ram", "postcopy-blocktime")]
        for q in (sq, dq):
            q.cmd("migrate-set-capabilities", {"capabilities": caps})
        sq.cmd("migrate-set-parameters", {"downtime-limit": dl,
                                          "max-bandwidth": vmm.unlimited_bw,
                                          "max-postcopy-bandwidth": pc_bw})
        trial["downtime_limit"] = dl
        trial["max_postcopy_bandwidth"] = pc_bw
        s_ser.poll()
        base = [l.get("gap_us", 0) for l in net_lines(s_ser)[1:]]
        trial["base_gap_ms"] = max(base) / 1000.0 if base else None
        # The net lines come from the first second on; the memory workload
        # may still be writing its pages for the first time (a slow host):
        # a migration that starts then moves pages being populated.
        trial["src_cpus_working"] = len(re.findall(r"^gwos: cpu \d+ working ",
                                                   s_ser.text(), re.M))

        trigger = postcopy_trigger(after_pass) if postcopy else None
        state = {}
        sq.events.clear()
        t0 = time.monotonic()
        sq.cmd("migrate", {"uri": incoming})
        status = None
        while True:
            sq.pump(0.02)
            dq.pump(0.0)
            d_ser.poll()
            if trigger:
                trigger(sq, state)
            ev = [e for e in sq.events if e["event"] == "MIGRATION"]
            st = ev[-1]["data"]["status"] if ev else None
            if st in ("completed", "failed", "cancelled"):
                status = st
                break
            if time.monotonic() - t0 > args.timeout:
                status = "timeout"
                break
            if src.poll() is not None or dst.poll() is not None:
                status = "a VMM died"
                break
        trial["switched"] = sq.find_event(
            "MIGRATION", lambda e: e["data"]["status"] == "postcopy-active") is not None
        if status != "completed":
            trial["status"] = status
            try:
                trial["error"] = sq.cmd("query-migrate").get("error-desc")
            except (gwqmp.QMPError, OSError) as e:
                trial["error"] = str(e)
            return trial
        t_done = time.time()
        info = sq.cmd("query-migrate")
        trial["status"] = "completed"
        trial["total_ms"] = info.get("total-time")
        trial["downtime_ms"] = info.get("downtime")
        trial["passes"] = info.get("ram", {}).get("dirty-sync-count")
        trial["postcopy_requests"] = info.get("ram", {}).get("postcopy-requests")
        if "x-downtime-split" in info:
            trial["split_src"] = info["x-downtime-split"]
        resume = dq.wait_event("RESUME", 10)
        stop = sq.find_event("STOP")
        trial["stop_resume_ms"] = ((gwqmp.event_time(resume) - gwqmp.event_time(stop)) * 1000
                                   if resume and stop else None)
        dq.wait_event("MIGRATION", 30, lambda e: e["data"]["status"] == "completed")
        dinfo = dq.cmd("query-migrate")
        trial["dst_status"] = dinfo.get("status")
        if "x-downtime-split" in dinfo:
            trial["split_dst"] = dinfo["x-downtime-split"]
        trial["blocktime_ms"] = dinfo.get("postcopy-blocktime")
        if "postcopy-non-vcpu-latency" in dinfo:
            trial["fe_nonvcpu_avg_us"] = dinfo["postcopy-non-vcpu-latency"] / 1000.0
        pct = dinfo.get("x-postcopy-latency-percentiles") or {}
        trial["vmm_faults"] = pct.get("faults")
        trial["vmm_fault_p50_us"] = pct.get("p50")
        trial["vmm_fault_p99_us"] = pct.get("p99")

        # The guest's view: source at the switch, destination after a while.
        s_res = read_results(sq, tmp, "src")
        wait_net(d_ser, dst, args.observe, args.observe + 30)
        dq.cmd("stop")
        d_res = read_results(dq, tmp, "dst")
        d_ser.poll()
        dl_lines = net_lines(d_ser)
        # The move's share: the lines printed on the destination until the
        # first one after completion (its interval holds the switch in
        # precopy, the end of the faults in postcopy); later ones are the
        # host's noise, which base_gap_ms measures before the migration.
        move = [l for l in dl_lines if l["host"] <= t_done]
        move += [l for l in dl_lines if l["host"] > t_done][:1]
        if not move:
            raise RuntimeError("no net line on the destination")
        trial["guest_gap_ms"] = max(l.get("gap_us", 0) for l in move) / 1000.0
        trial["after_gap_ms"] = max(l.get("gap_us", 0) for l in dl_lines) / 1000.0
        trial["src_net"] = s_res
        trial["dst_net"] = d_res
        trial["lost"] = d_res["lost"] - s_res["lost"]
        trial["late"] = d_res["late"] - s_res["late"]
        trial["corrupt"] = d_res["corrupt"]
        trial["dup"] = d_res["dup"]
        trial["mem_corrupt"] = d_res["corrupt_total"]
        trial["frames_after"] = d_res["rx"] - s_res["rx"]
        trial["dst_net_lines"] = len(dl_lines)
        trial["observed_s"] = round(time.time() - t_done, 2)

        # Here, before the reports are read: the back-ends write their final
        # counters as they exit, and a VMM's stderr is whole once it is gone.
        teardown(qmps, procs, [be.stop for be in bes])
        with open(p("dst.stderr"), errors="replace") as f:
            m = GODWIT_PC_END.search(f.read())
        if m:
            trial["fe_faults"], trial["fe_pages"] = int(m.group(1)), int(m.group(2))
            trial["fe_p50_us"], trial["fe_p99_us"] = int(m.group(3)), int(m.group(4))
            trial["fe_waiting"] = int(m.group(5))
        for side, be in (("src", s_be), ("dst", d_be)):
            st = be.stats()
            if st:
                trial[side + "_be"] = {k: st.get(k) for k in (
                    "tx", "reflected", "dropped", "nf_ok", "nf_gaps", "nf_dups",
                    "nf_corrupt", "nf_before_first", "dirty_log_writes", "faults",
                    "fault_ns_p50", "fault_ns_p99", "fault_ns_max", "final")}
        dbe = trial.get("dst_be")
        if dbe and dbe.get("final"):
            trial["be_faults"] = dbe["faults"]
            if dbe["faults"]:
                trial["be_p50_us"] = dbe["fault_ns_p50"] / 1000.0
                trial["be_p99_us"] = dbe["fault_ns_p99"] / 1000.0
        trial["check"] = check(trial, postcopy)
        return trial
    except (gwqmp.QMPError, RuntimeError, OSError) as e:
        trial["status"] = "error"
        trial["error"] = str(e)
        return trial
    finally:
        teardown(qmps, procs, [be.stop for be in bes])
        tails = stderr_tails(tmp, ignore=("waiting for the back-end to connect",
                                          "QEMU waiting for connection"))
        if tails:
            trial["stderr"] = tails
        if trial.get("mem_corrupt") or trial.get("lost"):
            # The guest's own lines about it (serial logs go with the tmp dir).
            try:
                with open(os.path.join(tmp, "dst.serial"), errors="replace") as f:
                    bad = [l.strip() for l in f if "CORRUPT" in l or "corrupt=" in l
                           and "corrupt=0" not in l]
                trial["dst_serial_bad"] = bad[:20]
            except OSError:
                pass
        if args.keep_tmp or trial.get("check", "ok") != "ok":
            trial["tmp"] = tmp        # kept: a failed check's logs are evidence
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        log("%-6s %-7s %-19s %-9s total %s ms, down %s ms, lost %s, gap %s ms, "
            "be faults %s; %s; load %.1f" % (
                vmm.name, kind, mode, trial.get("status"), trial.get("total_ms"),
                trial.get("downtime_ms"), trial.get("lost"),
                fmt(trial.get("guest_gap_ms"), "%.1f"), trial.get("be_faults",
                                                                  trial.get("fe_faults")),
                trial.get("check", trial.get("error")), os.getloadavg()[0]))


def check(trial, postcopy):
    """What a correct run must show; 'ok' or what was wrong."""
    bad = []
    if trial["dst_status"] != "completed":
        bad.append("destination %s" % trial["dst_status"])
    if trial["corrupt"] or trial["dup"] or trial["mem_corrupt"]:
        bad.append("corrupt %d, dup %d, memory %d" % (
            trial["corrupt"], trial["dup"], trial["mem_corrupt"]))
    if trial["frames_after"] <= 0:
        bad.append("no frames on the destination")
    for side in ("src_be", "dst_be"):
        be = trial.get(side)
        if be and be.get("nf_corrupt"):
            bad.append("%s saw %d corrupt frames" % (side, be["nf_corrupt"]))
    if trial.get("fe_waiting"):
        bad.append("%d back-end faults never woken" % trial["fe_waiting"])
    if postcopy and not trial["switched"]:
        bad.append("no switch (completed in precopy)")
    return "ok" if not bad else "; ".join(bad)


# ---------------------------------------------------------------------------
# Tables

NUMERIC = ["total_ms", "downtime_ms", "stop_resume_ms", "lost", "corrupt",
           "guest_gap_ms", "base_gap_ms", "be_faults", "be_p50_us", "be_p99_us",
           "fe_faults", "fe_p50_us", "fe_p99_us", "frames_after", "postcopy_requests"]


def aggregate(trials):
    done = [t for t in trials if t.get("status") == "completed"]
    agg = {"runs": len(trials), "completed": len(done)}
    if not done:
        agg["check"] = "/".join(sorted({str(t.get("status")) for t in trials}))
        errs = [t.get("error") for t in trials if t.get("error")]
        if errs:
            agg["error"] = errs[0]
        return agg
    for k in NUMERIC:
        vals = [t[k] for t in done if t.get(k) is not None]
        if vals:
            agg[k] = statistics.median(vals)
    agg["corrupt_max"] = max(t.get("corrupt", 0) for t in done)
    agg["mem_corrupt_max"] = max(t.get("mem_corrupt", 0) for t in done)
    agg["lost_max"] = max(t.get("lost", 0) for t in done)
    agg["faults_max"] = max((t.get("be_faults", t.get("fe_faults")) or 0) for t in done)
    checks = sorted({t.get("check", "?") for t in done})
    agg["check"] = "ok" if checks == ["ok"] else "; ".join(checks)
    if len(done) < len(trials):
        agg["check"] += " (%d/%d completed)" % (len(done), len(trials))
    return agg


COLUMNS = [
    ("total ms", "total_ms", "%.0f"), ("down ms", "downtime_ms", "%.0f"),
    ("STOP>RESUME ms", "stop_resume_ms", "%.1f"), ("lost", "lost", "%.0f"),
    ("lost max", "lost_max", "%d"), ("corrupt", "corrupt_max", "%d"),
    ("mem bad", "mem_corrupt_max", "%d"), ("maxgap ms", "guest_gap_ms", "%.1f"),
    ("base gap ms", "base_gap_ms", "%.1f"),
    ("be faults", "be_faults", "%.0f"), ("faults max", "faults_max", "%d"),
    ("be p50 us", "be_p50_us", "%.0f"),
    ("be p99 us", "be_p99_us", "%.0f"),
    ("fe faults", "fe_faults", "%.0f"), ("fe p50 us", "fe_p50_us", "%.0f"),
    ("fe p99 us", "fe_p99_us", "%.0f"),
]


def print_table(rows, out):
    """rows: list of (backend, mode, vmm, agg)."""
    hdr = ["back-end", "mode", "VMM"] + [c[0] for c in COLUMNS] + ["check"]
    table_rows = []
    for kind, mode, vmm, agg in rows:
        cells = [kind, mode, vmm]
        for _, key, f in COLUMNS:
            v = agg.get(key)
            if v is None and key.startswith("be_") and kind == "testpmd":
                v = "n/a"
            elif v is None and key.startswith("fe_") and vmm == "qemu":
                v = "n/a"
            cells.append(fmt(v, f))
        cells.append(agg.get("check", "-"))
        table_rows.append(cells)
    markdown_table(hdr, table_rows, out)


def print_targets(rows, out):
    """The issue's targets, godwit against QEMU, row by row."""
    by = {(k, m, v): a for k, m, v, a in rows}
    print("\nTargets (godwit vs QEMU, medians):", file=out)
    for kind, mode in sorted({(k, m) for k, m, _, _ in rows}):
        g, q = by.get((kind, mode, "godwit")), by.get((kind, mode, "qemu"))
        if not g or not q or "total_ms" not in g or "total_ms" not in q:
            print("  %-7s %-19s: not comparable (one VMM not run, or no run of it completed)" % (kind, mode),
                  file=out)
            continue
        res = ["corrupt %s" % ("0 met" if not g.get("corrupt_max") else
                               "%d MISSED" % g["corrupt_max"]),
               "guest memory %s" % ("intact" if not g.get("mem_corrupt_max") else
                                    "%d bad words MISSED" % g["mem_corrupt_max"]),
               "lost %s <= %s %s" % (fmt(g.get("lost")), fmt(q.get("lost")),
                                     "met" if g.get("lost", 0) <= q.get("lost", 0)
                                     else "MISSED"),
               "worst run lost %s <= %s %s" % (
                   fmt(g.get("lost_max")), fmt(q.get("lost_max")),
                   "met" if g.get("lost_max", 0) <= q.get("lost_max", 0) else "MISSED")]
        if MODES[mode][0]:
            res.append("maxgap %s <= %s ms %s" % (
                fmt(g.get("guest_gap_ms"), "%.1f"), fmt(q.get("guest_gap_ms"), "%.1f"),
                "met" if g.get("guest_gap_ms", 0) <= q.get("guest_gap_ms", 0)
                else "MISSED"))
            res.append("total %s <= %s ms %s" % (
                fmt(g["total_ms"]), fmt(q["total_ms"]),
                "met" if g["total_ms"] <= q["total_ms"] else "MISSED"))
        print("  %-7s %-19s: %s" % (kind, mode, ", ".join(res)), file=out)


def rows_of(trials, backends, modes, vmms):
    rows = []
    for kind in backends:
        for mode in modes:
            for vmm in vmms:
                ts = [t for t in trials if (t["backend"], t["mode"], t["vmm"]) ==
                      (kind, mode, vmm)]
                if ts:
                    rows.append((kind, mode, vmm, aggregate(ts)))
    return rows


def report(files, out):
    trials, meta = [], None
    for path in files:
        with open(path) as f:
            d = json.load(f)
        meta = meta or d
        keys = {(t["backend"], t["mode"], t["vmm"]) for t in d["trials"]}
        trials = [t for t in trials if (t["backend"], t["mode"], t["vmm"]) not in keys]
        trials += d["trials"]
    order = lambda field, known: [x for x in known if any(t[field] == x for t in trials)]
    rows = rows_of(trials, order("backend", ["testpmd", "example"]),
                   order("mode", list(MODES)), order("vmm", ["godwit", "qemu"]))
    print(meta.get("header", ""), file=out)
    print_table(rows, out)
    print_targets(rows, out)


# ---------------------------------------------------------------------------

def stage_binaries(args, tmp):
    """Copies of what runs, so a rebuild during the run changes nothing."""
    b = os.path.abspath(args.build)
    bins = {}
    for key, rel in (("godwit", "godwit"), ("gwos", "tests/guest/os/gwos.elf"),
                     ("example", "contrib/vhost-user-net-example/godwit-vhost-user-net")):
        path = os.path.join(b, rel)
        if not os.path.exists(path):
            sys.exit("%s is not built (ninja -C %s)" % (path, args.build))
        bins[key] = shutil.copy2(path, os.path.join(tmp, os.path.basename(rel)))
    libdir = os.path.join(b, "contrib/libvhost-user-gw")
    for n in os.listdir(libdir):
        if n.startswith("libgwvhostuser.so") and not os.path.isdir(os.path.join(libdir, n)):
            shutil.copy2(os.path.join(libdir, n), os.path.join(tmp, n), follow_symlinks=True)
    bins["example_lib"] = tmp
    bins["testpmd"] = args.testpmd
    return bins


def version_of(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        if len(sys.argv) < 3:
            sys.exit("usage: vhost-user-bench.py --report RESULTS.json...")
        report(sys.argv[2:], sys.stdout)
        return
    ap = argparse.ArgumentParser(
        description="godwit vs QEMU: migrating gwos with a vhost-user NIC "
                    "(docs/devel/benchmarks.md)")
    ap.add_argument("--build", default=os.path.join(SRC_ROOT, "build"),
                    help="godwit build directory (default: %(default)s)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"),
                    help="QEMU binary (default: from PATH)")
    ap.add_argument("--testpmd", default=shutil.which("dpdk-testpmd"),
                    help="DPDK testpmd (default: dpdk-testpmd from PATH)")
    ap.add_argument("--vmms", default="godwit,qemu")
    ap.add_argument("--backends", default="testpmd,example",
                    help="from testpmd, example (default: %(default)s)")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES),
                    help="from %s (default: %%(default)s)" % ", ".join(MODES))
    ap.add_argument("--ram", default="512M", help="guest RAM (default: %(default)s)")
    ap.add_argument("--append", default="work=ws mem=64M rate=128 netrate=1000",
                    help="gwos arguments besides net=on (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per row, the table shows medians (default 3; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="one run per row")
    ap.add_argument("--warmup", type=int, default=3,
                    help="net lines (guest seconds) before migrating (default: %(default)s)")
    ap.add_argument("--observe", type=int, default=4,
                    help="net lines on the destination after completion; lost frames "
                         "are settled 2-3 s after they were sent (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a migration may take (default: %(default)s)")
    ap.add_argument("--boot-timeout", type=float, default=120.0)
    ap.add_argument("--json", default="vhost-user-bench.json",
                    help="results file (default: %(default)s)")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep each run's temp dir (serial logs, back-end logs)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.ram_bytes = parse_size(args.ram)
    args.append = "net=on " + args.append

    vmms = args.vmms.split(",")
    backends = args.backends.split(",")
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            sys.exit("unknown mode %r (from %s)" % (m, ", ".join(MODES)))
    if "testpmd" in backends and not args.testpmd:
        sys.exit("dpdk-testpmd is not installed (Debian: apt-get install dpdk-dev); "
                 "use --backends example")
    if "qemu" in vmms and not args.qemu:
        sys.exit("qemu-system-x86_64 is not installed; use --vmms godwit")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    tmp = tempfile.mkdtemp(prefix="gw-vubench-bin-")
    try:
        bins = stage_binaries(args, tmp)
        known = {"godwit": Vmm("godwit", bins["godwit"], GODWIT_UNLIMITED_BW),
                 "qemu": Vmm("qemu", args.qemu, QEMU_UNLIMITED_BW)}
        vmm_objs = [known[n] for n in vmms]
        started = time.strftime("%Y-%m-%d %H:%M")
        load0 = os.getloadavg()
        t_start = time.monotonic()
        trials = []
        seq = 0
        # Rounds: each repeat runs every row once, so a noisy minute of the
        # shared host spreads over the rows instead of landing on one.
        for rep in range(args.repeat):
            for kind in backends:
                for mode in modes:
                    for vmm in vmm_objs:
                        t = run_trial(vmm, kind, mode, args, bins, seq, log)
                        t["round"] = rep
                        trials.append(t)
                        seq += 1
        load1 = os.getloadavg()
        header = ("vhost-user migration benchmark %s; %.0f min; -smp 2 -m %s, gwos '%s'; "
                  "medians of %d run(s); load average at start %.2f, at end %.2f; %s; "
                  "%d CPUs" % (started, (time.monotonic() - t_start) / 60, args.ram,
                               args.append, args.repeat, load0[0], load1[0],
                               platform.release(), os.cpu_count()))
        rows = rows_of(trials, backends, modes, vmms)
        result = {"started": started, "header": header, "args": vars(args),
                  "versions": {"qemu": version_of([args.qemu, "--version"]) if args.qemu
                               else None,
                               "testpmd": "DPDK 22.11 (Debian dpdk %s)" % (version_of(
                                   ["dpkg-query", "-W", "-f", "${Version}\n", "dpdk"]) or "?")},
                  "git": version_of(["git", "-C", SRC_ROOT, "rev-parse", "--short", "HEAD"]),
                  "trials": trials,
                  "medians": [{"backend": k, "mode": m, "vmm": v, **a} for k, m, v, a in rows]}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(header)
        print_table(rows, sys.stdout)
        print_targets(rows, sys.stdout)
        print("\nJSON: %s" % os.path.abspath(args.json))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
