#!/usr/bin/env bash
# Builds and runs the micro-benchmarks: the package in Benchmarks/ (package-benchmark), release build.
# Extra arguments go to `swift package benchmark`, for example:
#   bench/micro.sh --filter 'channel.*'      only the benchmarks whose name matches
#   bench/micro.sh --scale --time-units nanoseconds
#                                            figures per iteration (1,000 or 1,000,000 events), unrounded
#   UPLINK_BENCH_SMALL=1 bench/micro.sh --allocation-stacks --filter NAME
#                                            where a benchmark's allocations come from (1,000 events per iteration)
#   bench/micro.sh list                      the benchmarks' names
# By default figures are per event, rounded to whole numbers. Allocations are counted by package-benchmark's
# malloc interposer (LD_PRELOAD), so no libjemalloc is needed. Each run first builds in release mode (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
# The main package links libcurl, libcrypto and libyaml: on a fresh Debian machine, install them first.
if ! pkg-config --exists libcurl libcrypto yaml-0.1 libpcre2-8 2>/dev/null; then
    bash scripts/setup-debian.sh
fi
cd Benchmarks
exec swift package --disable-sandbox benchmark "$@"
