#!/usr/bin/env bash
# Build the real OPA server from source with the Go toolchain (through the configured Go module proxy),
# pinned to a release, and cache it so a second run is instant.
#
# Prints the absolute path of the `opa` binary on stdout (and nothing else); progress goes to stderr.
#
# Environment:
#   OPA_VERSION      release tag to build (default below)
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); everything lives in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/
#   GO               go command (default: go on PATH)
#
# OPA's go.mod names the Go version it needs; if the local toolchain is older, `go` switches toolchains
# itself via GOTOOLCHAIN=auto (the toolchain is a module fetched from the same module proxy).
set -euo pipefail

OPA_VERSION="${OPA_VERSION:-v1.22.3}"
GO="${GO:-go}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway"
GO_ROOT="${CACHE_ROOT}/go"
BIN_DIR="${CACHE_ROOT}/opa/${OPA_VERSION}/bin"
OPA_BIN="${BIN_DIR}/opa"

log() { printf 'install-opa: %s\n' "$*" >&2; }

# Fast path: already built for this version and it runs.
if [[ -x "${OPA_BIN}" ]] && "${OPA_BIN}" version >/dev/null 2>&1; then
    printf '%s\n' "${OPA_BIN}"
    exit 0
fi

if ! command -v "${GO}" >/dev/null 2>&1; then
    log "the Go toolchain ('${GO}') is not on PATH; install Go to build OPA ${OPA_VERSION}"
    exit 1
fi

mkdir -p "${BIN_DIR}" "${GO_ROOT}/path" "${GO_ROOT}/build-cache" "${GO_ROOT}/mod-cache"

export GOBIN="${BIN_DIR}"
export GOPATH="${GO_ROOT}/path"
export GOCACHE="${GO_ROOT}/build-cache"
export GOMODCACHE="${GO_ROOT}/mod-cache"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:-} -trimpath -modcacherw"
export CGO_ENABLED="${CGO_ENABLED:-0}"

# Serialise concurrent runs (e.g. parallel test sessions) on the same cache.
exec 9>"${CACHE_ROOT}/opa/.install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [[ -x "${OPA_BIN}" ]] && "${OPA_BIN}" version >/dev/null 2>&1; then
    printf '%s\n' "${OPA_BIN}"
    exit 0
fi

log "building github.com/open-policy-agent/opa@${OPA_VERSION} with $("${GO}" version) (this takes a few minutes)"
start=$(date +%s)
"${GO}" install -ldflags="-s -w" "github.com/open-policy-agent/opa@${OPA_VERSION}" >&2
end=$(date +%s)

if ! "${OPA_BIN}" version >/dev/null 2>&1; then
    log "build finished but ${OPA_BIN} does not run"
    exit 1
fi
log "built in $((end - start)) s: ${OPA_BIN} ($(du -h "${OPA_BIN}" | cut -f1))"
printf '%s\n' "${OPA_BIN}"
