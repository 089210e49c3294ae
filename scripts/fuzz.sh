#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (AddressSanitizer, coverage) and runs each for a bounded time.
#
#   scripts/fuzz.sh [--smoke] [--time SECONDS] [TARGET...]
#
# Every target first replays its checked-in reproducers (Fuzz/Regressions/<target>/: inputs that once broke a
# property; each must now pass), then fuzzes from its seed corpus (Fuzz/Corpus/<target>/, copied: the checked-in
# seeds are never rewritten) with its dictionary (Fuzz/Dictionaries/<target>.dict) when there is one.
# Hangs (-timeout) and memory bombs (-rss_limit_mb) are findings like crashes. A finding is kept under
# $FUZZ_OUT/<target>/ (default .build-fuzz/out) and the script exits 1 after running every target.
#
# --smoke (CI): a fixed number of executions from a fixed seed per target (SMOKE_RUNS, 30,000), so the CI step
# runs exactly what a developer's `scripts/fuzz.sh --smoke` ran, however fast the machine is: it cannot turn red
# by luck. Finding new inputs is the job of the timed runs. Default: 300 s per target; --time SECONDS.
# Prints per target: executions per second, coverage (libFuzzer's cov: edges and ft: features), corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

seconds=300
smoke=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=true ;;
        --time) seconds="$2"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
all=(config json csv kv regex lineframer process diskbuffer checkpoint tokencache serveranswer expression)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

scratch="${FUZZ_SCRATCH:-$PWD/.build-fuzz/build}"
out="${FUZZ_OUT:-$PWD/.build-fuzz/out}"
started=$(date +%s)
echo "== building the fuzz targets (scratch $scratch)"
(cd Fuzz && swift build -c release --scratch-path "$scratch" 2>&1 | grep -E 'error|warning: |Compiling|Build complete' | grep -v '^\[.*Compiling' || true)
binary="$scratch/release/UplinkFuzz"
[ -x "$binary" ] || { echo "the fuzz build failed" >&2; exit 2; }
built=$(date +%s)
echo "build: $((built - started)) s"

# The Swift runtime's crash handler and LeakSanitizer both misread a Swift process under ASan: libFuzzer
# reports the crash itself, and lazily built globals look like leaks.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"

failed=()
summary=()
for target in "${targets[@]}"; do
    dir="$out/$target"
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/findings"
    ln -sf "$binary" "$dir/fuzz-$target"
    run="$dir/fuzz-$target"
    options=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
    if [ -f "Fuzz/Dictionaries/$target.dict" ]; then options+=(-dict="$PWD/Fuzz/Dictionaries/$target.dict"); fi

    if [ -d "Fuzz/Regressions/$target" ] && [ -n "$(ls -A "Fuzz/Regressions/$target")" ]; then
        count=$(find "Fuzz/Regressions/$target" -type f | wc -l)
        if ! "$run" "${options[@]}" "Fuzz/Regressions/$target"/* >"$dir/regressions.log" 2>&1; then
            echo "!! $target: a reproducer in Fuzz/Regressions/$target fails again:"
            grep -E 'property violated|ERROR|Running:' "$dir/regressions.log" | tail -4 || true
            failed+=("$target (regression)")
        else
            echo "== $target: $count reproducers pass"
        fi
    fi

    if [ -d "Fuzz/Corpus/$target" ]; then cp -R "Fuzz/Corpus/$target/." "$dir/corpus/"; fi
    status=0
    if $smoke; then bound=(-seed=1 -runs="${SMOKE_RUNS:-30000}"); else bound=(-max_total_time="$seconds"); fi
    (cd "$dir/findings" && "$run" "${options[@]}" "${bound[@]}" "$dir/corpus" >"$dir/fuzz.log" 2>&1) || status=$?
    stats=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$dir/fuzz.log" | tail -1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$stats")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
    rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$stats")
    corpus=$(find "$dir/corpus" -type f | wc -l)
    line=$(printf '%-13s %8s exec/s  cov %5s  ft %6s  corpus %5s  runs %s' "$target" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "${runs:-?}")
    if [ $status -ne 0 ]; then
        echo "!! $target: finding (exit $status), input kept in $dir/findings:"
        grep -E 'property violated|ERROR: |Fatal error|Test unit written' "$dir/fuzz.log" | head -4 || true
        failed+=("$target")
        line="$line  FINDING"
    fi
    echo "$line"
    summary+=("$line")
done

echo
if $smoke; then per="${SMOKE_RUNS:-30000} runs, seed 1"; else per="${seconds} s"; fi
echo "== fuzzing summary (${per} per target; build $((built - started)) s; total $(( $(date +%s) - started )) s)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings: ${failed[*]} (logs and inputs under $out)"
    exit 1
fi
