"""What the engine does for each client event and each detected turn.

Each handler validates what the session alone can judge, then asks the session's parts to act: the
conversation (`session.conversation`), the input buffer (`session.input_audio`), the responses
(`session.responses`), or the session itself for its configuration. Every handler runs with the
session lock held.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from media_gateway.realtime import server_events as ev
from media_gateway.realtime.client_events import ClientEvent
from media_gateway.realtime.conversation import public_item
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import item_id as new_item_id
from media_gateway.realtime.response import truncate_item
from media_gateway.realtime.session_config import SessionConfigError, parse_session_update

if TYPE_CHECKING:
    from media_gateway.realtime.session import RealtimeSession

MIN_COMMIT_MS = 100
SUPPORTED_ITEM_TYPES = ("message", "function_call", "function_call_output")


# --- session ------------------------------------------------------------------------------------


async def on_session_update(session: RealtimeSession, event: ClientEvent) -> None:
    try:
        updated = parse_session_update(session.config, event.data["session"])
    except SessionConfigError as exc:
        raise RealtimeError(exc.message, code=exc.code, param=exc.param, event_id=event.event_id) from None
    decision = await session.services.policy.decide(
        "session_update",
        {
            "key": session.principal.key,
            "session": {"id": session.id, "type": session.config.type},
            "current": session.config.policy_summary(),
            "requested": updated.policy_summary(),
        },
    )
    if not decision.allow:
        raise RealtimeError(
            f"Session update denied by policy: {'; '.join(decision.reasons) or 'denied'}.",
            code="policy_denied",
            param="session",
            event_id=event.event_id,
        )
    await session.apply_config(updated)
    await session.emit(ev.session_updated(session.session_view()))


# --- input audio buffer -------------------------------------------------------------------------


async def on_input_audio_buffer_append(session: RealtimeSession, event: ClientEvent) -> None:
    audio = event.data["audio"]
    limit = session.services.limits.max_append_bytes
    if len(audio) > limit * 4 // 3 + 4:
        raise RealtimeError(
            f"Audio chunk too large: at most {limit} bytes per append.",
            code="audio_too_large",
            param="audio",
            event_id=event.event_id,
        )
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeError(
            "Invalid 'audio': expected base64-encoded audio bytes.",
            code="invalid_value",
            param="audio",
            event_id=event.event_id,
        ) from None
    await session.on_turn_events(await session.input_audio.append_encoded(data, event.event_id))


async def on_input_audio_buffer_commit(session: RealtimeSession, event: ClientEvent) -> None:
    buffered = session.input_audio.buffered_ms
    if buffered < MIN_COMMIT_MS:
        raise RealtimeError(
            "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
            f"but buffer only has {buffered:.2f}ms of audio.",
            code="input_audio_buffer_commit_empty",
            event_id=event.event_id,
        )
    await commit_audio(session, session.input_audio.speech_item_id or new_item_id())


async def on_input_audio_buffer_clear(session: RealtimeSession, event: ClientEvent) -> None:
    await session.input_audio.clear()
    await session.emit(ev.cleared())


async def on_output_audio_buffer_clear(session: RealtimeSession, event: ClientEvent) -> None:
    if session.audio_sink is None:
        raise RealtimeError(
            "output_audio_buffer.clear is only supported on WebRTC and SIP connections; on a WebSocket, "
            "use response.cancel and conversation.item.truncate.",
            code="unsupported_on_transport",
            event_id=event.event_id,
        )
    await session.responses.clear_playout()


async def commit_audio(session: RealtimeSession, item_id: str) -> None:
    audio_ms = session.input_audio.buffered_ms
    await session.input_audio.commit(item_id)
    item = {
        "id": item_id,
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": None}],
        "_audio_ms": audio_ms,
    }
    stored, previous = await session.conversation.add(item)
    await session.emit(ev.committed(item_id, previous))
    await session.emit(ev.item_added(public_item(stored), previous))
    await session.emit(ev.item_done(public_item(stored), previous))


async def speech_started(session: RealtimeSession, audio_start_ms: int) -> None:
    item_id = session.input_audio.speech_item_id or new_item_id()
    # Clients stop playback on speech_started, so it goes first; then the response ends (GA order).
    await session.emit(ev.speech_started(item_id, audio_start_ms))
    turn = session.input_audio.turn_detection
    if turn is not None and turn.interrupt_response:
        await session.responses.interrupt()


async def speech_stopped(session: RealtimeSession, audio_end_ms: int) -> None:
    item_id = session.input_audio.speech_item_id or new_item_id()
    session.speech_ended()
    await session.emit(ev.speech_stopped(item_id, audio_end_ms))
    await commit_audio(session, item_id)
    turn = session.input_audio.turn_detection
    if turn is not None and turn.create_response and session.responses.active is None:
        await session.create_response({})


# --- conversation ---------------------------------------------------------------------------------


async def on_conversation_item_create(session: RealtimeSession, event: ClientEvent) -> None:
    item = dict(event.data["item"])
    if item.get("type") not in SUPPORTED_ITEM_TYPES:
        raise RealtimeError(
            f"Items of type '{item.get('type')}' are not supported by this gateway.",
            code="invalid_value",
            param="item.type",
            event_id=event.event_id,
        )
    item.setdefault("status", "completed")
    if item["type"] == "message":
        for part in item.get("content") or []:
            if part.get("type") == "input_audio":
                part.setdefault("transcript", None)
    stored, previous = await session.conversation.add(
        item, previous_item_id=event.data.get("previous_item_id"), event_id=event.event_id
    )
    await session.emit(ev.item_added(public_item(stored), previous))
    await session.emit(ev.item_done(public_item(stored), previous))


async def on_conversation_item_retrieve(session: RealtimeSession, event: ClientEvent) -> None:
    item = session.conversation.require(event.data["item_id"], event.event_id)
    await session.emit(ev.item_retrieved(public_item(item)))


async def on_conversation_item_delete(session: RealtimeSession, event: ClientEvent) -> None:
    item_id = event.data["item_id"]
    if session.responses.item_in_use(item_id):
        raise RealtimeError(
            "Cannot delete the item of the response in progress.", code="item_in_use", event_id=event.event_id
        )
    await session.conversation.delete(item_id, event.event_id)
    await session.emit(ev.item_deleted(item_id))


async def on_conversation_item_truncate(session: RealtimeSession, event: ClientEvent) -> None:
    item = session.conversation.require(event.data["item_id"], event.event_id)
    content_index, audio_end_ms = event.data["content_index"], event.data["audio_end_ms"]
    if item.get("role") != "assistant" or not any(p.get("type") == "output_audio" for p in item["content"]):
        raise RealtimeError(
            "Only assistant messages with audio can be truncated.",
            code="invalid_value",
            param="item_id",
            event_id=event.event_id,
        )
    if content_index != 0 or content_index >= len(item["content"]):
        raise RealtimeError(
            f"Invalid content_index {content_index}.",
            code="invalid_value",
            param="content_index",
            event_id=event.event_id,
        )
    audio_ms = int(item.get("_audio_ms", 0))
    if audio_end_ms < 0 or audio_end_ms > audio_ms:
        raise RealtimeError(
            f"audio_end_ms {audio_end_ms} is beyond the item's audio ({audio_ms} ms).",
            code="invalid_value",
            param="audio_end_ms",
            event_id=event.event_id,
        )
    truncate_item(item, audio_end_ms)
    await session.conversation.save(item)
    await session.emit(ev.item_truncated(item["id"], content_index, audio_end_ms))


# --- responses ------------------------------------------------------------------------------------


async def on_response_create(session: RealtimeSession, event: ClientEvent) -> None:
    await session.create_response(event.data.get("response") or {}, event_id=event.event_id)


async def on_response_cancel(session: RealtimeSession, event: ClientEvent) -> None:
    await session.responses.cancel(
        "client_cancelled", response_id=event.data.get("response_id"), event_id=event.event_id
    )


CLIENT_EVENT_HANDLERS: dict[str, Callable[[RealtimeSession, ClientEvent], Awaitable[None]]] = {
    "session.update": on_session_update,
    "input_audio_buffer.commit": on_input_audio_buffer_commit,
    "input_audio_buffer.clear": on_input_audio_buffer_clear,
    "output_audio_buffer.clear": on_output_audio_buffer_clear,
    "conversation.item.create": on_conversation_item_create,
    "conversation.item.retrieve": on_conversation_item_retrieve,
    "conversation.item.delete": on_conversation_item_delete,
    "conversation.item.truncate": on_conversation_item_truncate,
    "response.create": on_response_create,
    "response.cancel": on_response_cancel,
}
