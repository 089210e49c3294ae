#!/usr/bin/env bash
# The test command (README and .ci/run): the unit tests, then the end-to-end suite (real processes, files,
# signals and loopback HTTPS) as its own step, so a failure says which kind it is. Extra arguments go to both.
set -euo pipefail
cd "$(dirname "$0")/.."
swift test --no-parallel --skip '^EndToEndTests\.' "$@"
swift test --no-parallel --filter '^EndToEndTests\.' "$@"
