"""The pipeline's OVOS: one messagebus connection per process, shared by every session it serves.

Every message on the bus reaches every client, so `OvosAssistant` routes: a message goes to the session
its `context.session.session_id` names, if this process serves that session, unless it is this process's
own message echoed back (its source is `gateway:<session>`). Everything else (other sessions, other
gateways' and workers' sessions, the "default" session of a local device, GUI noise, messages with no
session) is ignored. OVOS replies carry `destination == "gateway:<session>"`; messages OVOS forwards
unchanged (`mycroft.audio.speech.stop`, `mycroft.stop`) carry only the session, so the session id is what
routes, not the destination.

When the connection drops, every session hears `CONNECTION_LOST` (turns in flight fail at once, not at
their timeout).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from media_gateway.observability.logging import get_logger
from media_gateway.ovos.admission import TurnAdmission
from media_gateway.ovos.bus import OvosBusClient
from media_gateway.ovos.message import OvosMessage, is_echo

log = get_logger(__name__)

CONNECTION_LOST: Final = "gateway.ovos.connection_lost"

Listener = Callable[[OvosMessage], None]


class OvosAssistant:
    def __init__(self, url: str, *, admission: TurnAdmission, turn_timeout_seconds: float = 20.0) -> None:
        self.admission = admission
        self.turn_timeout_seconds = turn_timeout_seconds
        self._listeners: dict[str, Listener] = {}
        self._client = OvosBusClient(
            url, on_message=self._route, on_connection=self._connection, name="ovos-assistant"
        )
        self.ignored = 0

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def start(self) -> None:
        await self._client.start()

    async def wait_connected(self, seconds: float) -> None:
        await self._client.wait_connected(seconds)

    async def stop(self) -> None:
        await self._client.stop()

    async def send(self, message: OvosMessage) -> None:
        await self._client.send(message)

    def attach(self, session_id: str, listener: Listener) -> None:
        self._listeners[session_id] = listener

    def detach(self, session_id: str) -> None:
        self._listeners.pop(session_id, None)
        self.admission.leave(session_id)

    def _route(self, message: OvosMessage) -> None:
        session_id = message.session_id
        listener = self._listeners.get(session_id) if session_id else None
        if listener is None or is_echo(message, session_id or ""):
            self.ignored += 1
            return
        listener(message)

    def _connection(self, up: bool) -> None:
        if up:
            return
        for session_id, listener in list(self._listeners.items()):
            listener(OvosMessage(CONNECTION_LOST, {}, {"session": {"session_id": session_id}}))
