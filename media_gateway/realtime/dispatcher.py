"""Routes the pipeline's output messages to the sessions they belong to.

One subscription to this gateway instance's reply topic, not one per session: each message is decoded
once and handed to its session's inbox by key, so the cost of a message does not grow with the number
of sessions. The dispatcher never waits on a session: a session that cannot keep up is handled by its
own bounded inbox (below), not by stalling every other session's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.messages import PipelineAudio, PipelineEvent, decode

log = get_logger(__name__)

Message = PipelineEvent | PipelineAudio

# A reply's audio arrives faster than real time (the pipeline synthesises a sentence at once), so a few
# hundred chunks may wait here; 2048 chunks of 200 ms is several minutes of speech.
MAX_AUDIO_MESSAGES = 2048
# Control messages are few per turn; this many waiting means the session's consumer is stuck.
MAX_EVENT_MESSAGES = 4096
AUDIO_DROPPED = "response.audio_dropped"


class SessionInbox:
    """The pipeline messages waiting for one session's consumer task, bounded by kind.

    At the audio bound an audio chunk is not queued: it is counted, and an `AUDIO_DROPPED` event for its
    response takes its place (once per response), so the session fails that response visibly rather
    than play a reply with a hole in it. Control events are never dropped: at their bound the inbox is
    marked `overflowed` and the session ends with a server error instead of losing one.
    """

    def __init__(self, *, max_audio: int = MAX_AUDIO_MESSAGES, max_events: int = MAX_EVENT_MESSAGES) -> None:
        self._queue: deque[Message] = deque()
        self._max_audio = max_audio
        self._max_events = max_events
        self._audio = 0
        self._events = 0
        self._wake = asyncio.Event()
        self._broken: set[str] = set()
        self.dropped_audio = 0
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, message: Message) -> None:
        if isinstance(message, PipelineAudio):
            if self._audio >= self._max_audio:
                self.dropped_audio += 1
                response_id = message.headers.get("response_id", "")
                if response_id not in self._broken:
                    self._broken.add(response_id)
                    self._push(PipelineEvent(message.session_id, AUDIO_DROPPED, {"response_id": response_id}))
                return
            self._audio += 1
        elif self._events >= self._max_events:
            self.overflowed = True
            self._wake.set()
            return
        self._push(message)

    def _push(self, message: Message) -> None:
        if isinstance(message, PipelineEvent):
            self._events += 1
        self._queue.append(message)
        self._wake.set()

    async def get(self) -> Message | None:
        """The next message, or None once the inbox overflowed (the session must end)."""
        while not self._queue and not self.overflowed:
            self._wake.clear()
            await self._wake.wait()
        if self.overflowed:
            return None
        message = self._queue.popleft()
        if isinstance(message, PipelineAudio):
            self._audio -= 1
        else:
            self._events -= 1
        return message


class OutputDispatcher:
    def __init__(self, bus: Bus, topic: str) -> None:
        self._bus = bus
        self.topic = topic
        self._inboxes: dict[str, SessionInbox] = {}
        self._task: asyncio.Task[None] | None = None
        self.undeliverable = 0

    def register(self, session_id: str, inbox: SessionInbox) -> None:
        self._inboxes[session_id] = inbox

    def unregister(self, session_id: str) -> None:
        self._inboxes.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._inboxes)

    async def start(self) -> None:
        subscription = await self._bus.subscribe(self.topic)

        async def run() -> None:
            try:
                async for message in subscription:
                    inbox = self._inboxes.get(message.key)
                    if inbox is None:  # a session that ended; on a shared topic, another gateway's
                        self.undeliverable += 1
                        continue
                    try:
                        inbox.offer(decode(message))
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
