#!/usr/bin/env bash
# Install the Debian packages the test suite runs for real: the PostgreSQL server (initdb, pg_ctl), flite (the
# default speech synthesizer), espeak-ng (speaks the test utterances), Chromium for the browser tests, a Java 17
# runtime for the Kafka broker of the tests, and the SIP peers of the telephony tests: sipp (sip-tester), the
# baresip softphone, tcpdump and tshark (capture and read the RTP a call sends); coturn, the TURN server the
# WebRTC relay tests start on loopback (`turnserver -n` with everything on its command line: the package's
# own service stays disabled, /etc/default/coturn).
# Playwright drives Debian's Chromium with executable_path=/usr/bin/chromium: never run `playwright install`,
# which downloads a browser build.
# Idempotent and quiet when everything is present; needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    missing+=(postgresql)
fi
if [[ ! -x /usr/bin/flite ]]; then
    missing+=(flite)
fi
if [[ ! -x /usr/bin/espeak-ng ]]; then
    missing+=(espeak-ng)
fi
if [[ ! -x /usr/bin/chromium ]]; then
    missing+=(chromium)
fi

if [[ ! -x /usr/bin/sipp ]]; then
    missing+=(sip-tester)
fi
if [[ ! -x /usr/bin/baresip ]]; then
    missing+=(baresip-core)
fi
if [[ ! -x /usr/bin/tcpdump && ! -x /usr/sbin/tcpdump ]]; then
    missing+=(tcpdump)
fi
if [[ ! -x /usr/bin/tshark ]]; then
    missing+=(tshark)
fi
if [[ ! -x /usr/bin/turnserver ]]; then
    missing+=(coturn)
fi

if ! command -v java > /dev/null; then
    missing+=(openjdk-17-jre-headless)
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
