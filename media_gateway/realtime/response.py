"""One response: its assistant item, its event sequence, its audio, its timers, and its one ending.

A `Response` owns everything that lives only as long as it does: the assistant item, the text so far,
the audio playout (`playout.ResponsePlayout`: deltas on a WebSocket, the transport's track on WebRTC),
the pipeline-timeout watchdog and the drain that completes it. Every task it starts, it cancels.

Event order follows upstream's GA trace: created → output_item.added → conversation.item.added →
content_part.added → deltas → audio/transcript done → content_part.done → conversation.item.done →
output_item.done → response.done. `response.done` is sent exactly once, whatever ends the response:
completion (after its audio was delivered), cancellation, barge-in, pipeline failure, timeout, audio
overflow. When the session closes mid-response the response still ends once: its item is stored
`incomplete` (the client is gone, so no events go out).

Every method runs with the session lock held; the response's own tasks take that lock before they act.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from media_gateway.observability.logging import get_logger
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.conversation import Conversation, Item, public_item
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import item_id as new_item_id
from media_gateway.realtime.playout import AudioSink, DeltaPlayout, ResponsePlayout, SinkPlayout

log = get_logger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
FinishStatus = Literal["completed", "cancelled", "failed", "incomplete"]
Origin = Literal["client", "server"]

MS_PER_AUDIO_TOKEN = 50


@dataclass(frozen=True)
class ResponseOptions:
    output_modalities: list[str]
    output_format: dict[str, Any] | None
    voice: str | None
    max_output_tokens: int | str
    in_conversation: bool = True
    metadata: dict[str, Any] | None = None
    instructions: str = ""

    @property
    def audio(self) -> bool:
        return "audio" in self.output_modalities and self.output_format is not None

    @classmethod
    def from_request(
        cls, session: dict[str, Any], params: dict[str, Any], instructions: str
    ) -> ResponseOptions:
        """`response.create`'s `response` parameters over the session's configuration."""
        audio_output = (params.get("audio") or {}).get("output") or {}
        session_output = (session.get("audio") or {}).get("output") or {}
        return cls(
            output_modalities=list(
                params.get("output_modalities") or session.get("output_modalities") or ["audio"]
            ),
            output_format=audio_output.get("format")
            or session_output.get("format")
            or {"type": "audio/pcm", "rate": 24000},
            voice=audio_output.get("voice") or session_output.get("voice") or "alloy",
            max_output_tokens=params.get("max_output_tokens") or session.get("max_output_tokens") or "inf",
            in_conversation=params.get("conversation", "auto") != "none",
            metadata=params.get("metadata"),
            instructions=params.get("instructions") or instructions,
        )


@dataclass(frozen=True)
class ResponseContext:
    """What a response needs from its session (passed in, so the response imports no session)."""

    conversation: Conversation
    conversation_id: str
    emit: Emit
    lock: asyncio.Lock
    cancel_in_pipeline: Callable[[str], Awaitable[None]]
    sink: AudioSink | None
    timeout_seconds: float  # the pipeline must finish the response within this
    # ... and say something of it (text, audio, `response.alive`) at least this often: a worker that died
    # mid-response is noticed in seconds, not at the end of the whole timeout.
    idle_timeout_seconds: float = 5.0
    # Told when a response hands its first audio to the transport (the session measures its turn latency).
    first_audio: Callable[[], None] = lambda: None


class Response:
    def __init__(
        self,
        response_id: str,
        *,
        options: ResponseOptions,
        context: ResponseContext,
        on_end: Callable[[Response], Awaitable[None]],
        origin: Origin = "client",
        input_text_words: int = 0,
    ) -> None:
        self.id = response_id
        self.options = options
        self.origin = origin
        self._context = context
        self._emit = context.emit
        self._on_end = on_end
        self._input_text_words = input_text_words
        self.item: Item = {
            "id": new_item_id(),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self._previous_item_id: str | None = None
        self._text: list[str] = []
        self._playout: ResponsePlayout | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.began = False
        self.finished = False
        self._audio_started = False
        self.pipeline_finished = False
        self._last_heard = 0.0
        # Set once the listener has all the audio it will get (delivered, stopped or cleared).
        self.playout_ended = asyncio.Event()
        # Set when the listener will not hear the rest of the audio (cancelled, failed, cleared).
        self.cut = False

    # --- lifecycle --------------------------------------------------------------------------------------

    async def begin(self) -> None:
        """Announce the response and its item; start its audio output and the pipeline timeout."""
        self.began = True
        await self._emit(ev.response_created(self._response("in_progress", [])))
        if self.options.in_conversation:
            self.item, self._previous_item_id = await self._context.conversation.add(self.item)
        else:
            self.item = {**self.item, "object": "realtime.item"}
        await self._emit(ev.output_item_added(self.id, 0, public_item(self.item)))
        if self.options.in_conversation:
            await self._emit(ev.item_added(public_item(self.item), self._previous_item_id))
        await self._emit(ev.content_part_added(self.id, self.item["id"], self._empty_part()))
        if self.options.audio:
            self._playout = self._new_playout()
        self._spawn(self._watch_pipeline(), "response-watchdog")

    def _new_playout(self) -> ResponsePlayout:
        if self._context.sink is not None:
            return SinkPlayout(self._context.sink, self.id)
        assert self.options.output_format is not None
        return DeltaPlayout(
            self.options.output_format, self._emit, response_id=self.id, item_id=self.item["id"]
        )

    def _empty_part(self) -> dict[str, Any]:
        return {"type": "audio", "transcript": ""} if self.options.audio else {"type": "text", "text": ""}

    # --- output from the pipeline -----------------------------------------------------------------------

    async def text_delta(self, delta: str) -> None:
        if self.finished or not delta:
            return
        self._text.append(delta)
        if self.options.audio:
            await self._emit(ev.output_audio_transcript_delta(self.id, self.item["id"], delta))
        else:
            await self._emit(ev.output_text_delta(self.id, self.item["id"], delta))

    async def audio(self, pcm: bytes, sample_rate: int) -> None:
        if self.finished or self._playout is None:
            return
        if not self._audio_started:
            self._audio_started = True
            self._context.first_audio()
        if not self._playout.play(pcm, sample_rate):
            await self.fail("audio_overflow", "The reply's audio exceeded the playout buffer.")

    async def pipeline_done(self, status: str, message: str = "") -> None:
        """The pipeline finished this response: complete it once its audio is delivered, or fail it."""
        if self.finished or self.pipeline_finished:
            return
        self.pipeline_finished = True
        if status == "completed":
            # What remains is paced delivery, which may outlast the pipeline timeout for a long reply.
            self._cancel_tasks("response-watchdog")
            if self._playout is not None:
                self._playout.finish()
            self._spawn(self._complete_after_drain(), "response-drain")
        elif status == "failed":
            await self.finish("failed", error=_error("pipeline_error", message))
        else:  # cancelled by the pipeline itself
            await self.finish("cancelled", reason="client_cancelled")

    async def _complete_after_drain(self) -> None:
        if self._playout is not None:
            await self._playout.drained()
        async with self._context.lock:
            await self.finish("completed")

    def heard(self) -> None:
        """The pipeline said something of this response (its idle timer starts again)."""
        self._last_heard = asyncio.get_running_loop().time()

    async def _watch_pipeline(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._context.timeout_seconds
        self._last_heard = loop.time()
        while True:
            idle_deadline = self._last_heard + self._context.idle_timeout_seconds
            now = loop.time()
            if now >= deadline or now >= idle_deadline:
                break
            await asyncio.sleep(min(deadline, idle_deadline) - now)
        async with self._context.lock:
            if self.finished or self.pipeline_finished:
                return
            if loop.time() >= deadline:
                code, message = "pipeline_timeout", "The speech pipeline did not answer in time."
            else:
                code = "pipeline_unresponsive"
                message = (
                    "The speech pipeline stopped answering (no word of the response for "
                    f"{self._context.idle_timeout_seconds:g} s)."
                )
            # The client may not watch response.done's status_details: say it as an error event too.
            await self._emit(ev.error(RealtimeError(message, code=code, error_type="server_error")))
            await self.fail(code, message)

    # --- ending -------------------------------------------------------------------------------------------

    async def cancel(self, reason: str) -> None:
        """Client cancel or barge-in: stop the pipeline and the audio, end as cancelled."""
        if self.finished:
            return
        if not self.pipeline_finished:
            await self._context.cancel_in_pipeline(self.id)
        await self.finish("cancelled", reason=reason)

    async def fail(self, code: str, message: str) -> None:
        """End as failed with a server error (the pipeline is told to stop, unless it already has)."""
        if self.finished:
            return
        if not self.pipeline_finished:
            await self._context.cancel_in_pipeline(self.id)
        await self.finish("failed", error=_error(code, message))

    async def finish(
        self, status: FinishStatus, *, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        """Emit the closing events once and store the item; then tell the owner the response ended."""
        if self.finished:
            return
        self.finished = True
        self.cut = status != "completed"
        self._cancel_tasks()
        try:
            if self.began:
                await self._close_events(status, reason, error)
        finally:
            await self._on_end(self)

    async def _close_events(
        self, status: FinishStatus, reason: str | None, error: dict[str, Any] | None
    ) -> None:
        completed = status == "completed"
        if self._playout is not None and not completed:
            self._playout.stop()
        text = "".join(self._text)
        if self.options.audio:
            part: dict[str, Any] = {"type": "audio", "transcript": text}
            content = [{"type": "output_audio", "transcript": text}]
            await self._emit(ev.output_audio_done(self.id, self.item["id"]))
            await self._emit(ev.output_audio_transcript_done(self.id, self.item["id"], text))
        else:
            part = {"type": "text", "text": text}
            content = [{"type": "output_text", "text": text}]
            await self._emit(ev.output_text_done(self.id, self.item["id"], text))
        await self._emit(ev.content_part_done(self.id, self.item["id"], part))
        self.item["content"] = content
        self.item["status"] = "completed" if completed else "incomplete"
        if self._playout is not None:
            # A completed response's item holds all its audio (a sink may still be playing it); an
            # interrupted one holds only what reached the listener.
            self.item["_audio_ms"] = self._playout.queued_ms if completed else self._playout.delivered_ms
        if self.options.in_conversation:
            try:
                await self._context.conversation.save(self.item)
            except Exception:
                # The store failed (a database error): the client still gets the closing events, with the
                # response failed and saying why, instead of waiting for a response.done that never comes.
                log.exception("response.store_failed", response_id=self.id)
                status, completed = "failed", False
                self.item["status"] = "incomplete"
                reason = None
                error = _error("item_store_failed", "The response could not be stored in the conversation.")
            else:
                await self._emit(ev.item_done(public_item(self.item), self._previous_item_id))
        await self._emit(ev.output_item_done(self.id, 0, public_item(self.item)))
        details = None if completed else {"type": status, "reason": reason, "error": error}
        usage = ev.usage(
            self._input_text_words,
            0,
            len(text.split()),
            (self._playout.delivered_ms if self._playout is not None else 0) // MS_PER_AUDIO_TOKEN,
        )
        await self._emit(
            ev.response_done(
                self._response(status, [public_item(self.item)], status_details=details, usage=usage)
            )
        )
        if self._playout is None or not self._playout.server_owned or not completed:
            self.playout_ended.set()

    async def abandon(self) -> None:
        """The session is closing: end once, with the item stored `incomplete` (events go nowhere)."""
        if not self.finished and not self.pipeline_finished:
            with contextlib.suppress(Exception):
                await self._context.cancel_in_pipeline(self.id)
        await self.finish("incomplete")
        self.playout_ended.set()

    # --- server-owned playout -----------------------------------------------------------------------------

    def playout_stopped(self) -> None:
        self.playout_ended.set()

    @property
    def delivered_audio_ms(self) -> int:
        return self._playout.delivered_ms if self._playout is not None else 0

    @property
    def queued_audio_ms(self) -> int:
        return self._playout.queued_ms if self._playout is not None else 0

    def end_passage(self) -> int:
        """A spoken passage ended with the audio so far: send all of it; returns its end, in ms."""
        if self._playout is not None:
            self._playout.end_passage()
        return self.queued_audio_ms

    @property
    def played_audio_ms(self) -> int:
        """Audio the listener has played by now (a spoken passage ends when this reaches its mark)."""
        return self._playout.played_ms if self._playout is not None else 0

    async def playout_cleared(self, played_ms: int) -> None:
        """The sink dropped this response's unplayed audio: keep only what was heard in the item."""
        self.playout_ended.set()
        self.cut = True
        if not self.finished or not self.options.in_conversation:
            return
        if played_ms < int(self.item.get("_audio_ms", 0)):
            truncate_item(self.item, played_ms)
            await self._context.conversation.save(self.item)
            await self._emit(ev.item_truncated(self.item["id"], 0, played_ms))

    # --- helpers ------------------------------------------------------------------------------------------

    def _response(self, status: ev.ResponseStatus, output: list[Item], **extra: Any) -> dict[str, Any]:
        audio_output = (
            {"format": self.options.output_format, "voice": self.options.voice}
            if self.options.audio
            else None
        )
        return ev.response_object(
            self.id,
            status=status,
            output=output,
            conversation_id=self._context.conversation_id if self.options.in_conversation else "",
            output_modalities=self.options.output_modalities,
            max_output_tokens=self.options.max_output_tokens,
            audio_output=audio_output,
            metadata=self.options.metadata,
            **extra,
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=f"{name}:{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_tasks(self, prefix: str = "") -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and task.get_name().startswith(prefix):
                task.cancel()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "server_error", "code": code, "message": message}


def truncate_item(item: Item, audio_end_ms: int) -> None:
    """Keep the audio up to `audio_end_ms`; the transcript is cut in proportion (the server has no word
    timings), so the conversation holds no text the user did not hear."""
    audio_ms = int(item.get("_audio_ms", 0)) or 1
    for part in item["content"]:
        if part.get("type") == "output_audio":
            words = (part.get("transcript") or "").split()
            part["transcript"] = " ".join(words[: int(len(words) * min(1.0, audio_end_ms / audio_ms))])
    if audio_end_ms < audio_ms:
        item["status"] = "incomplete"
    item["_audio_ms"] = audio_end_ms
