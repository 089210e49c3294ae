#!/usr/bin/env bash
# Installs what Uplink builds and tests with on Debian 12 (the Swift toolchain itself must be on PATH).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    pkg-config libcurl4-openssl-dev libssl-dev libyaml-dev libpcre2-dev \
    curl ca-certificates socat python3 gcc make >/dev/null
