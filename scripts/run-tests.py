#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run godwit's meson test suites and print one summary line.

meson counts test *programs*; our programs are GTest binaries speaking TAP,
each with many test paths. This reads meson's test log and counts the TAP
results themselves, so the last line is "N passed, N failed, N skipped"
over individual test paths, and every skip is listed with its reason.
"""
import argparse
import json
import os
import re
import subprocess
import sys

TAP_OK = re.compile(r'^(not )?ok\b\s*\d*\s*-?\s*(.*)$')


def count_tap(stdout):
    passed = failed = skipped = 0
    skips = []
    fails = []
    for line in stdout.splitlines():
        m = TAP_OK.match(line.strip())
        if not m:
            continue
        desc = m.group(2)
        directive = ''
        if '#' in desc:
            desc, directive = desc.split('#', 1)
            directive = directive.strip()
        if m.group(1):
            if directive.upper().startswith('TODO'):
                continue
            failed += 1
            fails.append(desc.strip())
        elif directive.upper().startswith('SKIP'):
            skipped += 1
            skips.append((desc.strip(), directive[4:].strip()))
        else:
            passed += 1
    return passed, failed, skipped, skips, fails


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('builddir')
    ap.add_argument('--suite', action='append', default=[])
    ap.add_argument('--no-suite', action='append', default=[])
    ap.add_argument('--label', default='tests')
    ap.add_argument('--timeout-multiplier', default='1')
    ap.add_argument('--summary-file', help='also write "passed failed skipped" here')
    ap.add_argument('--no-rebuild', action='store_true',
                    help='run what is built (inside the test VM the host builds)')
    ap.add_argument('--exclude', action='append', default=[], metavar='NAME=REASON',
                    help='do not run test program NAME here; it is counted as '
                         'skipped, with REASON')
    ap.add_argument('--only', action='append', default=[], metavar='NAME',
                    help='run only these test programs (of those the suites select)')
    ap.add_argument('--elsewhere', action='append', default=[], metavar='NAME',
                    help='do not run or count test program NAME: another run of this '
                         'script, with --only NAME, runs and counts it')
    args = ap.parse_args()

    log = os.path.join(args.builddir, 'meson-logs', 'testlog.json')
    # A stale log from an earlier run must never be counted as this one.
    try:
        os.unlink(log)
    except FileNotFoundError:
        pass
    cmd = ['meson', 'test', '-C', args.builddir, '--print-errorlogs',
           '--num-processes', os.environ.get('GW_TEST_JOBS', '2'),
           '-t', args.timeout_multiplier]
    for s in args.suite:
        cmd += ['--suite', s]
    for s in args.no_suite:
        cmd += ['--no-suite', s]
    if args.no_rebuild:
        cmd.append('--no-rebuild')
    excluded = {}
    for e in args.exclude:
        name, _, why = e.partition('=')
        excluded[name] = why or 'excluded here'
    keep = None
    missing = []
    if excluded or args.only or args.elsewhere:
        # meson has no --exclude: list what the suites select, run the rest by name
        listed = subprocess.run(cmd[:4] + ['--list'] + cmd[9:], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True)
        names = [l.rsplit(' / ', 1)[-1].strip() for l in listed.stdout.splitlines()
                 if ' / ' in l]
        if args.only:
            missing = [n for n in args.only if n not in names]
            names = [n for n in names if n in args.only]
        names = [n for n in names if n not in args.elsewhere]
        keep = [n for n in names if n not in excluded]
        excluded = {n: w for n, w in excluded.items() if n in names}
        cmd += keep
    rc = subprocess.call(cmd) if keep is None or keep else 0

    passed = failed = skipped = 0
    all_skips, all_fails = [], []
    try:
        with open(log) as f:
            entries = [json.loads(l) for l in f if l.strip()]
    except OSError:
        entries = []
    for e in entries:
        p, fl, s, skips, fails = count_tap(e.get('stdout') or '')
        if e.get('result') in ('FAIL', 'TIMEOUT', 'ERROR', 'UNEXPECTEDPASS') and fl == 0:
            fl = 1
            fails.append('%s (%s)' % (e.get('name'), e.get('result')))
        if p + fl + s == 0 and e.get('result') == 'OK':
            p = 1   # a plain (non-TAP) test program that passed
        if p + fl + s == 0 and e.get('result') == 'SKIP':
            s = 1
            skips.append((e.get('name'), 'whole program skipped'))
        passed += p
        failed += fl
        skipped += s
        all_skips += [(e.get('name'), d, why) for d, why in skips]
        all_fails += ['%s: %s' % (e.get('name'), d) for d in fails]

    for name, why in sorted(excluded.items()):
        skipped += 1
        all_skips.append((name, '(whole program, not run)', why))
    if all_skips:
        print('\n' + '!' * 70)
        print('SKIPPED (a skip is not a pass):')
        for name, desc, why in all_skips:
            print('  SKIP %s %s: %s' % (name, desc, why))
        print('!' * 70)
    for name in missing:
        failed += 1
        all_fails.append('%s: asked for with --only, but the suites have no such program' % name)
    if all_fails:
        print('\nFAILED:')
        for f in all_fails:
            print('  FAIL ' + f)
    if not entries and not (keep is not None and not keep):
        print('no test log found in %s' % log)
        failed += 1
    if rc != 0 and failed == 0:
        failed = 1
    print('%s: %d passed, %d failed, %d skipped' % (args.label, passed, failed, skipped))
    if args.summary_file:
        with open(args.summary_file, 'w') as f:
            f.write('%d %d %d\n' % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
