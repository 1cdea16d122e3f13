#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Postcopy recovery benchmark: godwit and QEMU cut mid-postcopy and recovered.

Boots gwos (tests/guest/os, -smp 2, a working set over all of RAM) under
godwit and under qemu-system-x86_64 (-enable-kvm -cpu host,-arch-capabilities),
migrates it with pure postcopy (migrate-start-postcopy right after migrate)
through a forwarding proxy of this script's own, cuts the proxy once the
guest runs on the destination, keeps the link down for --cut seconds, then
recovers (migrate-recover on the destination, migrate resume=true on the
source) and lets the migration finish. Per run it prints:

  recover ms   migrate-recover sent -> both sides report postcopy-active
               again (host times of the MIGRATION events as they were read)
  guest gap    the guest-measured largest stall per vCPU across the whole
               migration (gwos heartbeats), which includes the cut
  paused       cut -> both sides report postcopy-paused
  missing      what the source still had to send when it paused (a vCPU
               stalls for the whole cut only if it needs one of those pages;
               QEMU 7.2 finishes its current pass before it switches, so it
               starts postcopy with much less missing than godwit)
  check        no CORRUPT line, no clock going back, heartbeats after the end

Python 3 stdlib only; QMP through bench/gwqmp.py, the gwos serial tap and
process helpers from bench/gwbench.py.
"""

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)

sys.path.insert(0, HERE)
import gwqmp  # noqa: E402
from gwbench import (GODWIT_UNLIMITED_BW, QEMU_UNLIMITED_BW,  # noqa: E402
                     GiB, GwosVmm, MiB, SerialTap, fmt, guest_gaps, heartbeats,
                     markdown_table, median, parse_size, problems_in, spawn,
                     teardown, wait_heartbeats)


class Proxy:
    """One forwarded unix-socket connection that cut() drops at once."""

    def __init__(self, path, target):
        self.path, self.target = path, target
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(path)
        self.ls.listen(1)
        self.rd, self.wr = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        a, _ = self.ls.accept()
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.connect(self.target)
        peer = {a: b, b: a}
        try:
            while True:
                r, _, _ = select.select([a, b, self.rd], [], [])
                if self.rd in r:
                    break
                for s in r:
                    d = s.recv(1 << 16)
                    if not d:
                        raise OSError("closed")
                    peer[s].sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        os.write(self.wr, b"x")
        self.thread.join(5)
        self.ls.close()


def status_event(q, status):
    return q.find_event("MIGRATION", lambda e: e["data"]["status"] == status)


def wait_status(q, status, timeout, nth=1):
    deadline = time.monotonic() + timeout
    while True:
        ev = [e for e in q.events if e["event"] == "MIGRATION"
              and e["data"]["status"] == status]
        if len(ev) >= nth:
            return ev[nth - 1]
        if time.monotonic() > deadline:
            raise RuntimeError("no MIGRATION %s within %.0f s (query-migrate: %s)"
                               % (status, timeout, q.cmd("query-migrate")))
        q.pump(0.02)


def run_one(vmm, ram, append, args):
    tmp = tempfile.mkdtemp(prefix="gw-recbench-")
    p = lambda n: os.path.join(tmp, n)
    r = {"vmm": vmm.name, "ram": ram, "cut_s": args.cut,
         "load1_before": round(os.getloadavg()[0], 2)}
    procs, qmps, taps, proxy = [], [], [], None
    try:
        s_err, d_err = open(p("src.stderr"), "wb"), open(p("dst.stderr"), "wb")
        src = spawn(vmm.argv(ram, 2, args.guest, append, p("src.ser"), p("src.qmp")),
                    subprocess.DEVNULL, s_err)
        procs.append(src)
        sq = gwqmp.QMP(p("src.qmp"))
        qmps.append(sq)
        stap = SerialTap(p("src.ser"))
        taps.append(stap)
        sq.cmd("cont")
        deadline = time.monotonic() + args.boot_timeout
        while True:
            lines, _ = stap.snapshot()
            hb = heartbeats(lines)
            if all(len(hb.get(c, [])) >= 3 for c in (0, 1)):
                break
            if src.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("guest not working within %d s" % args.boot_timeout)
            time.sleep(0.05)

        dst = spawn(vmm.argv(ram, 2, args.guest, append, p("dst.ser"), p("dst.qmp"),
                             "unix:" + p("mig.sock")), subprocess.DEVNULL, d_err)
        procs.append(dst)
        dq = gwqmp.QMP(p("dst.qmp"))
        qmps.append(dq)
        dtap = SerialTap(p("dst.ser"))
        taps.append(dtap)
        caps = [{"capability": c, "state": True} for c in ("events", "postcopy-ram")]
        for q in (sq, dq):
            q.cmd("migrate-set-capabilities", {"capabilities": caps})
        sq.cmd("migrate-set-parameters", {"downtime-limit": 1,
                                          "max-bandwidth": vmm.unlimited_bw})
        while not os.path.exists(p("mig.sock")):
            time.sleep(0.01)
        proxy = Proxy(p("proxy.sock"), p("mig.sock"))
        sq.events.clear()
        dq.events.clear()
        t_mig = time.time()
        sq.cmd("migrate", {"uri": "unix:" + p("proxy.sock")})
        sq.cmd("migrate-start-postcopy")
        dq.wait_event("RESUME", 60)
        time.sleep(args.before_cut)
        t_cut = time.time()
        proxy.cut()
        ps = wait_status(sq, "postcopy-paused", 30)
        pd = wait_status(dq, "postcopy-paused", 30)
        r["paused_after_cut_ms"] = (max(gwqmp.event_time(ps), gwqmp.event_time(pd))
                                    - t_cut) * 1000
        # How much the destination still lacked: a vCPU stalls for the whole
        # cut only if it touches one of these pages.
        rem = sq.cmd("query-migrate").get("ram", {}).get("remaining")
        r["remaining_at_cut_mib"] = rem / MiB if rem is not None else None
        time.sleep(max(0.0, t_cut + args.cut - time.time()))
        t_back = time.time()
        dq.cmd("migrate-recover", {"uri": "unix:" + p("recover.sock")})
        sq.cmd("migrate", {"uri": "unix:" + p("recover.sock"), "resume": True})
        a_s = wait_status(sq, "postcopy-active", 30, nth=2)
        a_d = wait_status(dq, "postcopy-active", 30, nth=2)
        r["recover_ms"] = (max(gwqmp.event_time(a_s), gwqmp.event_time(a_d)) - t_back) * 1000
        wait_status(sq, "completed", args.timeout)
        wait_status(dq, "completed", 60)
        t_done = time.time()
        r["status"] = "completed"
        r["total_ms"] = sq.cmd("query-migrate").get("total-time")

        wait_heartbeats(dtap, t_done)
        slines, _ = stap.snapshot()
        dlines, _ = dtap.snapshot()
        sh, dh = heartbeats(slines), heartbeats(dlines)
        problems = problems_in(slines, "source") + problems_in(dlines, "destination")
        r["guest_gap_ms"], gap_problems = guest_gaps(sh, dh, t_mig, t_done)
        problems += gap_problems
        r["check"] = "ok" if not problems else "; ".join(problems[:3])
        return r
    except (gwqmp.QMPError, RuntimeError, OSError) as e:
        r["status"] = "error"
        r["error"] = str(e)
        return r
    finally:
        if proxy and proxy.thread.is_alive():
            proxy.cut()
        teardown(qmps, procs, [t.close for t in taps])
        if args.keep_tmp:
            r["tmp"] = tmp
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def table(results, out):
    hdr = ["VMM", "RAM", "cut s", "recover ms", "paused after cut ms", "missing at cut MiB",
           "guest gap cpu0/cpu1 ms", "total ms", "check"]
    rows = []
    for name in sorted(set(r["vmm"] for r in results), key=lambda n: n != "godwit"):
        rs = [r for r in results if r["vmm"] == name]
        ok = [r for r in rs if r.get("status") == "completed"]
        if not ok:
            rows.append([name, "%dG" % (rs[0]["ram"] // GiB), rs[0]["cut_s"]] + ["-"] * 5 +
                        [rs[0].get("error", "?")[:80]])
            continue
        rows.append([name, "%dG" % (ok[0]["ram"] // GiB), ok[0]["cut_s"],
                     fmt(median([r["recover_ms"] for r in ok]), "%.1f"),
                     fmt(median([r["paused_after_cut_ms"] for r in ok]), "%.1f"),
                     fmt(median([r.get("remaining_at_cut_mib") for r in ok]), "%.0f"),
                     "%s / %s" % (fmt(median([r["guest_gap_ms"][0] for r in ok]), "%.1f"),
                                  fmt(median([r["guest_gap_ms"][1] for r in ok]), "%.1f")),
                     fmt(median([r["total_ms"] for r in ok]), "%.0f"),
                     ",".join(sorted(set(r["check"] for r in ok))) +
                     ("" if len(ok) == len(rs) else " (%d of %d)" % (len(ok), len(rs)))])
    markdown_table(hdr, rows, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(SRC_ROOT, "build"))
    ap.add_argument("--godwit", help="godwit binary (default: BUILD/godwit)")
    ap.add_argument("--guest", help="gwos.elf (default: BUILD/tests/guest/os/gwos.elf)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--vmms", default="godwit,qemu")
    ap.add_argument("--ram", default="1G")
    ap.add_argument("--rate", type=int, default=256,
                    help="working-set write rate, MiB/s for both vCPUs (default 256)")
    ap.add_argument("--cut", type=float, default=1.0, help="seconds the link is down")
    ap.add_argument("--before-cut", type=float, default=0.3,
                    help="seconds of postcopy before the cut")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--boot-timeout", type=float, default=120.0)
    ap.add_argument("--json", default="recovery-bench.json")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    godwit = args.godwit or os.path.join(args.build, "godwit")
    args.guest = args.guest or os.path.join(args.build, "tests/guest/os/gwos.elf")
    for f in (godwit, args.guest):
        if not os.path.exists(f):
            sys.exit("recovery-bench: %s not found (build first)" % f)
    ram = parse_size(args.ram)
    vmms = []
    for v in args.vmms.split(","):
        if v == "godwit":
            vmms.append(GwosVmm("godwit", godwit, GODWIT_UNLIMITED_BW))
        elif v == "qemu" and args.qemu and args.qemu != "none":
            vmms.append(GwosVmm("qemu", args.qemu, QEMU_UNLIMITED_BW))
    append = "work=ws mem=max rate=%d hz=250 pit=100 marker=1000" % args.rate
    results = []
    started = time.strftime("%Y-%m-%d %H:%M")
    for rep in range(args.repeat):
        for vmm in vmms:
            r = run_one(vmm, ram, append, args)
            results.append(r)
            print("[%d] %s: %s recover=%s paused=%s gap=%s load=%s %s"
                  % (rep + 1, vmm.name, r.get("status"), fmt(r.get("recover_ms"), "%.1f"),
                     fmt(r.get("paused_after_cut_ms"), "%.1f"), r.get("guest_gap_ms"),
                     r.get("load1_before"), r.get("check") or r.get("error")),
                  file=sys.stderr, flush=True)
    with open(args.json, "w") as f:
        json.dump({"started": started, "args": vars(args), "results": results}, f, indent=1)
    print("recovery-bench %s, gwos -smp 2 over all RAM at %d MiB/s, link down %.1f s, "
          "%d run(s) per row (medians)" % (started, args.rate, args.cut, args.repeat))
    table(results, sys.stdout)


if __name__ == "__main__":
    main()
