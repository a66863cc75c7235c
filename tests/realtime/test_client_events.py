"""Client events: errors inside the SDK's untagged unions name the JSON path, not pydantic's union members."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.realtime import RealtimeErrorEvent

from media_gateway.realtime.client_events import SUPPORTED_TYPES, parse_client_event
from media_gateway.realtime.errors import RealtimeError


def _response(**fields: Any) -> dict[str, Any]:
    return {"type": "response.create", "event_id": "evt_1", "response": fields}


CASES: list[tuple[str, dict[str, Any], str, str, str | None]] = [
    # (id, event, code, param, message fragment)
    (
        "tool_choice unknown mode",
        _response(tool_choice="any"),
        "invalid_value",
        "response.tool_choice",
        "Invalid value: 'any'. Supported values are: 'none', 'auto', and 'required'.",
    ),
    (
        "tool_choice of the wrong kind",
        _response(tool_choice=5),
        "invalid_type",
        "response.tool_choice",
        "expected string or object, got integer",
    ),
    (
        "tool_choice function without name",
        _response(tool_choice={"type": "function"}),
        "missing_required_parameter",
        "response.tool_choice.name",
        None,
    ),
    (
        "max_output_tokens string",
        _response(max_output_tokens="x"),
        "invalid_value",
        "response.max_output_tokens",
        "Supported values are: 'inf'.",
    ),
    (
        "tool of unknown type",
        _response(tools=[{"type": "web"}]),
        "invalid_value",
        "response.tools[0].type",
        "Supported values are: 'function' and 'mcp'.",
    ),
    (
        "tool not an object",
        _response(tools=["f"]),
        "invalid_type",
        "response.tools[0]",
        "expected object, got string",
    ),
    (
        "voice of the wrong kind",
        _response(audio={"output": {"voice": 3}}),
        "invalid_type",
        "response.audio.output.voice",
        "expected string or object, got integer",
    ),
    (
        "input item content extra field",
        _response(
            input=[
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x", "y": 1}]}
            ]
        ),
        "unknown_parameter",
        "response.input[0].content[0].y",
        None,
    ),
]


@pytest.mark.parametrize(
    ("event", "code", "param", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_union_errors_name_the_json_path(
    event: dict[str, Any], code: str, param: str, fragment: str | None
) -> None:
    with pytest.raises(RealtimeError) as caught:
        parse_client_event(json.dumps(event))
    error = caught.value
    assert (error.code, error.param, error.event_id) == (code, param, "evt_1"), str(error)
    if fragment is not None:
        assert fragment in str(error)
    body = {"type": error.error_type, "code": error.code, "message": error.message, "param": error.param}
    wire = {"type": "error", "event_id": "event_1", "error": {**body, "event_id": error.event_id}}
    RealtimeErrorEvent.model_validate(wire, strict=True)


def test_every_sdk_client_event_type_is_supported() -> None:
    assert "session.update" in SUPPORTED_TYPES
    assert "response.create" in SUPPORTED_TYPES
    assert len(SUPPORTED_TYPES) == len(set(SUPPORTED_TYPES)) == 11
    accepted = parse_client_event(
        json.dumps({"type": "response.create", "response": {"tool_choice": "none"}})
    )
    assert accepted.data == {"response": {"tool_choice": "none"}}
