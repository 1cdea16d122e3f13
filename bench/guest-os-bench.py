#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Guest OS migration benchmark: gwos migrated by godwit and by QEMU.

Boots gwos (tests/guest/os, -smp 2, a ws working set on both vCPUs) under
godwit and under qemu-system-x86_64 with KVM, migrates it over a local unix
socket with precopy and with postcopy (switch after the first pass), and
prints per run: total time and downtime as each VMM reports them, the
STOP->RESUME event gap, the outside-measured marker gap (host CLOCK_REALTIME
stamps on the guest's serial markers, 1 kHz unless --marker-hz, read
through a unix socket on both sides: first marker on the destination minus
last on the source) and the guest-measured largest gap per vCPU (its stall
meter). Python 3 stdlib only; the QMP client is bench/gwqmp.py, the other
helpers are in bench/gwbench.py. docs/devel/benchmarks.md, section "Guest OS", explains it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)

sys.path.insert(0, HERE)
import gwqmp  # noqa: E402
from gwbench import (GODWIT_UNLIMITED_BW, QEMU_UNLIMITED_BW,  # noqa: E402
                     GwosVmm, SerialTap, fmt, guest_gaps, heartbeats,
                     markdown_table, markers, median, parse_size, problems_in,
                     size_label, spawn, teardown, wait_heartbeats)


def run_one(vmm, ram, wl_name, append, postcopy, args, log):
    tmp = tempfile.mkdtemp(prefix="gw-osbench-")
    r = {"vmm": vmm.name, "ram": ram, "workload": wl_name,
         "mode": "postcopy" if postcopy else "precopy", "append": append,
         "load1_before": round(os.getloadavg()[0], 2)}
    procs, qmps, taps = [], [], []
    try:
        p = lambda n: os.path.join(tmp, n)
        s_err, d_err = open(p("src.stderr"), "wb"), open(p("dst.stderr"), "wb")
        src = spawn(vmm.argv(ram, 2, args.guest, append, p("src.ser"),
                             p("src.qmp")), subprocess.DEVNULL, s_err)
        procs.append(src)
        sq = gwqmp.QMP(p("src.qmp"))
        qmps.append(sq)
        stap = SerialTap(p("src.ser"))
        taps.append(stap)
        sq.cmd("cont")
        # Working: both vCPUs past their first sweep, then 3 heartbeats each
        # (the first guest seconds have irregular timers).
        deadline = time.monotonic() + args.boot_timeout
        while True:
            lines, _ = stap.snapshot()
            hb = heartbeats(lines)
            working = sum(1 for _, l in lines if re.match(r"gwos: cpu \d working", l))
            if working >= 2 and all(len(hb.get(c, [])) >= 3 for c in (0, 1)):
                break
            if src.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("guest not working within %d s: %r"
                                   % (args.boot_timeout,
                                      [l for _, l in lines if l[:1] != "@"][-5:]))
            time.sleep(0.05)
        # Baseline: largest stall per vCPU before migrating (host noise).
        r["baseline_gap_ms"] = [max(h["gap_us"] for h in hb[c][1:]) / 1000.0
                                for c in (0, 1)]

        inc = "unix:" + p("mig.sock")
        dst = spawn(vmm.argv(ram, 2, args.guest, append, p("dst.ser"),
                             p("dst.qmp"), inc), subprocess.DEVNULL, d_err)
        procs.append(dst)
        dq = gwqmp.QMP(p("dst.qmp"))
        qmps.append(dq)
        dtap = SerialTap(p("dst.ser"))
        taps.append(dtap)
        caps = [{"capability": "events", "state": True}]
        if postcopy:
            caps += [{"capability": "postcopy-ram", "state": True},
                     {"capability": "postcopy-blocktime", "state": True}]
        for q in (sq, dq):
            q.cmd("migrate-set-capabilities", {"capabilities": caps})
        # Postcopy: downtime-limit 1 ms so that precopy does not finish at
        # the end of the first pass, before the switch. Not 0: QEMU 7.2 then
        # never syncs the dirty bitmap and completes right after the first
        # pass with everything dirtied meanwhile still to send.
        sq.cmd("migrate-set-parameters",
               {"downtime-limit": 1 if postcopy else args.downtime_limit,
                "max-bandwidth": vmm.unlimited_bw})
        sq.events.clear()
        dq.events.clear()
        t_mig = time.time()
        sq.cmd("migrate", {"uri": inc})
        status, switched = None, None
        while True:
            sq.pump(0.02)
            dq.pump(0.0)
            if postcopy and switched is None and sq.find_event(
                    "MIGRATION_PASS", lambda e: e["data"]["pass"] >= 2):
                sq.cmd("migrate-start-postcopy")
                switched = time.time()
            ev = [e for e in sq.events if e["event"] == "MIGRATION"]
            st = ev[-1]["data"]["status"] if ev else None
            if st in ("completed", "failed", "cancelled"):
                status = st
                break
            if time.time() - t_mig > args.timeout:
                status = "timeout"
                break
            if src.poll() is not None:
                status = "source died"
                break
        r["status"] = status
        if status == "timeout":
            pc = sq.find_event("MIGRATION",
                               lambda e: e["data"]["status"] == "postcopy-active")
            info = sq.cmd("query-migrate")
            r["progress"] = {k: info.get(k) for k in ("status", "expected-downtime")}
            r["progress"]["passes"] = info.get("ram", {}).get("dirty-sync-count")
            if not pc:
                try:
                    sq.cmd("migrate_cancel")
                except gwqmp.QMPError:
                    pass
            r["status"] = "no-converge" if not pc else "timeout-postcopy"
            return r
        if status != "completed":
            r["error"] = sq.cmd("query-migrate").get("error-desc")
            return r
        t_done = time.time()
        info = sq.cmd("query-migrate")
        r["total_ms"] = info.get("total-time")
        r["downtime_ms"] = info.get("downtime")
        r["passes"] = info.get("ram", {}).get("dirty-sync-count")
        r["split_src"] = info.get("x-downtime-split")
        r["transferred"] = info.get("ram", {}).get("transferred")
        r["switched"] = sq.find_event(
            "MIGRATION", lambda e: e["data"]["status"] == "postcopy-active") is not None
        stop = sq.find_event("STOP")
        resume = dq.wait_event("RESUME", 10)
        r["stop_resume_ms"] = ((gwqmp.event_time(resume) - gwqmp.event_time(stop)) * 1000
                               if stop and resume else None)
        dq.wait_event("MIGRATION", 30, lambda e: e["data"]["status"] == "completed")
        dinfo = dq.cmd("query-migrate")
        r["blocktime_ms"] = dinfo.get("postcopy-blocktime")
        # godwit: stop request -> destination start, vCPU pause included.
        r["guest_visible_ms"] = dinfo.get("x-guest-visible-downtime")
        r["split_dst"] = dinfo.get("x-downtime-split")
        pct = dinfo.get("x-postcopy-latency-percentiles") or {}
        r["fault_max_us"] = pct.get("max")

        wait_heartbeats(dtap, t_done)
        slines, spartial = stap.snapshot()
        dlines, _ = dtap.snapshot()
        if spartial and dlines:
            dlines[0] = (dlines[0][0], spartial + dlines[0][1])
        sh, dh = heartbeats(slines), heartbeats(dlines)
        sm, dm = markers(slines), markers(dlines)
        problems = problems_in(slines, "source") + problems_in(dlines, "destination")
        if sm and dm:
            r["marker_gap_ms"] = (dm[0][0] - sm[-1][0]) * 1000
            if dm[0][1] != sm[-1][1] + 1:
                problems.append("markers @%08x -> @%08x" % (sm[-1][1], dm[0][1]))
        else:
            r["marker_gap_ms"] = None
            problems.append("no markers on %s" % ("source" if not sm else "destination"))
        r["guest_gap_ms"], gap_problems = guest_gaps(sh, dh, t_mig, t_done)
        problems += gap_problems
        if postcopy and not r["switched"]:
            problems.append("completed in precopy (no switch)")
        r["check"] = "ok" if not problems else "; ".join(problems[:3])
        return r
    except (gwqmp.QMPError, RuntimeError, OSError) as e:
        r["status"] = "error"
        r["error"] = str(e)
        return r
    finally:
        teardown(qmps, procs, [t.close for t in taps])
        r["load1_after"] = round(os.getloadavg()[0], 2)
        if args.keep_tmp:
            r["tmp"] = tmp
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def table(results, out):
    hdr = ["VMM", "RAM", "ws", "mode", "total ms", "downtime ms", "STOP>RESUME ms",
           "guest-visible ms", "marker gap ms", "guest gap cpu0/cpu1 ms", "base gap ms", "check"]
    rows = []
    keys = []
    for r in results:
        k = (r["ram"], r["workload"], r["mode"], r["vmm"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[2] == "postcopy", k[0], k[1], k[3] != "godwit"))
    for k in keys:
        rs = [r for r in results if (r["ram"], r["workload"], r["mode"], r["vmm"]) == k]
        ok = [r for r in rs if r.get("status") == "completed"]
        if not ok:
            rows.append([k[3], size_label(k[0]), k[1], k[2]] + ["-"] * 7 +
                        [rs[0].get("status", "?") + " " + str(rs[0].get("error", "")
                                                               or rs[0].get("progress", ""))])
            continue
        g0 = median([r["guest_gap_ms"][0] for r in ok])
        g1 = median([r["guest_gap_ms"][1] for r in ok])
        base = median([max(r["baseline_gap_ms"]) for r in ok])
        checks = sorted(set(r["check"] for r in ok))
        rows.append([k[3], size_label(k[0]), k[1], k[2],
                     fmt(median([r["total_ms"] for r in ok])),
                     fmt(median([r["downtime_ms"] for r in ok])),
                     fmt(median([r["stop_resume_ms"] for r in ok]), "%.1f"),
                     fmt(median([r.get("guest_visible_ms") for r in ok
                                 if r.get("guest_visible_ms") is not None]), "%.1f"),
                     fmt(median([r["marker_gap_ms"] for r in ok]), "%.1f"),
                     "%s / %s" % (fmt(g0, "%.1f"), fmt(g1, "%.1f")),
                     fmt(base, "%.1f"),
                     ",".join(checks) + ("" if len(ok) == len(rs) else
                                         " (%d of %d completed)" % (len(ok), len(rs)))])
    markdown_table(hdr, rows, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(SRC_ROOT, "build"))
    ap.add_argument("--godwit", help="godwit binary (default: BUILD/godwit)")
    ap.add_argument("--guest", help="gwos.elf (default: BUILD/tests/guest/os/gwos.elf)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--vmms", default="godwit,qemu")
    ap.add_argument("--ram", default="1G,4G")
    ap.add_argument("--workloads", default="ws256,most")
    ap.add_argument("--modes", default="precopy,postcopy")
    ap.add_argument("--rate", type=int, default=256,
                    help="ws write rate, MiB/s for both vCPUs together (default 256)")
    ap.add_argument("--marker-hz", type=int, default=1000,
                    help="gwos serial marker rate (default 1000; the test VM's "
                         "single-threaded TCG keeps up with 100)")
    ap.add_argument("--downtime-limit", type=int, default=300,
                    help="precopy downtime-limit in ms (postcopy uses 1)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--boot-timeout", type=float, default=120.0)
    ap.add_argument("--json", default="guest-os-bench.json")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.marker_hz <= 10000:
        ap.error("--marker-hz must be 1 to 10000 (the marker gap needs markers)")

    godwit = args.godwit or os.path.join(args.build, "godwit")
    args.guest = args.guest or os.path.join(args.build, "tests/guest/os/gwos.elf")
    for f in (godwit, args.guest):
        if not os.path.exists(f):
            sys.exit("guest-os-bench: %s not found (build first)" % f)
    vmms = []
    for v in args.vmms.split(","):
        if v == "godwit":
            vmms.append(GwosVmm("godwit", godwit, GODWIT_UNLIMITED_BW))
        elif v == "qemu" and args.qemu and args.qemu != "none":
            vmms.append(GwosVmm("qemu", args.qemu, QEMU_UNLIMITED_BW))
    workloads = {
        "ws256": "work=ws mem=256M rate=%d" % args.rate,
        "most": "work=ws mem=max rate=%d" % args.rate,
    }
    common = " hz=250 pit=100 marker=%d" % args.marker_hz
    results = []
    log = sys.stderr
    started = time.strftime("%Y-%m-%d %H:%M")
    for rep in range(args.repeat):
        for mode in args.modes.split(","):
            for ram in [parse_size(s) for s in args.ram.split(",")]:
                for wl in args.workloads.split(","):
                    for vmm in vmms:
                        r = run_one(vmm, ram, wl, workloads[wl] + common,
                                    mode == "postcopy", args, log)
                        results.append(r)
                        print("[%d] %s %s %s %s: %s total=%s down=%s s>r=%s "
                              "marker=%s guest=%s base=%s load=%s %s"
                              % (rep + 1, vmm.name, size_label(ram), wl, mode, r.get("status"),
                                 r.get("total_ms"), r.get("downtime_ms"),
                                 fmt(r.get("stop_resume_ms"), "%.1f"),
                                 fmt(r.get("marker_gap_ms"), "%.1f"),
                                 r.get("guest_gap_ms"), r.get("baseline_gap_ms"),
                                 r.get("load1_before"),
                                 r.get("check") or r.get("error") or r.get("progress")),
                              file=log, flush=True)
    with open(args.json, "w") as f:
        json.dump({"started": started, "args": vars(args), "results": results}, f,
                  indent=1)
    print("guest-os-bench %s, -smp 2, rate %d MiB/s, markers %d Hz, %d run(s) per row "
          "(medians), load average at start %.1f" % (started, args.rate, args.marker_hz,
                                                     args.repeat,
                                                     results[0]["load1_before"] if results
                                                     else 0))
    table(results, sys.stdout)


if __name__ == "__main__":
    main()
