#!/usr/bin/env bash
# Install the official OpenAI Node clients the TLS tests drive (tests/tls/*.mjs) from the npm registry,
# pinned below, and cache them so a second run is instant: `openai` (its realtime WebSocket clients),
# `@openai/agents-realtime` (the agents SDK's realtime transport), `ws` (the WebSocket both use in Node)
# and `zod` (a peer dependency of both).
#
# Prints the absolute path of the `node_modules` folder on stdout (its last line; nothing else goes there);
# progress goes to stderr. Run a script with `NODE_PATH=<that path> node script.mjs`, or import the
# packages by file URL from that folder.
#
# Environment:
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); the packages live in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/node-clients/<key>/node_modules
#   NPM              npm command (default: npm on PATH; Node.js and npm are installed from Debian's
#                    packages when missing); the registry is npm's own configuration
set -euo pipefail

# name@version, exact: the cache key is a hash of this list.
PACKAGES=(
    "openai@7.60.0"
    "@openai/agents-realtime@0.20.0"
    "ws@8.23.1"
    "zod@4.6.7"
)
NPM="${NPM:-npm}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/node-clients"

log() { printf 'install-node-clients: %s\n' "$*" >&2; }

manifest() { printf '%s\n' "${PACKAGES[@]}"; }

key="$(manifest | sha256sum | cut -c1-16)"
ROOT="${CACHE_ROOT}/${key}"
MODULES="${ROOT}/node_modules"
# Written last, holding the package list: a folder without it is an interrupted install.
STAMP="${ROOT}/.complete"

is_complete() { [[ -f "${STAMP}" && "$(<"${STAMP}")" == "$(manifest)" && -d "${MODULES}" ]]; }

# Fast path: installed for this list.
if is_complete; then
    printf '%s\n' "${MODULES}"
    exit 0
fi

# Node.js and npm from Debian's packages when the machine has none (as install-ovos.sh does for its tools).
missing=()
command -v node > /dev/null || missing+=(nodejs)
command -v "${NPM}" > /dev/null || missing+=(npm)
if ((${#missing[@]} > 0)); then
    if ! command -v apt-get > /dev/null; then
        log "install Node.js (20 or later) and npm: ${missing[*]} not on PATH"
        exit 1
    fi
    as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

mkdir -p "${CACHE_ROOT}"
# Serialise concurrent runs (e.g. parallel test sessions) on the same cache.
exec 9> "${CACHE_ROOT}/.install.lock"
if command -v flock > /dev/null 2>&1; then
    flock 9
fi
if is_complete; then
    printf '%s\n' "${MODULES}"
    exit 0
fi

STAGING="$(mktemp -d "${CACHE_ROOT}/.staging.XXXXXX")"
trap 'rm -rf "${STAGING}"' EXIT

log "installing ${PACKAGES[*]} with npm $("${NPM}" --version)"
start=$(date +%s)
printf '{"name": "ovos-media-gateway-node-clients", "private": true, "type": "module"}\n' > "${STAGING}/package.json"
(
    cd "${STAGING}"
    "${NPM}" install --no-audit --no-fund --no-update-notifier --loglevel=error --save-exact \
        "${PACKAGES[@]}" > /dev/null
) || {
    log "npm install failed; nothing was cached"
    exit 1
}
end=$(date +%s)

# Check that the pinned versions are the ones installed.
for entry in "${PACKAGES[@]}"; do
    name="${entry%@*}"
    version="${entry##*@}"
    installed="$(node -p "require('${STAGING}/node_modules/${name}/package.json').version")"
    if [[ "${installed}" != "${version}" ]]; then
        log "${name}: npm installed ${installed}, expected ${version}; nothing was cached"
        exit 1
    fi
done

# Swap the verified folder in, then mark it complete.
rm -rf "${ROOT}"
chmod 755 "${STAGING}"
mv "${STAGING}" "${ROOT}"
trap - EXIT
manifest > "${STAMP}"
log "installed in $((end - start)) s ($(du -sh "${MODULES}" | cut -f1)): ${MODULES}"
printf '%s\n' "${MODULES}"
