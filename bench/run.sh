#!/usr/bin/env bash
# Builds the release binary a board runs (scripts/build-release.sh) and runs the benchmarks on it. Extra
# arguments go to bench.py (--lines, --runs, --scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
binary="$(scripts/build-release.sh)"
exec python3 bench/bench.py --binary "${binary}" "$@"
