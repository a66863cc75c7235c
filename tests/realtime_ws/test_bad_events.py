"""Malformed and hostile client events: each gets the documented `error` event with the client's
event_id echoed, and the same session completes a normal turn afterwards."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.support.realtime import RealtimeClient, connect


@dataclass(frozen=True)
class Bad:
    name: str
    frame: Any  # dict → JSON; str → sent verbatim
    code: str
    param: str | None = None
    echoes_event_id: bool = True


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CASES = [
    Bad("invalid json", '{"type": "response.create", "event_id": "x"', "invalid_json", echoes_event_id=False),
    Bad("json array", "[1, 2]", "invalid_type", echoes_event_id=False),
    Bad("missing type", {}, "missing_required_parameter", "type"),
    Bad("type not a string", {"type": 5}, "invalid_type", "type"),
    Bad("unknown type", {"type": "response.explode"}, "invalid_value", "type"),
    Bad("beta event name", {"type": "transcription_session.update", "session": {}}, "invalid_value", "type"),
    Bad(
        "extra top-level field",
        {"type": "input_audio_buffer.clear", "force": True},
        "unknown_parameter",
        "force",
    ),
    Bad("append without audio", {"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
    Bad(
        "append audio wrong type", {"type": "input_audio_buffer.append", "audio": 12}, "invalid_type", "audio"
    ),
    Bad(
        "append invalid base64",
        {"type": "input_audio_buffer.append", "audio": "%%%not base64%%%"},
        "invalid_value",
        "audio",
    ),
    Bad(
        "append odd-length pcm",
        {"type": "input_audio_buffer.append", "audio": b64(b"\x00\x01\x02")},
        "invalid_audio",
        "audio",
    ),
    Bad(
        "append 20 MB",
        {"type": "input_audio_buffer.append", "audio": b64(b"\x00" * (20 * 1024 * 1024))},
        "audio_too_large",
        "audio",
    ),
    Bad("commit on empty buffer", {"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
    Bad("cancel with no response", {"type": "response.cancel"}, "response_cancel_not_active"),
    Bad(
        "retrieve unknown item",
        {"type": "conversation.item.retrieve", "item_id": "item_nope"},
        "item_not_found",
        "item_id",
    ),
    Bad(
        "delete unknown item",
        {"type": "conversation.item.delete", "item_id": "item_nope"},
        "item_not_found",
        "item_id",
    ),
    Bad(
        "truncate unknown item",
        {
            "type": "conversation.item.truncate",
            "item_id": "item_nope",
            "content_index": 0,
            "audio_end_ms": 10,
        },
        "item_not_found",
        "item_id",
    ),
    Bad(
        "truncate with string index",
        {"type": "conversation.item.truncate", "item_id": "x", "content_index": "0", "audio_end_ms": 10},
        "invalid_type",
        "content_index",
    ),
    Bad(
        "item create without item", {"type": "conversation.item.create"}, "missing_required_parameter", "item"
    ),
    Bad(
        "item with unknown role",
        {"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}},
        "invalid_value",
        "item.role",
    ),
    Bad(
        "item content extra field",
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "x", "y": 1}],
            },
        },
        "unknown_parameter",
        "item.content[0].y",
    ),
    Bad(
        "item after unknown previous",
        {
            "type": "conversation.item.create",
            "previous_item_id": "item_nope",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]},
        },
        "item_not_found",
        "previous_item_id",
    ),
    Bad(
        "session.update without session", {"type": "session.update"}, "missing_required_parameter", "session"
    ),
    Bad(
        "session.update beta field",
        {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}},
        "unknown_parameter",
        "session.voice",
    ),
    Bad(
        "session.update change type",
        {"type": "session.update", "session": {"type": "transcription"}},
        "invalid_value",
        "session.type",
    ),
    Bad(
        "session.update bad rate",
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}},
            },
        },
        "invalid_value",
        "session.audio.input.format.rate",
    ),
    Bad(
        "session.update model not allowed",
        {"type": "session.update", "session": {"type": "realtime", "model": "gpt-9"}},
        "policy_denied",
        "session",
    ),
    Bad(
        "response.create bad modality",
        {"type": "response.create", "response": {"output_modalities": ["smell"]}},
        "invalid_value",
        "response.output_modalities[0]",
    ),
    Bad(
        "output_audio_buffer.clear on websocket",
        {"type": "output_audio_buffer.clear"},
        "unsupported_on_transport",
    ),
    Bad(
        "event_id not a string",
        {"type": "response.cancel", "event_id": 7},
        "invalid_type",
        "event_id",
        echoes_event_id=False,
    ),
]


async def completes_a_turn(client: RealtimeClient) -> None:
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "what time is it"}],
            },
        }
    )
    await client.send(
        {"type": "response.create", "event_id": "after", "response": {"output_modalities": ["text"]}}
    )
    done = await client.wait_for("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    assert done["response"]["output"][0]["content"][0]["text"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_each_bad_event_gets_an_error_and_the_session_survives(gateway: Gateway) -> None:
    assert len(CASES) >= 25
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        assert (await client.recv())["type"] == "session.created"
        for index, case in enumerate(CASES):
            frame = case.frame
            event_id = f"bad_{index}"
            if isinstance(frame, dict) and case.echoes_event_id:
                frame = {**frame, "event_id": event_id}
            await client.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
            error = (await client.wait_for("error", timeout=20))["error"]
            assert error["code"] == case.code, (case.name, error)
            assert error["type"] in ("invalid_request_error", "server_error")
            assert error["message"]
            if case.param is not None:
                assert error["param"] == case.param, (case.name, error)
            assert error["event_id"] == (event_id if case.echoes_event_id else None), case.name
        await completes_a_turn(client)
        # Nothing accepted before was lost: the session config is intact.
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        updated = await client.wait_for("session.updated")
        assert updated["session"]["model"] == "gpt-realtime"
