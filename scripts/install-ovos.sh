#!/usr/bin/env bash
# Install OpenVoiceOS (ovos-messagebus, ovos-core with padatious, the offline skills of deploy/ovos) into a
# virtualenv of its own and cache it, so a second run is instant. OVOS cannot share the gateway's environment:
# every stable ovos-bus-client requires pyee<13 and aiortc requires pyee>=13.
#
# The cache key is a hash of deploy/ovos (requirements, constraints, the example skill) and the Python
# version: change any of them and the next run builds a fresh environment beside the old one.
#
# Prints the absolute path of the virtualenv on stdout (its last line; nothing else goes there); progress
# goes to stderr. `media-gateway serve` starts the OVOS processes from it when MEDIA_GATEWAY_OVOS_VENV names it.
#
# Environment:
#   XDG_CACHE_HOME   cache root (default: $HOME/.cache); the environment lives in
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/ovos/<key>
#   PYTHON           the interpreter to build it with (default: python3)
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
SOURCE="${HERE}/deploy/ovos"
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ovos-media-gateway/ovos"

# fann2 (padatious' neural network) builds from source against Debian's libfann.
missing=()
command -v swig > /dev/null || missing+=(swig)
[[ -e /usr/include/fann.h ]] || missing+=(libfann-dev)
command -v g++ > /dev/null || missing+=(build-essential)
if ((${#missing[@]} > 0)); then
    as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    echo "installing system packages for OVOS: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

key="$(
    cd "${SOURCE}"
    {
        "${PYTHON}" -c 'import sys; print(sys.version)'
        find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path '*/build/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)"
# shellcheck source=scripts/cached-venv.sh
source "${HERE}/scripts/cached-venv.sh"
if cached_venv_open "${CACHE_ROOT}" "${key}"; then
    echo "installing OVOS into ${VENV}" >&2
    started=${SECONDS}
    # The example skill is built from a copy: a build in the source tree would leave build/ and egg-info there.
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    cp -r "${SOURCE}/skills" "${work}/skills"
    skills=()
    for skill in "${work}"/skills/*/; do
        skills+=("${skill}")
    done
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "${SOURCE}/constraints.txt" -r "${SOURCE}/requirements.txt" "${skills[@]}"
    cached_venv_close
    echo "OVOS installed in $((SECONDS - started)) s" >&2
fi
echo "${VENV}"
