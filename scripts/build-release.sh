#!/usr/bin/env bash
# Builds the release binary a board runs and prints its path; scripts/install.sh and bench/run.sh use it.
# On top of `swift build -c release` (Package.swift: Swift runtime static, no PIE, linked in the order of
# packaging/link-order.txt):
# - every function in a section of its own (-function-sections), so the link order places this package's hot
#   functions one by one, not whole source files: idle RSS -0.6 MiB, peak -1.9 MiB (bench/RESULTS.md). It is a
#   command-line flag because flags in Package.swift would keep other packages from depending on Uplink's
#   libraries;
# - the commit, for `uplink --version`.
# Extra arguments go to `swift build`.
set -euo pipefail
cd "$(dirname "$0")/.."
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
flags=(-c release --product uplink -Xcc "-DUPLINK_COMMIT=\"${commit}\"" -Xswiftc -Xfrontend -Xswiftc -function-sections)
binary="$(swift build "${flags[@]}" "$@" --show-bin-path)/uplink"
# Always relinked: the link order file is an input SwiftPM does not track.
rm -f "${binary}"
swift build "${flags[@]}" "$@" >&2
echo "${binary}"
