#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser/). Playwright (a Python dev dependency) drives
# it with executable_path=/usr/bin/chromium: never run `playwright install`, which downloads a browser build.
# Idempotent and quiet when Chromium is present; needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
if [[ ! -x /usr/bin/chromium ]]; then
    missing+=(chromium)
fi
if [[ ! -x /usr/bin/espeak-ng ]]; then
    missing+=(espeak-ng)  # speaks the fake microphone's sentence
fi

if ((${#missing[@]} == 0)); then
    exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    as_root=(sudo)
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
