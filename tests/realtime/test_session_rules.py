"""Session configurations are validated against the openai SDK's own models, then the gateway's rules."""

from __future__ import annotations

import copy
from typing import Any, get_args, get_origin

import pytest
from openai.types.realtime import (
    AudioTranscription,
    RealtimeFunctionTool,
    RealtimeSessionCreateRequest,
    RealtimeTranscriptionSessionCreateRequest,
)
from openai.types.realtime.realtime_audio_config_output import VoiceID
from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad
from openai.types.realtime.realtime_tools_config_union import Mcp
from pydantic import BaseModel

from media_gateway.realtime.sdk_models import is_model, members
from media_gateway.realtime.session_config import (
    SessionConfigError,
    parse_client_secret_request,
    parse_session_update,
)
from media_gateway.realtime.session_rules import (
    LIMITS,
    LIST_RULES,
    MODEL_RULES,
    NULLABLE,
    REQUIRED,
    SESSION_MODELS,
    TAGGED,
)
from tests.realtime.test_session_config import FULL_REALTIME

# --- the rules name what the SDK declares ------------------------------------------------------


def _segments(pattern: str) -> list[str]:
    return [part for part in pattern.replace("[]", ".[]").split(".") if part]


def _step(member: Any, segment: str) -> Any | None:
    """The annotation one pattern segment leads to from one union member, or None."""
    if segment == "[]":
        return get_args(member)[0] if get_origin(member) is list else None
    if segment == "*":
        return get_args(member)[1] if get_origin(member) is dict else None
    if is_model(member) and segment in member.model_fields:
        return member.model_fields[segment].annotation
    return None


def _resolves(annotation: Any, segments: list[str]) -> bool:
    """Whether some member path of the SDK annotation matches the pattern segments."""
    if not segments:
        return True
    for member in members(annotation):
        child = _step(member, segments[0])
        if child is not None and _resolves(child, segments[1:]):
            return True
    return False


def _declared(pattern: str) -> bool:
    return any(_resolves(model, _segments(pattern)) for model in SESSION_MODELS.values())


def _reachable_models(annotation: Any, seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    for member in members(annotation):
        if is_model(member) and member not in seen:
            seen.add(member)
            for field in member.model_fields.values():
                _reachable_models(field.annotation, seen)
        for arg in get_args(member):
            _reachable_models(arg, seen)
    return seen


def test_every_rule_pattern_names_a_field_the_sdk_declares() -> None:
    patterns = set(NULLABLE) | set(LIMITS) | set(LIST_RULES)
    assert not [pattern for pattern in sorted(patterns) if not _declared(pattern)]
    # The check can fail: a field the SDK does not declare, or one under the wrong parent.
    assert not _declared("audio.output.rate")
    assert not _declared("tools[].parameters.type")
    assert _declared("tools[].headers.*")


def test_rules_by_model_name_models_of_the_session() -> None:
    reachable: set[type[BaseModel]] = set()
    for model in SESSION_MODELS.values():
        _reachable_models(model, reachable)
    for cls in (*TAGGED, *REQUIRED, *MODEL_RULES):
        assert cls in reachable, cls
    for cls in TAGGED:
        assert "type" in cls.model_fields


# --- behaviour of the rules on top of the SDK models --------------------------------------------


def _s(**fields: Any) -> dict[str, Any]:
    return {"session": {"type": "realtime", **fields}}


def _mcp(**fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example", **fields}


def _text(**fields: Any) -> dict[str, Any]:
    return {"type": "input_text", "text": "x", **fields}


CASES: list[tuple[str, object, str, str, str | None]] = [
    # (id, body, code, param, message fragment)
    (
        "unknown field before a type error elsewhere in the same object",
        _s(voice="alloy", audio={"input": {"format": "pcm16"}}),
        "unknown_parameter",
        "session.voice",
        None,
    ),
    (
        "chat-completions shaped tool_choice",
        _s(tool_choice={"type": "function", "function": {"name": "f"}}),
        "unknown_parameter",
        "session.tool_choice.function",
        None,
    ),
    (
        "format type null",
        _s(audio={"input": {"format": {"type": None}}}),
        "invalid_type",
        "session.audio.input.format.type",
        "expected string, got null",
    ),
    ("mcp tool type null", _s(tools=[_mcp(type=None)]), "invalid_type", "session.tools[0].type", None),
    (
        "mcp server_url empty",
        _s(tools=[_mcp(server_url="")]),
        "invalid_value",
        "session.tools[0].server_url",
        None,
    ),
    (
        "mcp server_url null",
        _s(tools=[_mcp(server_url=None)]),
        "invalid_type",
        "session.tools[0].server_url",
        "expected string, got null",
    ),
    (
        "duplicate mcp server label",
        _s(tools=[_mcp(), _mcp()]),
        "invalid_value",
        "session.tools[1].server_label",
        "duplicate tool server_label 'docs'",
    ),
    (
        "too many mcp headers",
        _s(tools=[_mcp(headers={f"h{i}": "v" for i in range(65)})]),
        "invalid_value",
        "session.tools[0].headers",
        None,
    ),
    (
        "empty transcription keyword",
        _s(audio={"input": {"transcription": {"keywords": ["ok", ""]}}}),
        "invalid_value",
        "session.audio.input.transcription.keywords[1]",
        "empty string",
    ),
    (
        "tracing metadata not an object",
        _s(tracing={"metadata": [1]}),
        "invalid_type",
        "session.tracing.metadata",
        None,
    ),
    (
        "truncation without retention_ratio",
        _s(truncation={"type": "retention_ratio"}),
        "missing_required_parameter",
        "session.truncation.retention_ratio",
        None,
    ),
    (
        "truncation object without type",
        _s(truncation={}),
        "missing_required_parameter",
        "session.truncation.type",
        None,
    ),
    (
        "truncation of the wrong kind",
        _s(truncation=5),
        "invalid_type",
        "session.truncation",
        "expected string or object, got integer",
    ),
    (
        "max_output_tokens boolean",
        _s(max_output_tokens=True),
        "invalid_type",
        "session.max_output_tokens",
        "expected integer or 'inf', got boolean",
    ),
    (
        "prompt variable of no SDK shape",
        _s(prompt={"id": "p", "variables": {"doc": {"x": 1}}}),
        "missing_required_parameter",
        "session.prompt.variables.doc.type",
        None,
    ),
    (
        "prompt input_text without text",
        _s(prompt={"id": "p", "variables": {"doc": {"type": "input_text"}}}),
        "missing_required_parameter",
        "session.prompt.variables.doc.text",
        None,
    ),
    (
        "prompt variable extra field",
        _s(prompt={"id": "p", "variables": {"doc": _text(y=1)}}),
        "unknown_parameter",
        "session.prompt.variables.doc.y",
        None,
    ),
    (
        "prompt variable null field",
        _s(prompt={"id": "p", "variables": {"doc": _text(prompt_cache_breakpoint=None)}}),
        "invalid_type",
        "session.prompt.variables.doc.prompt_cache_breakpoint",
        "expected object, got null",
    ),
    (
        "transcription session pcm without rate",
        {"session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm"}}}}},
        "missing_required_parameter",
        "session.audio.input.format.rate",
        None,
    ),
    (
        "transcription session threshold",
        {
            "session": {
                "type": "transcription",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}},
            }
        },
        "invalid_value",
        "session.audio.input.turn_detection.threshold",
        "integer above maximum value. Expected a value <= 1.0, but got 2 instead.",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "param", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule_errors(body: object, code: str, param: str, fragment: str | None) -> None:
    with pytest.raises(SessionConfigError) as caught:
        parse_client_secret_request(copy.deepcopy(body), default_model="m")
    assert (caught.value.code, caught.value.param) == (code, param), caught.value.message
    if fragment is not None:
        assert fragment in caught.value.message


def test_deep_free_form_json_is_not_walked() -> None:
    deep: list[Any] = []
    for _ in range(5000):  # deeper than the recursion limit: only the size check may look inside
        deep = [deep]
    for parameters, code in ((deep, "invalid_type"), ({"schema": deep}, "invalid_value")):
        with pytest.raises(SessionConfigError) as caught:
            parse_client_secret_request(
                _s(tools=[{"type": "function", "name": "f", "parameters": parameters}]), default_model="m"
            )
        assert (caught.value.code, caught.value.param) == (code, "session.tools[0].parameters")


def test_accepted_by_the_rules() -> None:
    tunnel_only = {"type": "mcp", "server_label": "x", "tunnel_id": "t1"}
    config = parse_client_secret_request(
        _s(tools=[tunnel_only], prompt={"id": "p", "variables": {"name": "Ann", "doc": _text()}}),
        default_model="m",
    ).session
    assert config.to_dict()["tools"] == [tunnel_only]
    assert config.to_dict()["prompt"]["variables"]["doc"] == _text()
    repeated = parse_client_secret_request(_s(output_modalities=["audio", "audio"]), default_model="m")
    assert repeated.session.output_modalities == ["audio"]
    assert repeated.session.to_dict()["output_modalities"] == ["audio"]


def test_typed_views_are_the_sdk_models() -> None:
    config = parse_client_secret_request({"session": copy.deepcopy(FULL_REALTIME)}, default_model="m").session
    assert isinstance(config.params, RealtimeSessionCreateRequest)
    assert isinstance(config.voice, VoiceID)
    assert config.voice.id == "voice_1234"
    assert [type(tool) for tool in config.tools] == [RealtimeFunctionTool, Mcp]
    assert isinstance(config.turn_detection, ServerVad)
    assert isinstance(config.transcription, AudioTranscription)
    assert (config.transcription.model, config.transcription.language) == ("gpt-4o-mini-transcribe", "en")
    updated = parse_session_update(config, {"type": "realtime", "audio": {"output": {"voice": "ash"}}})
    assert updated.voice == "ash"
    transcription = parse_client_secret_request(
        {"session": {"type": "transcription"}}, default_model="m"
    ).session
    assert isinstance(transcription.params, RealtimeTranscriptionSessionCreateRequest)
    assert transcription.voice is None
    assert transcription.turn_detection is not None
    assert transcription.turn_detection.type == "server_vad"
