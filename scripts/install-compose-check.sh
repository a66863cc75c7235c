#!/usr/bin/env bash
# Build scripts/compose-check (a small Go program: compose.yaml loaded by compose-go, the library behind
# `docker compose config`; the Grafana dashboard decoded by the Grafana foundation SDK; PromQL parsed by
# Prometheus's parser) with the Go toolchain, through the Go module proxy, and cache the binary so a second run
# is instant. The modules are pinned by scripts/compose-check/go.mod and go.sum.
#
# Prints the absolute path of the binary on stdout (and nothing else); progress goes to stderr.
#
# Environment:
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); everything lives in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/ (the Go caches are shared with
#                    scripts/install-opa.sh)
#   GO               go command (default: go on PATH)
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
SOURCE="${HERE}/scripts/compose-check"
GO="${GO:-go}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway"
GO_ROOT="${CACHE_ROOT}/go"

log() { printf 'install-compose-check: %s\n' "$*" >&2; }

if ! command -v "${GO}" >/dev/null 2>&1; then
    log "the Go toolchain ('${GO}') is not on PATH; install Go to build compose-check"
    exit 1
fi

# The cache key: the program's sources and module files, and the Go version that builds them.
key="$(
    {
        "${GO}" version
        cd "${SOURCE}" && sha256sum go.mod go.sum ./*.go
    } | sha256sum | cut -c1-16
)"
BIN_DIR="${CACHE_ROOT}/compose-check/${key}"
BIN="${BIN_DIR}/compose-check"

if [[ -x "${BIN}" ]]; then
    printf '%s\n' "${BIN}"
    exit 0
fi

mkdir -p "${BIN_DIR}" "${GO_ROOT}/path" "${GO_ROOT}/build-cache" "${GO_ROOT}/mod-cache"
export GOPATH="${GO_ROOT}/path"
export GOCACHE="${GO_ROOT}/build-cache"
export GOMODCACHE="${GO_ROOT}/mod-cache"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:-} -trimpath -modcacherw -mod=readonly"
export CGO_ENABLED="${CGO_ENABLED:-0}"

# One build at a time on this cache (parallel test sessions).
exec 9>"${CACHE_ROOT}/compose-check/.install.lock"
flock 9
if [[ -x "${BIN}" ]]; then
    printf '%s\n' "${BIN}"
    exit 0
fi

log "building scripts/compose-check with $("${GO}" version) (a cold build takes a few minutes)"
start=$(date +%s)
(cd "${SOURCE}" && "${GO}" build -ldflags="-s -w" -o "${BIN}.tmp" .) >&2
mv "${BIN}.tmp" "${BIN}"
# Builds of earlier sources are of no more use.
find "${CACHE_ROOT}/compose-check" -mindepth 1 -maxdepth 1 -type d ! -name "${key}" -exec rm -rf {} +
log "built in $(($(date +%s) - start)) s: ${BIN}"
printf '%s\n' "${BIN}"
