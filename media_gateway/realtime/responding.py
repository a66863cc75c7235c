"""Responses of a session: starting them, feeding them the pipeline's output, and ending them
(completion, cancel, barge-in, failure, timeout), plus server-side playout clearing. Functions of a
`RealtimeSession`, run with its lock held."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from media_gateway.pipeline.messages import PipelineAudio, PipelineEvent
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.ids import response_id as new_response_id
from media_gateway.realtime.responses import ResponseOptions, ResponseRun

if TYPE_CHECKING:
    from media_gateway.realtime.session import RealtimeSession


async def start_response(session: RealtimeSession, event_id: str | None, params: dict[str, Any]) -> None:
    config = session.config.to_dict()
    audio_output = (params.get("audio") or {}).get("output") or {}
    session_output = (config.get("audio") or {}).get("output") or {}
    modalities = params.get("output_modalities") or config.get("output_modalities") or ["audio"]
    options = ResponseOptions(
        output_modalities=list(modalities),
        output_format=audio_output.get("format")
        or session_output.get("format")
        or {"type": "audio/pcm", "rate": 24000},
        voice=audio_output.get("voice") or session_output.get("voice") or "alloy",
        max_output_tokens=params.get("max_output_tokens") or config.get("max_output_tokens") or "inf",
        in_conversation=params.get("conversation", "auto") != "none",
        metadata=params.get("metadata"),
        instructions=params.get("instructions") or session.config.instructions,
    )
    source = _response_input(session, params)
    run = ResponseRun(
        new_response_id(),
        conversation=session.conversation,
        conversation_id=f"conv_{session.id[5:]}",
        options=options,
        emit=session.emit,
        sink=session.audio_sink,
        input_text_words=len(str(source.get("input_text") or "").split()),
    )
    session.response = run
    await run.begin()
    if run.audio_mode and session.audio_sink is not None:
        session.audio_items[run.id] = run.item
    await session.publish(
        "response.create",
        response_id=run.id,
        instructions=options.instructions,
        output_modalities=options.output_modalities,
        **source,
    )
    session.response_watchdog = session.spawn(_watch_response(session, run), "response-watchdog")


def _response_input(session: RealtimeSession, params: dict[str, Any]) -> dict[str, Any]:
    """What the responder answers: explicit `input` items, else the last user message."""
    candidates = params.get("input") or [i for i in session.conversation.items if i.get("role") == "user"]
    for item in reversed(candidates):
        if item.get("type") == "item_reference":
            item = session.conversation.get(item.get("id", "")) or {}
        for part in reversed(item.get("content") or []):
            if part.get("type") == "input_text":
                return {"input_text": part.get("text", "")}
            if part.get("type") == "input_audio":
                if item.get("id") in session.transcripts:
                    return {"input_text": session.transcripts[item["id"]]}
                if part.get("transcript"):
                    return {"input_text": part["transcript"]}
                return {"input_item_id": item.get("id")}
    return {"input_text": ""}


async def _watch_response(session: RealtimeSession, run: ResponseRun) -> None:
    await asyncio.sleep(session.services.limits.response_timeout_seconds)
    async with session.lock:
        if session.response is run and not run.finished:
            await session.publish("response.cancel", response_id=run.id)
            await end_response(
                session,
                "failed",
                error={
                    "type": "server_error",
                    "code": "pipeline_timeout",
                    "message": "The speech pipeline did not answer in time.",
                },
            )


async def cancel_response(session: RealtimeSession, *, reason: str) -> None:
    run = session.response
    if run is None:
        return
    await session.publish("response.cancel", response_id=run.id)
    await end_response(session, "cancelled", reason=reason)


async def clear_playout(session: RealtimeSession) -> None:
    """Stop server-owned playout now; the item keeps only the audio actually played."""
    assert session.audio_sink is not None
    response_id = session.audio_sink.clear()
    if response_id is None:
        return
    played_ms = session.audio_sink.played_ms(response_id)
    await session.emit(ev.output_audio_buffer("cleared", response_id))
    item = session.audio_items.pop(response_id, None)
    if item is not None and played_ms < int(item.get("_audio_ms", 0)):
        truncate_item(item, played_ms)
        await session.conversation.save(item)
        await session.emit(ev.item_truncated(item["id"], 0, played_ms))


async def end_response(
    session: RealtimeSession, status: Any, *, reason: str | None = None, error: dict[str, Any] | None = None
) -> None:
    run = session.response
    if run is None:
        return
    session.response = None
    _stop_watchdog(session)
    await run.finish(status, reason=reason, error=error)


def _stop_watchdog(session: RealtimeSession) -> None:
    """Stop the response's pipeline timeout (unless it is the caller: it is ending the response itself)."""
    watchdog, session.response_watchdog = session.response_watchdog, None
    if watchdog is not None and watchdog is not asyncio.current_task():
        watchdog.cancel()


async def _complete_after_drain(session: RealtimeSession, run: ResponseRun) -> None:
    await run.drain_audio()
    async with session.lock:
        if session.response is run:
            await end_response(session, "completed")


# --- pipeline messages ----------------------------------------------------------------------------


async def on_pipeline(session: RealtimeSession, message: PipelineEvent | PipelineAudio) -> None:
    run = session.response
    if isinstance(message, PipelineAudio):
        if run is not None and message.headers.get("response_id") == run.id:
            run.audio(message.pcm, message.sample_rate)
        return
    data = message.data
    if message.type == "transcription.completed":
        await _transcribed(
            session,
            str(data.get("item_id")),
            str(data.get("transcript", "")),
            float(data.get("audio_seconds", 0.0)),
        )
    elif message.type == "transcription.delta":
        if session.config.transcription is not None:
            await session.emit(ev.transcription_delta(str(data.get("item_id")), str(data.get("delta", ""))))
    elif message.type == "transcription.failed":
        if session.config.transcription is not None:
            await session.emit(
                ev.transcription_failed(str(data.get("item_id")), str(data.get("message", "")))
            )
    elif run is not None and data.get("response_id") == run.id:
        if message.type == "response.text.delta":
            await run.text_delta(str(data.get("delta", "")))
        elif message.type == "response.done":
            status = data.get("status")
            if status == "completed":
                # The pipeline is done; what remains is paced delivery, which may outlast the
                # pipeline timeout for a long reply.
                _stop_watchdog(session)
                session.spawn(_complete_after_drain(session, run), "response-drain")
            elif status == "failed":
                await end_response(
                    session,
                    "failed",
                    error={
                        "type": "server_error",
                        "code": "pipeline_error",
                        "message": str(data.get("message", "")),
                    },
                )


async def _transcribed(session: RealtimeSession, item_id: str, transcript: str, audio_seconds: float) -> None:
    session.transcripts[item_id] = transcript
    item = session.conversation.get(item_id)
    if item is not None:
        for part in item.get("content") or []:
            if part.get("type") == "input_audio":
                part["transcript"] = transcript
        await session.conversation.save(item)
    if session.config.transcription is not None:
        await session.emit(ev.transcription_completed(item_id, transcript, audio_seconds))


def truncate_item(item: dict[str, Any], audio_end_ms: int) -> None:
    """Keep the audio up to `audio_end_ms`; the transcript is cut in proportion (the server has no word
    timings), so the conversation holds no text the user did not hear."""
    audio_ms = int(item.get("_audio_ms", 0)) or 1
    for part in item["content"]:
        if part.get("type") == "output_audio":
            transcript = part.get("transcript") or ""
            words = transcript.split()
            keep = int(len(words) * min(1.0, audio_end_ms / audio_ms))
            part["transcript"] = " ".join(words[:keep])
    item["_audio_ms"] = audio_end_ms
    with contextlib.suppress(KeyError):
        item["status"] = "incomplete" if audio_end_ms < audio_ms else item["status"]
