#!/usr/bin/env bash
# Runs the unit tests under ThreadSanitizer and AddressSanitizer (issue 15), each in its own build folder
# (.build-tsan, .build-asan: the instrumented dependency graph is built once, then reused).
#   scripts/sanitizers.sh            both, unit tests only (the end-to-end suite runs release-like processes)
#   scripts/sanitizers.sh thread     one of them; extra arguments go to `swift test` (e.g. --filter DiskBuffer)
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=(thread address)
if [ $# -gt 0 ] && { [ "$1" = thread ] || [ "$1" = address ]; }; then kinds=("$1"); shift; fi
status=0
for kind in "${kinds[@]}"; do
    [ "$kind" = thread ] && scratch=.build-tsan || scratch=.build-asan
    echo "== $kind sanitizer ($scratch)"
    # Swift's crash handler and leak checking get in the sanitizers' way; the reports are what matters.
    export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1
    if ! swift test --sanitize="$kind" --scratch-path "$scratch" --no-parallel --skip '^EndToEndTests\.' "$@"; then
        echo "== $kind sanitizer: FAILED"
        status=1
    fi
done
exit $status
