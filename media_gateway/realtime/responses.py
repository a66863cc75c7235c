"""The responses of one session: at most one in progress, server-initiated ones waiting their turn, and
finished ones whose audio a transport's track is still playing.

The session calls this object, never a `Response`'s internals: `create` (a client's `response.create`
or a detected turn), `server_started` (the pipeline speaks unprompted, e.g. an OVOS timer or reminder),
the pipeline's text, audio and done messages, `cancel`, `clear_playout`, `close`. It is also the sink's
`PlayoutListener`, so `output_audio_buffer.started/stopped` come from what the track actually played.

Bounds: a server-initiated reply that arrives while another response runs waits here (at most
`MAX_WAITING` of them, each holding at most `MAX_WAITING_MESSAGES` pipeline messages); past either bound
the waiting reply is cancelled in the pipeline and logged, never dropped without a trace.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.messages import PipelineAudio, PipelineEvent
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.conversation import Conversation
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import response_id as new_response_id
from media_gateway.realtime.response import Response, ResponseContext, ResponseOptions

log = get_logger(__name__)

Publish = Callable[..., Awaitable[None]]
Spawn = Callable[[Awaitable[None], str], Any]

MAX_WAITING = 8
# The shortest wait between two looks at the playhead while a spoken passage plays (a frame is 20 ms).
PLAYED_POLL_SECONDS = 0.02
MAX_WAITING_MESSAGES = 4096
PLAYING_HISTORY = 32


@dataclass
class _Waiting:
    response: Response
    messages: list[PipelineEvent | PipelineAudio] = field(default_factory=list)


class Responses:
    def __init__(
        self,
        *,
        context: ResponseContext,
        publish: Publish,
        spawn: Spawn,
        responds: bool,
    ) -> None:
        self._context = context
        self._publish = publish
        self._spawn = spawn
        self.responds = responds  # False for transcription sessions: they transcribe and never respond
        self.active: Response | None = None
        self._waiting: deque[_Waiting] = deque()
        self._playing: OrderedDict[str, Response] = OrderedDict()
        if context.sink is not None:
            context.sink.set_listener(self)

    @property
    def conversation(self) -> Conversation:
        return self._context.conversation

    # --- starting -----------------------------------------------------------------------------------------

    async def create(
        self,
        options: ResponseOptions,
        source: dict[str, Any],
        *,
        event_id: str | None = None,
    ) -> Response:
        """A client's `response.create`, or a turn that creates a response: start it now."""
        if not self.responds:
            raise RealtimeError(
                "response.create is not supported in a transcription session: it transcribes audio and "
                "never responds.",
                code="invalid_session_type",
                event_id=event_id,
            )
        if self.active is not None:
            raise RealtimeError(
                f"Conversation already has an active response in progress: {self.active.id}. Wait until the "
                "response is finished before creating a new one.",
                code="conversation_already_has_active_response",
                event_id=event_id,
            )
        response = self._new(
            new_response_id(), options, "client", len(str(source.get("input_text") or "").split())
        )
        self.active = response
        await response.begin()
        await self._publish(
            "response.create",
            response_id=response.id,
            instructions=options.instructions,
            output_modalities=options.output_modalities,
            **source,
        )
        return response

    async def server_started(self, response_id: str, options: ResponseOptions) -> None:
        """The pipeline began a reply nobody asked for: run it now, or once the current one ends."""
        if not self.responds or len(self._waiting) >= MAX_WAITING or self._known(response_id):
            log.warning("response.server_reply_refused", response_id=response_id, responds=self.responds)
            await self._publish("response.cancel", response_id=response_id)
            return
        response = self._new(response_id, options, "server", 0)
        if self.active is None:
            self.active = response
            await response.begin()
        else:
            self._waiting.append(_Waiting(response))

    def _new(self, response_id: str, options: ResponseOptions, origin: Any, words: int) -> Response:
        return Response(
            response_id,
            options=options,
            context=self._context,
            on_end=self._ended,
            origin=origin,
            input_text_words=words,
        )

    def _known(self, response_id: str) -> bool:
        return (self.active is not None and self.active.id == response_id) or any(
            w.response.id == response_id for w in self._waiting
        )

    async def _ended(self, response: Response) -> None:
        if self.active is response:
            self.active = None
            if response.began and not response.playout_ended.is_set():
                self._playing[response.id] = response
                while len(self._playing) > PLAYING_HISTORY:
                    self._playing.popitem(last=False)
        if self.active is None and self._waiting:
            waiting = self._waiting.popleft()
            self.active = waiting.response
            await waiting.response.begin()
            for message in waiting.messages:
                await self.on_pipeline(message)

    # --- pipeline output ------------------------------------------------------------------------------------

    async def on_pipeline(self, message: PipelineEvent | PipelineAudio) -> None:
        """A response message from the pipeline (text, audio, done), routed by its response id."""
        if isinstance(message, PipelineAudio):
            response_id = message.headers.get("response_id")
        else:
            response_id = message.data.get("response_id")
        if not isinstance(response_id, str):
            return
        alive = isinstance(message, PipelineEvent) and message.type == "response.alive"
        for waiting in self._waiting:
            if waiting.response.id == response_id:
                if not alive:  # a response that has not begun has no idle timer yet
                    await self._hold(waiting, message)
                return
        response = self.active
        if response is None or response.id != response_id:
            return  # a late message of a response that already ended
        response.heard()
        if isinstance(message, PipelineAudio):
            await response.audio(message.pcm, message.sample_rate)
        elif message.type == "response.text.delta":
            await response.text_delta(str(message.data.get("delta", "")))
        elif message.type == "response.mark":
            mark = str(message.data.get("mark", ""))
            self._spawn(self._report_played(response, mark, response.end_passage()), "audio-played")
        elif message.type == "response.done":
            await response.pipeline_done(
                str(message.data.get("status")), str(message.data.get("message", ""))
            )

    async def _report_played(self, response: Response, mark: str, position_ms: int) -> None:
        """Tell the pipeline when the listener has played the response's audio up to `position_ms` (the
        end of a spoken passage: OVOS then releases a skill that waits for its speech to end), or that it
        never will (the response was cancelled, or its playout cleared)."""
        while True:
            ahead_ms = position_ms - response.played_audio_ms
            if response.cut or ahead_ms <= 0:
                break
            # Playout runs in real time: sleep until it should be there, then look again.
            await asyncio.sleep(max(PLAYED_POLL_SECONDS, ahead_ms / 1000))
        await self._publish(
            "output_audio.played", response_id=response.id, mark=mark, interrupted=response.cut
        )

    async def _hold(self, waiting: _Waiting, message: PipelineEvent | PipelineAudio) -> None:
        if len(waiting.messages) < MAX_WAITING_MESSAGES:
            waiting.messages.append(message)
            return
        log.warning("response.server_reply_overflow", response_id=waiting.response.id)
        self._waiting.remove(waiting)
        await self._publish("response.cancel", response_id=waiting.response.id)

    # --- ending -------------------------------------------------------------------------------------------

    async def cancel(
        self, reason: str, *, response_id: str | None = None, event_id: str | None = None
    ) -> None:
        """Cancel the response in progress (`response_id`, if given, must name it)."""
        response = self.active
        if response is None or (response_id is not None and response_id != response.id):
            raise RealtimeError(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
                event_id=event_id,
            )
        await response.cancel(reason)

    async def fail(self, response_id: str, *, code: str, message: str) -> None:
        """End the response in progress as failed (when it is `response_id`), stopping the pipeline."""
        response = self.active
        if response is not None and response.id == response_id:
            await response.fail(code, message)

    async def interrupt(self) -> None:
        """The user started speaking over the reply (barge-in): cancel it and stop server playout."""
        if self.active is not None:
            await self.active.cancel("turn_detected")
        if self._context.sink is not None:
            await self.clear_playout()

    async def clear_playout(self) -> None:
        """Stop server-owned playout now; the item keeps only the audio actually played."""
        sink = self._context.sink
        assert sink is not None
        response_id = sink.clear()
        if response_id is None:
            return
        played_ms = sink.played_ms(response_id)
        await self._context.emit(ev.output_audio_buffer("cleared", response_id))
        response = self._playing.pop(response_id, None)
        if response is None and self.active is not None and self.active.id == response_id:
            response = self.active
        if response is not None:
            await response.playout_cleared(played_ms)

    async def close(self) -> None:
        """The session is closing: end every response once, storing unfinished items `incomplete`."""
        waiting, self._waiting = list(self._waiting), deque()
        for entry in waiting:
            await self._publish("response.cancel", response_id=entry.response.id)
        if self.active is not None:
            await self.active.abandon()
        for response in self._playing.values():
            response.playout_stopped()
        self._playing.clear()

    def item_in_use(self, item_id: str) -> bool:
        return self.active is not None and self.active.item.get("id") == item_id

    # --- PlayoutListener (called by the sink from its playout task) ----------------------------------

    def playout_started(self, response_id: str) -> None:
        self._spawn(self._context.emit(ev.output_audio_buffer("started", response_id)), "playout-started")

    def playout_stopped(self, response_id: str) -> None:
        response = self._playing.pop(response_id, None)
        if response is None and self.active is not None and self.active.id == response_id:
            response = self.active  # its audio finished playing before its drain completed it
        if response is not None:
            response.playout_stopped()
        self._spawn(self._context.emit(ev.output_audio_buffer("stopped", response_id)), "playout-stopped")


def response_input(conversation: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline answers: the explicit `input` items, else the conversation's last user message
    (its text, or its transcript, or — while the transcript is still on its way — the item's id)."""
    candidates = params.get("input") or [i for i in conversation.items if i.get("role") == "user"]
    for item in reversed(candidates):
        if item.get("type") == "item_reference":
            item = conversation.get(item.get("id", "")) or {}
        for part in reversed(item.get("content") or []):
            if part.get("type") == "input_text":
                return {"input_text": part.get("text", "")}
            if part.get("type") == "input_audio":
                if part.get("transcript"):
                    return {"input_text": part["transcript"]}
                return {"input_item_id": item.get("id")}
    return {"input_text": ""}
