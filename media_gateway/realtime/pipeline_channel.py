"""One session's side of the bus: what it publishes to the speech pipeline, with the headers the
pipeline needs to answer.

Every message carries `reply-to`, the reply topic of this gateway instance, so whichever worker owns
the session's partition (now, or after a rebalance) knows where its replies go. The turn events carry
the session's settings, so a worker that never saw `session.open` can still answer the turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.messages import (
    INPUT_TOPIC,
    REPLY_TO_HEADER,
    TURN_EVENTS,
    SessionSettings,
    audio_headers,
    event_payload,
)


class PipelineChannel:
    def __init__(
        self, bus: Bus, session_id: str, *, reply_to: str, settings: Callable[[], SessionSettings]
    ) -> None:
        self._bus = bus
        self._session_id = session_id
        self._reply_to = reply_to
        self._settings = settings
        self.state: dict[str, Any] | None = None  # the pipeline's last `session.state`

    async def audio(self, frame: bytes, *, seq: str) -> None:
        stamped = audio_headers(seq=seq)
        stamped[REPLY_TO_HEADER] = self._reply_to
        await self._bus.publish(INPUT_TOPIC, self._session_id, frame, stamped)

    async def event(self, event_type: str, **fields: Any) -> None:
        if event_type in TURN_EVENTS:
            fields.setdefault("session", self._settings().as_fields())
            if self.state is not None:
                fields.setdefault("state", self.state)
        payload, headers = event_payload(event_type, **fields)
        headers[REPLY_TO_HEADER] = self._reply_to
        await self._bus.publish(INPUT_TOPIC, self._session_id, payload, headers)
