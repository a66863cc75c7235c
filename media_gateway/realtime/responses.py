"""One response: its assistant item, its event sequence, and its audio out.

The order of events follows the live GA trace (`realtime-protocol.md` §5.1): created → output_item.added
→ conversation.item.added → content_part.added → deltas → audio/transcript done → content_part.done →
conversation.item.done → output_item.done → response.done. `response.done` is sent exactly once,
whatever ends the response (completion, cancel, barge-in, pipeline failure, timeout).

Audio goes out paced at real time plus a small lead, by a task the response owns. Pacing is what makes
"the audio actually delivered" meaningful on barge-in: a cancelled response stops sending, and its item
is truncated at what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from media_gateway.codecs import OutputAudioEncoder
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.conversation import Conversation, Item, public_item
from media_gateway.realtime.ids import item_id as new_item_id
from media_gateway.realtime.playout import AudioSink

Emit = Callable[[dict[str, Any]], Awaitable[None]]
FinishStatus = Literal["completed", "cancelled", "failed", "incomplete"]

AUDIO_LEAD_SECONDS = 0.5  # how far ahead of real time audio may be sent
MS_PER_AUDIO_TOKEN = 50


@dataclass
class ResponseOptions:
    output_modalities: list[str]
    output_format: dict[str, Any] | None
    voice: str | None
    max_output_tokens: int | str
    in_conversation: bool = True
    metadata: dict[str, Any] | None = None
    instructions: str = ""


@dataclass
class _Audio:
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    sent_ms: float = 0.0
    encoder: OutputAudioEncoder | None = None


class ResponseRun:
    def __init__(
        self,
        response_id: str,
        *,
        conversation: Conversation,
        conversation_id: str,
        options: ResponseOptions,
        emit: Emit,
        input_text_words: int = 0,
        input_audio_ms: int = 0,
        sink: AudioSink | None = None,
    ) -> None:
        self.id = response_id
        self._conversation = conversation
        self._conversation_id = conversation_id
        self.options = options
        self._emit = emit
        self._input_text_words = input_text_words
        self._input_audio_ms = input_audio_ms
        self.audio_mode = "audio" in options.output_modalities and options.output_format is not None
        self.item: Item = {
            "id": new_item_id(),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self._previous_item_id: str | None = None
        self._text: list[str] = []
        self._audio = _Audio()
        # With a sink (WebRTC) the transport plays the audio on its track: no deltas, no encoding here.
        self._sink = sink if self.audio_mode else None
        if self.audio_mode and self._sink is None and options.output_format is not None:
            self._audio.encoder = OutputAudioEncoder(options.output_format)
        self._audio_task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self.finished = False

    # --- lifecycle --------------------------------------------------------------------------------

    def _response(self, status: ev.ResponseStatus, output: list[Item], **extra: Any) -> dict[str, Any]:
        audio_output = (
            {"format": self.options.output_format, "voice": self.options.voice} if self.audio_mode else None
        )
        return ev.response_object(
            self.id,
            status=status,
            output=output,
            conversation_id=self._conversation_id if self.options.in_conversation else "",
            output_modalities=self.options.output_modalities,
            max_output_tokens=self.options.max_output_tokens,
            audio_output=audio_output,
            metadata=self.options.metadata,
            **extra,
        )

    async def begin(self) -> None:
        await self._emit(ev.response_created(self._response("in_progress", [])))
        item = dict(self.item)
        if self.options.in_conversation:
            stored, self._previous_item_id = await self._conversation.add(item)
            self.item = stored
        else:
            self.item = {**item, "object": "realtime.item"}
        await self._emit(ev.output_item_added(self.id, 0, public_item(self.item)))
        if self.options.in_conversation:
            await self._emit(ev.item_added(public_item(self.item), self._previous_item_id))
        await self._emit(ev.content_part_added(self.id, self.item["id"], self._empty_part()))
        self._started_at = time.monotonic()
        if self.audio_mode and self._sink is None:
            self._audio_task = asyncio.create_task(self._send_audio(), name=f"audio-out:{self.id}")

    def _empty_part(self) -> dict[str, Any]:
        return {"type": "audio", "transcript": ""} if self.audio_mode else {"type": "text", "text": ""}

    # --- output from the pipeline -------------------------------------------------------------------

    async def text_delta(self, delta: str) -> None:
        if self.finished or not delta:
            return
        self._text.append(delta)
        if self.audio_mode:
            await self._emit(ev.output_audio_transcript_delta(self.id, self.item["id"], delta))
        else:
            await self._emit(ev.output_text_delta(self.id, self.item["id"], delta))

    def audio(self, pcm: bytes, sample_rate: int) -> None:
        if self.finished or not self.audio_mode:
            return
        if self._sink is not None:
            self._sink.play(self.id, pcm, sample_rate)
            return
        if self._audio.encoder is None:
            return
        encoded = self._audio.encoder.encode(pcm, sample_rate)
        if encoded:
            self._audio.queue.put_nowait(encoded)

    async def _send_audio(self) -> None:
        encoder = self._audio.encoder
        assert encoder is not None
        while True:
            chunk = await self._audio.queue.get()
            if chunk is None:
                return
            duration_ms = encoder.duration_ms(chunk)
            # Pace: never more than AUDIO_LEAD_SECONDS ahead of real time since the response began.
            ahead = (self._audio.sent_ms / 1000) - (time.monotonic() - self._started_at) - AUDIO_LEAD_SECONDS
            if ahead > 0:
                await asyncio.sleep(ahead)
            await self._emit(
                ev.output_audio_delta(self.id, self.item["id"], base64.b64encode(chunk).decode())
            )
            self._audio.sent_ms += duration_ms

    @property
    def delivered_audio_ms(self) -> int:
        """Audio the client has: sent as deltas (WebSocket), or actually played out (sink)."""
        if self._sink is not None:
            return self._sink.played_ms(self.id)
        return int(self._audio.sent_ms)

    @property
    def queued_audio_ms(self) -> int:
        if self._sink is not None:
            return self._sink.queued_ms(self.id)
        return int(self._audio.sent_ms)

    async def drain_audio(self) -> None:
        """Wait until every queued chunk has been sent (the pipeline said the response is complete)."""
        if self._audio_task is None:
            return
        if self._audio.encoder is not None:
            tail = self._audio.encoder.flush()
            if tail:
                self._audio.queue.put_nowait(tail)
        self._audio.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._audio_task)

    async def stop_audio(self) -> None:
        if self._audio_task is not None and not self._audio_task.done():
            self._audio_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audio_task

    # --- the end ------------------------------------------------------------------------------------

    async def finish(
        self, status: FinishStatus, *, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        """Emit the closing events once. Call `drain_audio()` first for a completed response."""
        if self.finished:
            return
        self.finished = True
        await self.stop_audio()
        text = "".join(self._text)
        item_status = "completed" if status == "completed" else "incomplete"
        if self.audio_mode:
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
        self.item["status"] = item_status
        if self.audio_mode:
            # A completed response's item holds all its audio (a sink may still be playing it); an
            # interrupted one holds only what reached the listener.
            completed = status == "completed"
            self.item["_audio_ms"] = self.queued_audio_ms if completed else self.delivered_audio_ms
        if self.options.in_conversation:
            await self._conversation.save(self.item)
            await self._emit(ev.item_done(public_item(self.item), self._previous_item_id))
        await self._emit(ev.output_item_done(self.id, 0, public_item(self.item)))
        details: dict[str, Any] | None = None
        if status != "completed":
            details = {"type": status, "reason": reason, "error": error}
        usage = ev.usage(
            self._input_text_words,
            self._input_audio_ms // MS_PER_AUDIO_TOKEN,
            len(text.split()),
            self.delivered_audio_ms // MS_PER_AUDIO_TOKEN,
        )
        await self._emit(
            ev.response_done(
                self._response(status, [public_item(self.item)], status_details=details, usage=usage)
            )
        )
