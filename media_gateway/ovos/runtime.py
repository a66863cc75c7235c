"""The OVOS a pipeline process uses: a local one it starts (settings `ovos_venv`), or the one already
serving `ovos_bus_url`; and the assistant connected to it. Gateway and worker build it the same way.

Start-up does not wait for a remote OVOS: a process whose OVOS is down starts, reports `ovos` not ready on
/ready, and its turns fail with a clear message until the bus is back (the client reconnects by itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from media_gateway.observability.metrics import OvosMetrics
from media_gateway.ovos.admission import TurnAdmission, default_limit
from media_gateway.ovos.assistant import OvosAssistant
from media_gateway.ovos.local import LocalOvos, LocalOvosConfig
from media_gateway.settings import Settings

_LOCAL_CONNECT_SECONDS: Final = 10.0


@dataclass(frozen=True)
class OvosRuntime:
    assistant: OvosAssistant
    local: LocalOvos | None

    def state(self) -> str:
        """ "ok", or why not (for /ready)."""
        if self.local is not None and not self.local.ready:
            return "unavailable: the local OVOS stopped"
        return "ok" if self.assistant.connected else "unavailable: not connected to the OVOS messagebus"


def local_config(settings: Settings) -> LocalOvosConfig:
    assert settings.ovos_venv is not None
    url = urlsplit(settings.ovos_bus_url)
    return LocalOvosConfig(
        venv=settings.ovos_venv.resolve(),
        home=settings.ovos_home.resolve(),
        host=url.hostname or "127.0.0.1",
        port=url.port or 8181,
        start_timeout_seconds=settings.ovos_start_timeout_seconds,
    )


@contextlib.asynccontextmanager
async def running_ovos(settings: Settings, metrics: OvosMetrics) -> AsyncIterator[OvosRuntime]:
    local = LocalOvos(local_config(settings)) if settings.ovos_venv is not None else None
    if local is not None:
        await local.start()
    admission = TurnAdmission(
        settings.ovos_max_turns or default_limit(),
        settings.ovos_admission_wait_seconds,
        observer=metrics,
    )
    assistant = OvosAssistant(
        local.url if local is not None else settings.ovos_bus_url,
        admission=admission,
        turn_timeout_seconds=settings.ovos_turn_timeout_seconds,
    )
    metrics.connected.set_function(lambda: 1.0 if assistant.connected else 0.0)
    try:
        await assistant.start()
        if local is not None:  # it is up: sessions must not race the first connection
            await assistant.wait_connected(_LOCAL_CONNECT_SECONDS)
        yield OvosRuntime(assistant, local)
    finally:
        await assistant.stop()
        if local is not None:
            await local.stop()
