#!/usr/bin/env bash
# Runs the unit tests under AddressSanitizer and ThreadSanitizer (issue 15), each in a build folder of its own
# (.build-asan, .build-tsan: the instrumented dependency graph is built once, then reused incrementally).
#   scripts/sanitizers.sh            both, unit tests only
#   scripts/sanitizers.sh address    one of them; extra arguments go to `swift test` (e.g. --filter DiskBuffer)
# Needs only the Swift toolchain (on Linux it ships the sanitizer runtimes and clang, which builds the shim below).
# The first build of each is a full build of everything instrumented: about 30 minutes each on a busy 2-core machine
# (measured on 2026-12-05), several GB per folder; a change in UplinkCore then rebuilds in about 5 minutes. The
# tests take about 2 minutes per sanitizer. Too long for CI (.ci/run), so run it by hand before merging concurrency
# or unsafe-pointer work.
#
# The end-to-end suite is skipped: it runs the `uplink` binary as a child process, which is not the instrumented
# test bundle. Tests see UPLINK_SANITIZER=address|thread, to skip with their reason what cannot run under one (no
# unit test needs to today: StartupMemoryTests' RSS check holds under both).
# UPLINK_CRASH_SEQUENCES lowers the crash-state exploration from its hundreds of sequences per property to 40:
# each sequence is 5-20x slower instrumented, and 40 still cover every operation kind with a crash at each step.
#
# ThreadSanitizer gets two narrow aids (scripts/sanitizers/): tsan-mutex.c, preloaded, reports the acquire and release
# of a contended Synchronization.Mutex, which the standard library does in uninstrumented futex code (every contended
# Mutex was a false data race); tsan.supp names the Swift runtime's own false positives, each with its reason.
# What the runs found and what was fixed: ARCHITECTURE.md, "Sanitizers".
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift > /dev/null || { echo "sanitizers.sh: needs the Swift toolchain (swift) on PATH" >&2; exit 2; }
kinds=(address thread)
if [ $# -gt 0 ] && { [ "$1" = thread ] || [ "$1" = address ]; }; then kinds=("$1"); shift; fi
status=0
for kind in "${kinds[@]}"; do
    [ "$kind" = thread ] && scratch=.build-tsan || scratch=.build-asan
    echo "== $kind sanitizer ($scratch)"
    started=$(date +%s)
    # Swift's crash handler and leak checking get in the sanitizers' way; the reports are what matters.
    export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
    export TSAN_OPTIONS="halt_on_error=1:suppressions=$PWD/scripts/sanitizers/tsan.supp"
    export UPLINK_SANITIZER="$kind" UPLINK_CRASH_SEQUENCES="${UPLINK_CRASH_SEQUENCES:-40}"
    preload=""
    if [ "$kind" = thread ]; then
        # Swift's Mutex hands a contended lock over in uninstrumented code; the shim reports those acquires and
        # releases (see its header). Checked first on a program that races falsely without it.
        mkdir -p "$scratch"
        "$(dirname "$(command -v swift)")/clang" -shared -fPIC -O1 -o "$scratch/libtsan-mutex.so" scripts/sanitizers/tsan-mutex.c -ldl
        swiftc -sanitize=thread -o "$scratch/mutex-contention" scripts/sanitizers/mutex-contention.swift
        if ! LD_PRELOAD="$PWD/$scratch/libtsan-mutex.so" "$scratch/mutex-contention"; then
            echo "== thread sanitizer: the Mutex shim does not work with this toolchain (see scripts/sanitizers/tsan-mutex.c)"
            exit 1
        fi
        preload="$PWD/$scratch/libtsan-mutex.so"
    fi
    # Built first, on its own, so the timings below separate the build from the run.
    if ! swift build --build-tests --sanitize="$kind" --scratch-path "$scratch"; then
        echo "== $kind sanitizer: build FAILED"
        status=1
        continue
    fi
    built=$(date +%s)
    if LD_PRELOAD="$preload" swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" --no-parallel --skip '^EndToEndTests\.' "$@"; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    echo "== $kind sanitizer: $result (build $(( built - started )) s, tests $(( $(date +%s) - built )) s)"
done
exit $status
