#!/usr/bin/env bash
# Builds a release binary and runs the benchmarks. Extra arguments go to bench.py (--lines, --runs, --scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product uplink >/dev/null
exec python3 bench/bench.py "$@"
