"""Builders for the GA server events. Each returns the JSON-ready dict sent on the wire.

Field choices are what the official clients require (the `openai` SDK's pydantic models and the Agents
SDK for JavaScript's zod schemas): every event has an `event_id`, response-scoped events
carry integer indices, user `input_audio` parts always carry the `transcript` key, usage is either
numbers or null, never null counts.
"""

from __future__ import annotations

from typing import Any, Literal

from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import event_id

Event = dict[str, Any]
ResponseStatus = Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]


def _event(event_type: str, **fields: Any) -> Event:
    return {"type": event_type, "event_id": event_id(), **fields}


def error(exc: RealtimeError) -> Event:
    return _event(
        "error",
        error={
            "type": exc.error_type,
            "code": exc.code,
            "message": exc.message,
            "param": exc.param,
            "event_id": exc.event_id,
        },
    )


def session_created(session: dict[str, Any]) -> Event:
    return _event("session.created", session=session)


def session_updated(session: dict[str, Any]) -> Event:
    return _event("session.updated", session=session)


# --- input audio buffer -------------------------------------------------------------------------


def speech_started(item_id: str, audio_start_ms: int) -> Event:
    return _event("input_audio_buffer.speech_started", item_id=item_id, audio_start_ms=audio_start_ms)


def speech_stopped(item_id: str, audio_end_ms: int) -> Event:
    return _event("input_audio_buffer.speech_stopped", item_id=item_id, audio_end_ms=audio_end_ms)


def committed(item_id: str, previous_item_id: str | None) -> Event:
    return _event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id)


def cleared() -> Event:
    return _event("input_audio_buffer.cleared")


def dtmf_received(digit: str, received_at: int) -> Event:
    """A keypad press on a phone call. The GA model of this event has no `event_id` (upstream sends none)."""
    return {"type": "input_audio_buffer.dtmf_event_received", "event": digit, "received_at": received_at}


def output_audio_buffer(kind: Literal["started", "stopped", "cleared"], response_id: str) -> Event:
    return _event(f"output_audio_buffer.{kind}", response_id=response_id)


# --- conversation -------------------------------------------------------------------------------


def item_added(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _event("conversation.item.added", item=item, previous_item_id=previous_item_id)


def item_done(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _event("conversation.item.done", item=item, previous_item_id=previous_item_id)


def item_retrieved(item: dict[str, Any]) -> Event:
    return _event("conversation.item.retrieved", item=item)


def item_deleted(item_id: str) -> Event:
    return _event("conversation.item.deleted", item_id=item_id)


def item_truncated(item_id: str, content_index: int, audio_end_ms: int) -> Event:
    return _event(
        "conversation.item.truncated", item_id=item_id, content_index=content_index, audio_end_ms=audio_end_ms
    )


def transcription_delta(item_id: str, delta: str) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0, delta=delta
    )


def transcription_completed(item_id: str, transcript: str, audio_seconds: float) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(audio_seconds, 3)},
    )


def transcription_failed(item_id: str, message: str) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=0,
        error={"type": "server_error", "code": "transcription_failed", "message": message, "param": None},
    )


# --- responses ----------------------------------------------------------------------------------


def response_object(
    response_id: str,
    *,
    status: ResponseStatus,
    output: list[dict[str, Any]],
    conversation_id: str,
    output_modalities: list[str],
    max_output_tokens: int | str,
    audio_output: dict[str, Any] | None,
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
        "output_modalities": output_modalities,
        "max_output_tokens": max_output_tokens,
        "usage": usage,
        "metadata": metadata,
    }
    if audio_output is not None:
        response["audio"] = {"output": audio_output}
    return response


def usage(
    input_text_tokens: int, input_audio_tokens: int, output_text_tokens: int, output_audio_tokens: int
) -> dict[str, Any]:
    """Token-like counts: the gateway has no LLM tokens, so it counts words and 50 ms audio units."""
    input_tokens = input_text_tokens + input_audio_tokens
    output_tokens = output_text_tokens + output_audio_tokens
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_text_tokens, "audio_tokens": output_audio_tokens},
    }


def response_created(response: dict[str, Any]) -> Event:
    return _event("response.created", response=response)


def response_done(response: dict[str, Any]) -> Event:
    return _event("response.done", response=response)


def output_item_added(response_id: str, output_index: int, item: dict[str, Any]) -> Event:
    return _event("response.output_item.added", response_id=response_id, output_index=output_index, item=item)


def output_item_done(response_id: str, output_index: int, item: dict[str, Any]) -> Event:
    return _event("response.output_item.done", response_id=response_id, output_index=output_index, item=item)


def _scoped(
    event_type: str, response_id: str, item_id: str, output_index: int, content_index: int, **fields: Any
) -> Event:
    return _event(
        event_type,
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        **fields,
    )


def content_part_added(response_id: str, item_id: str, part: dict[str, Any]) -> Event:
    return _scoped("response.content_part.added", response_id, item_id, 0, 0, part=part)


def content_part_done(response_id: str, item_id: str, part: dict[str, Any]) -> Event:
    return _scoped("response.content_part.done", response_id, item_id, 0, 0, part=part)


def output_audio_delta(response_id: str, item_id: str, delta_base64: str) -> Event:
    return _scoped("response.output_audio.delta", response_id, item_id, 0, 0, delta=delta_base64)


def output_audio_done(response_id: str, item_id: str) -> Event:
    return _scoped("response.output_audio.done", response_id, item_id, 0, 0)


def output_audio_transcript_delta(response_id: str, item_id: str, delta: str) -> Event:
    return _scoped("response.output_audio_transcript.delta", response_id, item_id, 0, 0, delta=delta)


def output_audio_transcript_done(response_id: str, item_id: str, transcript: str) -> Event:
    return _scoped("response.output_audio_transcript.done", response_id, item_id, 0, 0, transcript=transcript)


def output_text_delta(response_id: str, item_id: str, delta: str) -> Event:
    return _scoped("response.output_text.delta", response_id, item_id, 0, 0, delta=delta)


def output_text_done(response_id: str, item_id: str, text: str) -> Event:
    return _scoped("response.output_text.done", response_id, item_id, 0, 0, text=text)


def rate_limits_updated(limits: list[dict[str, Any]]) -> Event:
    return _event("rate_limits.updated", rate_limits=limits)
