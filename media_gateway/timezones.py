"""The time zone the gateway answers in when a session names none: a setting, else the host's zone.

The zone travels to the speech pipeline by name (it may run on another host), so it must be an IANA
name such as "Europe/Lisbon", not an offset. The host's zone is read the way the C library finds it:
`TZ`, then `/etc/timezone` (Debian), then the `/etc/localtime` symlink into the zoneinfo tree.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONEINFO_MARKER = "zoneinfo/"


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def host_zone(etc: Path = Path("/etc")) -> str:
    """The host's IANA zone name, or "UTC" when it cannot be told."""
    candidates: list[str] = []
    if tz := os.environ.get("TZ"):
        candidates.append(tz.removeprefix(":"))
    with contextlib.suppress(OSError):
        candidates.append((etc / "timezone").read_text().strip())
    try:
        target = str((etc / "localtime").readlink())
    except OSError:
        target = ""
    if _ZONEINFO_MARKER in target:
        candidates.append(target.rsplit(_ZONEINFO_MARKER, 1)[1])
    for name in candidates:
        if name and valid_zone(name):
            return name
    return "UTC"


def gateway_zone(setting: str | None) -> str:
    return setting if setting else host_zone()
