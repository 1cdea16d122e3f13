#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run every libFuzzer target of BUILD_DIR (configured with -Dfuzzing=true
# and built: ninja -C BUILD_DIR fuzzers) for SECONDS each, one after the
# other, each on a scratch copy of its committed corpus (tests/fuzz/corpus
# is never modified). Prints one line per target and exits 1 if any target
# found a crash, a leak, a timeout or ran out of memory; the findings stay
# in the scratch directory it names. Builds nothing.
#
#   tests/fuzz/run-fuzzers.sh build-fuzz 60
#   GW_FUZZ_KEEP=1 ...    keep the scratch directories (grown corpora, logs)
#   GW_FUZZ_SUMMARY=FILE  write "passed failed 0" (targets) to FILE at the end
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET" >&2
    exit 2
fi
build=$1
secs=$2
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gw-fuzz-XXXXXX")
failed=0
n_ok=0
n_bad=0

# target  corpus/dictionary name  longest input
targets="fuzz-stream-load:stream-load:stream:131072
fuzz-return-path:return-path:return-path:4096
fuzz-qmp:qmp:qmp:16384
fuzz-hmp:hmp:hmp:4096
fuzz-cmdline:cmdline:cmdline:4096"

for t in $targets; do
    exe=${t%%:*}; rest=${t#*:}
    corpus=${rest%%:*}; rest=${rest#*:}
    dict=${rest%%:*}; maxlen=${rest#*:}
    bin="$build/tests/fuzz/$exe"
    work="$scratch/$corpus"
    if [ ! -x "$bin" ]; then
        echo "$exe: not built ($bin); configure with -Dfuzzing=true and run: ninja -C $build fuzzers"
        failed=1
        n_bad=$((n_bad + 1))
        continue
    fi
    mkdir -p "$work/corpus"
    cp "$src/corpus/$corpus"/* "$work/corpus/"
    # Leaks are findings; a per-input timeout of 10 s and 4 GiB of RSS bound
    # everything else. Artifacts (crash-*, leak-*, timeout-*, oom-*) land in $work.
    ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
        -max_len="$maxlen" -dict="$src/$dict.dict" -print_final_stats=1 \
        -close_fd_mask=1 -artifact_prefix="$work/" "$work/corpus" \
        > "$work/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    files=$(ls "$work/corpus" | wc -l)
    findings=$(cd "$work" && ls crash-* leak-* timeout-* oom-* slow-unit-* 2>/dev/null | \
               tr '\n' ' ')
    if [ $rc -ne 0 ] || [ -n "$findings" ]; then
        failed=1
        n_bad=$((n_bad + 1))
        echo "$exe: ${secs}s, execs ${execs:-?}, cov ${cov:-?}, ft ${ft:-?}, corpus $files;" \
             "FINDING (exit $rc): ${findings:-see log} in $work"
    else
        echo "$exe: ${secs}s, execs ${execs:-?}, cov ${cov:-?}, ft ${ft:-?}, corpus $files;" \
             "no crash, leak or timeout"
        n_ok=$((n_ok + 1))
    fi
done

if [ -n "${GW_FUZZ_SUMMARY:-}" ]; then
    echo "$n_ok $n_bad 0" > "$GW_FUZZ_SUMMARY"
fi
if [ $failed -eq 0 ] && [ -z "${GW_FUZZ_KEEP:-}" ]; then
    rm -rf "$scratch"
else
    echo "fuzzing scratch (corpora, logs, findings): $scratch"
fi
exit $failed
