#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""godwit demo: boot the tick guest, live-migrate it to a second godwit
process over a unix socket, print progress while it moves and a summary at
the end, and show that the guest kept running on the destination with its
memory intact."""
import argparse
import os
import sys
import tempfile
import time

SCALE = 1   # timeouts and sampling windows are multiplied by this (--slow-host)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import VM, event_time  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--build', default='build')
    ap.add_argument('--mem', default='1G')
    ap.add_argument('--working-set', default='256M',
                    help='tick range size written by the guest (end of the range)')
    ap.add_argument('--downtime-limit', type=int, default=300)
    ap.add_argument('--no-postcopy', action='store_true',
                    help='skip the second act (postcopy to a third process)')
    ap.add_argument('--slow-host', action='store_true',
                    help='allow 4x longer waits (a nested KVM under TCG, the test VM)')
    args = ap.parse_args()
    global SCALE
    SCALE = 4 if args.slow_host else 1

    godwit = os.path.join(args.build, 'godwit')
    guest = os.path.join(args.build, 'tests', 'guest', 'tick.elf')
    if not os.path.exists('/dev/kvm'):
        print('demo: /dev/kvm is missing: this demo needs KVM', file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix='godwit-demo-')
    sock = os.path.join(tmp, 'migrate.sock')
    append = 'start=2M end=%s' % args.working_set

    print('== booting the tick guest (%s RAM, writing one byte per page of [2M, %s))'
          % (args.mem, args.working_set))
    src = VM(godwit, ['-m', args.mem, '-kernel', guest, '-append', append], tmp, 'source')
    dst = None
    try:
        src.wait_serial('tick: pass 3', 30 * SCALE)
        first = [l for l in src.serial().splitlines() if l.startswith('tick: start')]
        print('   source serial: %s' % (first[0] if first else '?'))
        print('   source serial: %s' % src.serial().splitlines()[-1])

        print('== starting the destination: godwit -m %s -incoming unix:%s' % (args.mem, sock))
        dst = VM(godwit, ['-m', args.mem, '-incoming', 'unix:' + sock], tmp, 'destination')
        for q in (src.qmp, dst.qmp):
            q.cmd('migrate-set-capabilities',
                  capabilities=[{'capability': 'events', 'state': True}])
        src.qmp.cmd('migrate-set-parameters', **{'downtime-limit': args.downtime_limit,
                                                 'max-bandwidth': 0})
        print('== migrate unix:%s (downtime-limit %d ms, no bandwidth limit)'
              % (sock, args.downtime_limit))
        src.qmp.cmd('migrate', uri='unix:' + sock)
        while True:
            info = src.qmp.cmd('query-migrate')
            st = info.get('status')
            ram = info.get('ram', {})
            if ram:
                print('   %-10s %6d ms  transferred %8.1f MiB  remaining %8.1f MiB  passes %d  %.0f Mbit/s'
                      % (st, info.get('total-time', 0), ram['transferred'] / 2**20,
                         ram['remaining'] / 2**20, ram['dirty-sync-count'], ram['mbps']))
            else:
                print('   %s' % st)
            if st in ('completed', 'failed', 'cancelled'):
                break
            time.sleep(0.1)
        if st != 'completed':
            print('demo: migration %s: %s' % (st, info.get('error-desc', '')), file=sys.stderr)
            return 1
        stop = src.qmp.wait_event('STOP', 5 * SCALE)
        resume = dst.qmp.wait_event('RESUME', 5 * SCALE)
        dinfo = dst.qmp.cmd('query-migrate')
        ram = info['ram']
        print('== summary')
        print('   total time            %d ms' % info['total-time'])
        print('   setup time            %d ms' % info['setup-time'])
        print('   downtime (source)     %d ms' % info['downtime'])
        print('   guest-visible gap     %.2f ms (source STOP -> destination RESUME)'
              % ((event_time(resume) - event_time(stop)) * 1000))
        if 'x-guest-visible-downtime' in dinfo:
            print('   guest-visible downtime %.2f ms (stop request -> destination start, vCPU pause included)'
                  % dinfo['x-guest-visible-downtime'])
        split = info.get('x-downtime-split', {})
        print('   downtime split        stop %.2f, sync %.2f, pages %.2f, state %.2f, flush %.2f ms; '
              'destination load %.2f ms' % (split.get('stop', 0), split.get('sync', 0), split.get('pages', 0),
                                             split.get('state', 0), split.get('flush', 0),
                                             dinfo.get('x-downtime-split', {}).get('load', 0)))
        print('   transferred           %.1f MiB (%d data pages, %d zero pages)'
              % (ram['transferred'] / 2**20, ram['normal'], ram['duplicate']))
        print('   passes                %d' % ram['dirty-sync-count'])
        print('   source status         %s' % src.qmp.cmd('query-status')['status'])
        print('   destination status    %s' % dst.qmp.cmd('query-status')['status'])
        before = len(dst.serial().splitlines())
        time.sleep(0.5 * SCALE)
        lines = dst.serial().splitlines()
        print('   destination serial    %s (%d new pass markers in %.1f s)'
              % (lines[-1] if lines else '(none)', len(lines) - before, 0.5 * SCALE))
        if len(lines) <= before:
            return 1
        if args.no_postcopy:
            return 0
        return postcopy_act(godwit, args, tmp, dst)
    finally:
        if dst:
            dst.kill()
        src.kill()


def postcopy_act(godwit, args, tmp, src):
    """Move the guest on again, this time with postcopy after one precopy pass."""
    sock = os.path.join(tmp, 'postcopy.sock')
    print('\n== postcopy: moving the guest on to a third godwit process')
    dst = VM(godwit, ['-m', args.mem, '-incoming', 'unix:' + sock], tmp, 'third')
    try:
        caps = [{'capability': c, 'state': True}
                for c in ('events', 'postcopy-ram', 'postcopy-blocktime')]
        src.qmp.cmd('migrate-set-capabilities', capabilities=caps)
        dst.qmp.cmd('migrate-set-capabilities', capabilities=caps)
        # A 1 ms downtime-limit that precopy cannot meet while the guest writes.
        src.qmp.cmd('migrate-set-parameters', **{'downtime-limit': 1})
        print('   downtime-limit 1 ms: precopy alone would not converge')
        src.qmp.cmd('migrate', uri='unix:' + sock)
        src.qmp.wait_event('MIGRATION_PASS', 30 * SCALE, lambda d: d['pass'] >= 2)
        print('   first pass done: migrate-start-postcopy')
        src.qmp.cmd('migrate-start-postcopy')
        while True:
            info = src.qmp.cmd('query-migrate')
            st = info.get('status')
            ram = info.get('ram', {})
            dinfo = dst.qmp.cmd('query-migrate')
            if ram:
                print('   %-16s %6d ms  remaining %8.1f MiB  page requests %5d  blocktime %s ms'
                      % (st, info.get('total-time', 0), ram['remaining'] / 2**20,
                         ram['postcopy-requests'], dinfo.get('postcopy-blocktime', '-')))
            if st in ('completed', 'failed', 'cancelled', 'postcopy-paused'):
                break
            time.sleep(0.1)
        if st != 'completed':
            print('demo: postcopy migration %s: %s' % (st, info.get('error-desc', '')),
                  file=sys.stderr)
            return 1
        lat = dinfo.get('x-postcopy-latency-percentiles', {})
        print('== postcopy summary')
        print('   total time            %d ms' % info['total-time'])
        print('   switchover downtime   %d ms' % info['downtime'])
        print('   page requests         %d' % info['ram']['postcopy-requests'])
        print('   blocktime             %s ms (per vCPU %s)'
              % (dinfo.get('postcopy-blocktime'), dinfo.get('postcopy-vcpu-blocktime')))
        print('   fault latency         p50 %.0f us, p99 %.0f us, max %.0f us'
              % (lat.get('p50', 0), lat.get('p99', 0), lat.get('max', 0)))
        before = len(dst.serial().splitlines())
        time.sleep(0.5 * SCALE)
        lines = dst.serial().splitlines()
        print('   destination serial    %s (%d new pass markers in %.1f s)'
              % (lines[-1] if lines else '(none)', len(lines) - before, 0.5 * SCALE))
        return 0 if len(lines) > before else 1
    finally:
        dst.kill()


if __name__ == '__main__':
    sys.exit(main())
