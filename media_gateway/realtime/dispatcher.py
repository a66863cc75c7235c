"""Routes the pipeline's output messages to the sessions they belong to.

One subscription to `OUTPUT_TOPIC` per gateway process, not one per session: each message is decoded
once and handed to its session's inbox by key, so the cost of a message does not grow with the number
of sessions.
"""

from __future__ import annotations

import asyncio
import contextlib

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.messages import OUTPUT_TOPIC, PipelineAudio, PipelineEvent, decode

log = get_logger(__name__)

Inbox = asyncio.Queue[PipelineEvent | PipelineAudio]


class OutputDispatcher:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._inboxes: dict[str, Inbox] = {}
        self._task: asyncio.Task[None] | None = None
        self.undeliverable = 0

    def register(self, session_id: str, inbox: Inbox) -> None:
        self._inboxes[session_id] = inbox

    def unregister(self, session_id: str) -> None:
        self._inboxes.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._inboxes)

    async def start(self) -> None:
        subscription = self._bus.subscribe(OUTPUT_TOPIC)

        async def run() -> None:
            try:
                async for message in subscription:
                    inbox = self._inboxes.get(message.key)
                    if inbox is None:
                        self.undeliverable += 1
                        continue
                    try:
                        inbox.put_nowait(decode(message))
                    except ValueError:
                        log.warning("dispatcher.bad_message", session_id=message.key)
            finally:
                await subscription.close()

        self._task = asyncio.create_task(run(), name="output-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
