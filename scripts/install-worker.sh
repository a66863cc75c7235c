#!/usr/bin/env bash
# Install the speech worker's distribution (worker/: ovos-media-gateway-worker, OpenVoiceOS speech plugins,
# no aiortc) into a virtualenv of its own and cache it, so a second run is instant. This is the plain
# `pip install ./worker` an operator runs; the tests run `media-gateway worker` from it.
#
# The cache key is a hash of worker/pyproject.toml and the Python version. The package itself is copied into
# the environment at install time: to run the checkout's code from it, put the repository root first on
# PYTHONPATH (the tests do).
#
# Prints the absolute path of the virtualenv on stdout (its last line; nothing else goes there); progress
# goes to stderr.
#
# Environment:
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); the environment lives in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/worker/<key>
#   PYTHON           the interpreter to build it with (default: python3)
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/worker"

key="$(
    {
        "${PYTHON}" -c 'import sys; print(sys.version)'
        sha256sum "${HERE}/worker/pyproject.toml"
    } | sha256sum | cut -c1-16
)"
# shellcheck source=scripts/cached-venv.sh
source "${HERE}/scripts/cached-venv.sh"
if cached_venv_open "${CACHE_ROOT}" "${key}"; then
    echo "installing the worker distribution into ${VENV}" >&2
    started=${SECONDS}
    # Built from a copy: hatchling builds in place, and the wheel must not depend on the checkout's state.
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    cp -r "${HERE}/worker" "${HERE}/media_gateway" "${work}/"
    find "${work}" -name __pycache__ -prune -exec rm -rf {} +
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${work}/worker[test]"
    cached_venv_close
    echo "worker installed in $((SECONDS - started)) s" >&2
fi
echo "${VENV}"
