#!/usr/bin/env bash
# Put Prometheus's tools from Debian's packages in a cache directory: promtool and the prometheus server
# (package `prometheus`) and the blackbox exporter (package `prometheus-blackbox-exporter`), the versions of
# this Debian release. The packages are downloaded and unpacked, not installed: installing them would add
# users and daemons to the machine, and pull a hundred megabytes of web assets the tests do not need.
#
# Prints the absolute path of promtool on stdout (and nothing else); `prometheus` and
# `prometheus-blackbox-exporter` are beside it. Progress goes to stderr.
#
# Environment:
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); the tools live in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/promtool/<package version>/
set -euo pipefail

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/promtool"
PACKAGES=(prometheus prometheus-blackbox-exporter)
TOOLS=(promtool prometheus prometheus-blackbox-exporter)

log() { printf 'install-promtool: %s\n' "$*" >&2; }

as_root=()
[[ $(id -u) -eq 0 ]] || as_root=(sudo)

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }

version="$(candidate prometheus)"
if [[ -z "${version}" || "${version}" == "(none)" ]]; then
    log "apt knows no prometheus package yet: apt-get update"
    "${as_root[@]}" apt-get update -qq
    version="$(candidate prometheus)"
fi
if [[ -z "${version}" || "${version}" == "(none)" ]]; then
    log "no Debian package named prometheus on this machine's apt sources"
    exit 1
fi
BIN_DIR="${CACHE_ROOT}/${version}/bin"

ready() {
    local tool
    for tool in "${TOOLS[@]}"; do
        [[ -x "${BIN_DIR}/${tool}" ]] || return 1
    done
    "${BIN_DIR}/promtool" --version >/dev/null 2>&1
}

if ready; then
    printf '%s\n' "${BIN_DIR}/promtool"
    exit 0
fi

mkdir -p "${CACHE_ROOT}"
exec 9>"${CACHE_ROOT}/.install.lock"
flock 9
if ready; then
    printf '%s\n' "${BIN_DIR}/promtool"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/debs" "${work}/root" "${BIN_DIR}"
# As root, apt downloads as its own user `_apt`, which must be able to write there.
if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
    chmod 0755 "${work}"
    chown _apt "${work}/debs"
fi
log "downloading ${PACKAGES[*]} (${version}) from Debian"
(cd "${work}/debs" && apt-get download -qq "${PACKAGES[@]}") >&2
for deb in "${work}"/debs/*.deb; do
    dpkg-deb -x "${deb}" "${work}/root"
done
for tool in "${TOOLS[@]}"; do
    install -m 0755 "${work}/root/usr/bin/${tool}" "${BIN_DIR}/${tool}"
done
ready
log "$("${BIN_DIR}/promtool" --version 2>&1 | head -1)"
printf '%s\n' "${BIN_DIR}/promtool"
