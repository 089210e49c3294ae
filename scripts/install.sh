#!/usr/bin/env bash
# Builds the release binary (scripts/build-release.sh: Swift runtime static, no PIE, laid out for memory,
# stamped with the commit), strips it and installs it with the systemd unit and an example pipeline.
#
#   sudo scripts/install.sh                  # into /usr/local, /etc/uplink, /etc/systemd/system
#   DESTDIR=/tmp/stage scripts/install.sh    # staged, for packaging (no systemctl calls)
#   PREFIX=/opt/uplink scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
binary="$(scripts/build-release.sh)"

install -d "${DESTDIR}${PREFIX}/bin" "${DESTDIR}/etc/uplink" "${DESTDIR}/etc/systemd/system" \
    "${DESTDIR}${PREFIX}/share/doc/uplink/pipelines"
install -m 0755 "${binary}" "${DESTDIR}${PREFIX}/bin/uplink"
strip "${DESTDIR}${PREFIX}/bin/uplink" 2>/dev/null || true
sed "s|/usr/local/|${PREFIX}/|g" packaging/uplink.service > "${DESTDIR}/etc/systemd/system/uplink.service"
chmod 0644 "${DESTDIR}/etc/systemd/system/uplink.service"
install -m 0644 README.md "${DESTDIR}${PREFIX}/share/doc/uplink/README.md"
install -m 0644 pipelines/*.yaml "${DESTDIR}${PREFIX}/share/doc/uplink/pipelines/"
# Never overwrite an operator's pipeline or secrets.
if [ ! -e "${DESTDIR}/etc/uplink/pipeline.yaml" ]; then
    install -m 0644 pipelines/app-log-ndjson-iotcore.yaml "${DESTDIR}/etc/uplink/pipeline.yaml"
fi
if [ ! -e "${DESTDIR}/etc/uplink/uplink.env" ]; then
    umask 077
    printf '# PRODUCT_SN=...\n# DEVICE_SN=...\n# DEVICE_SECRET=...\n# IOTCORE_ENDPOINT=https://http-cn-sh2.iot.ucloud.cn\n' > "${DESTDIR}/etc/uplink/uplink.env"
fi
echo "installed uplink $("${DESTDIR}${PREFIX}/bin/uplink" --version) ($(du -h "${DESTDIR}${PREFIX}/bin/uplink" | cut -f1) stripped)"
if [ -z "${DESTDIR}" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "enable with: systemctl enable --now uplink"
fi
