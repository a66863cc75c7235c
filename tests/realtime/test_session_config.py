"""Session configuration: SDK conformance of the session object, OpenAI-style errors, update merging."""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any

import httpx2
import openai
import pytest
from openai import OpenAI
from openai.types.realtime import (
    ClientSecretCreateResponse,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    RealtimeSessionCreateResponse,
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import BaseModel, Field, TypeAdapter

from media_gateway.realtime.session_config import (
    DEFAULT_TTL_SECONDS,
    SessionConfig,
    SessionConfigError,
    new_session_config,
    parse_client_secret_request,
    parse_session_request,
    parse_session_update,
    session_object,
)

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeServerEvent, Field(discriminator="type")])
SESSION_EXTRAS_ALLOWED = {"session.id", "session.object", "session.expires_at"}

# --- sample configurations ---------------------------------------------------------------------

FULL_REALTIME: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "output_modalities": ["text"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "noise_reduction": {"type": "near_field", "strength": 0.4},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en", "prompt": "tech words"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.7,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 800,
                "idle_timeout_ms": 6000,
                "create_response": False,
                "interrupt_response": False,
            },
        },
        "output": {"format": {"type": "audio/pcma"}, "voice": {"id": "voice_1234"}, "speed": 1.25},
    },
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "default": None}}},
        },
        {
            "type": "mcp",
            "server_label": "docs",
            "server_url": "https://mcp.example/sse",
            "allowed_tools": {"read_only": True, "tool_names": ["search"]},
            "require_approval": "never",
        },
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "max_output_tokens": 1024,
    "tracing": {"workflow_name": "wf", "group_id": "g1", "metadata": {"k": "v"}},
    "truncation": {
        "type": "retention_ratio",
        "retention_ratio": 0.8,
        "token_limits": {"post_instructions": 5000},
    },
    "prompt": {
        "id": "pmpt_1",
        "version": "2",
        "variables": {"name": "Ann", "doc": {"type": "input_text", "text": "x"}},
    },
    "include": ["item.input_audio_transcription.logprobs"],
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": False,
}

# What @openai/agents-realtime sends on connect.
AGENTS_JS_UPDATE: dict[str, Any] = {
    "type": "realtime",
    "instructions": "You are helpful.",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": None,
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "semantic_vad"},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "speed": 1},
    },
    "tool_choice": "auto",
}

# What openai-agents (Python) sends: voice, tools and interrupt_response too, prompt with nulls.
AGENTS_PY_UPDATE: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "semantic_vad", "interrupt_response": True},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash"},
    },
    "tools": [],
    "instructions": "",
    "prompt": {"id": "pmpt_2", "variables": None, "version": None},
}

FULL_TRANSCRIPTION: dict[str, Any] = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "far_field"},
            "transcription": {"model": "gpt-4o-transcribe", "language": "de", "prompt": "names"},
            "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 700},
        }
    },
    "include": ["item.input_audio_transcription.logprobs"],
}

SAMPLES: dict[str, dict[str, Any] | None] = {
    "default realtime": None,
    "minimal realtime": {"type": "realtime"},
    "full realtime": FULL_REALTIME,
    "agents-js": AGENTS_JS_UPDATE,
    "agents-py": AGENTS_PY_UPDATE,
    "semantic vad, tracing auto": {
        "type": "realtime",
        "tracing": "auto",
        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}},
    },
    "vad off, text only": {
        "type": "realtime",
        "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": None}},
    },
    "minimal transcription": {"type": "transcription"},
    "full transcription": FULL_TRANSCRIPTION,
    "transcription, semantic vad": {
        "type": "transcription",
        "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
    },
}


def _config(sample: dict[str, Any] | None) -> SessionConfig:
    body = {} if sample is None else {"session": copy.deepcopy(sample)}
    return parse_client_secret_request(body, default_model="gpt-realtime").session


def _extras(value: object, path: str) -> list[str]:
    """Paths of fields the SDK models did not declare (they accept extras silently)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _extras(item, f"{path}[{index}]")
    return found


def _subset(sent: object, echoed: object) -> bool:
    """Everything in ``sent`` is in ``echoed`` with the same value."""
    if isinstance(sent, dict):
        return isinstance(echoed, dict) and all(
            k in echoed and _subset(v, echoed[k]) for k, v in sent.items()
        )
    if isinstance(sent, list):
        return isinstance(echoed, list) and len(sent) == len(echoed) and all(map(_subset, sent, echoed))
    return bool(sent == echoed)


# --- the session object against the SDK models ---------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES.values(), ids=SAMPLES.keys())
def test_client_secret_response_validates_with_sdk_models(sample: dict[str, Any] | None) -> None:
    config = _config(sample)
    obj = session_object(config, session_id="sess_123", expires_at=1_900_000_000)
    body = {"value": "ek_x", "expires_at": 123, "session": obj}

    response = ClientSecretCreateResponse.model_validate(body)
    expected_cls = (
        RealtimeSessionCreateResponse
        if config.type == "realtime"
        else (RealtimeTranscriptionSessionCreateResponse)
    )
    assert isinstance(response.session, expected_cls)
    direct = expected_cls.model_validate(obj)
    # Nothing dropped or altered: the SDK's dump of what it parsed is exactly what was sent.
    assert response.model_dump(mode="json", exclude_unset=True) == json.loads(json.dumps(body))
    assert direct.model_dump(mode="json", exclude_unset=True) == json.loads(json.dumps(obj))
    assert response.session.id == "sess_123"
    assert response.session.expires_at == 1_900_000_000
    # No field the response model does not declare (the MCP secrets are redacted, see below), except
    # parallel_tool_calls: RealtimeSessionCreateRequest declares it, RealtimeSessionCreateResponse does not.
    assert set(_extras(response, "")) <= {".session.parallel_tool_calls"}


@pytest.mark.parametrize("sample", SAMPLES.values(), ids=SAMPLES.keys())
@pytest.mark.parametrize("event_type", ["session.created", "session.updated"])
def test_session_events_pass_the_strict_server_event_gate(
    sample: dict[str, Any] | None, event_type: str
) -> None:
    config = _config(sample)
    obj = session_object(config, session_id="sess_123", expires_at=1_900_000_000)
    raw = json.dumps({"type": event_type, "event_id": "event_1", "session": obj})

    event = SERVER_EVENT.validate_json(raw, strict=True)

    assert event.session.type == config.type
    assert event.model_dump(mode="json", exclude_unset=True) == json.loads(raw)
    assert set(_extras(event, "")) <= {f".{p}" for p in SESSION_EXTRAS_ALLOWED}


def test_session_object_defaults() -> None:
    obj = session_object(new_session_config(model="gpt-realtime"), session_id="sess_1")
    assert obj == {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_1",
        "model": "gpt-realtime",
        "instructions": "",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
    }
    transcription = session_object(new_session_config("transcription", model="gpt-realtime"), session_id="s")
    assert transcription["object"] == "realtime.transcription_session"
    assert transcription["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    assert "expires_at" not in transcription


def test_full_config_is_echoed_and_mcp_secrets_are_redacted() -> None:
    sample = copy.deepcopy(FULL_REALTIME)
    sample["tools"][1] |= {"authorization": "Bearer server-side-secret", "headers": {"X-Key": "secret"}}
    config = parse_client_secret_request({"session": sample}, default_model="m").session
    obj = session_object(config, session_id="sess_1")

    assert "server-side-secret" not in json.dumps(obj)
    assert "X-Key" not in json.dumps(obj)
    expected = copy.deepcopy(FULL_REALTIME)
    expected["audio"]["output"]["voice"] = "voice_1234"  # see session_object: SDK response types voice as str
    assert _subset(expected, obj)
    # The effective config keeps them (the gateway may need them); only the client-facing object drops them.
    assert config.to_dict()["tools"][1]["authorization"] == "Bearer server-side-secret"


def test_stored_config_round_trips_whatever_the_dump_options() -> None:
    config = _config(FULL_REALTIME)
    vad_off = _config({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    for original in (config, vad_off, _config(FULL_TRANSCRIPTION)):
        for dumped in (
            original.model_dump(mode="json"),
            original.model_dump(mode="json", exclude_none=True),
            original.model_dump(mode="json", exclude_unset=True),
            original.to_dict(),
        ):
            restored = SessionConfig.model_validate(json.loads(json.dumps(dumped)))
            assert restored.to_dict() == original.to_dict()
    assert SessionConfig.model_validate(vad_off.model_dump(exclude_none=True)).turn_detection is None
    assert config.model_dump(mode="json", exclude_none=True)["instructions"] == "Be brief."


def test_policy_summary() -> None:
    summary = _config(FULL_REALTIME).policy_summary()
    assert summary == {
        "type": "realtime",
        "model": "gpt-realtime",
        "voice": "voice_1234",
        "custom_voice": True,
        "output_modalities": ["text"],
        "max_output_tokens": 1024,
        "tools_count": 2,
        "function_tools_count": 1,
        "mcp_tools_count": 1,
        "instructions_length": len("Be brief."),
        "input_format": "audio/pcmu",
        "output_format": "audio/pcma",
        "turn_detection": "server_vad",
        "transcription_model": "gpt-4o-mini-transcribe",
    }
    default = parse_client_secret_request(None, default_model="gw-default")
    assert default.ttl_seconds == DEFAULT_TTL_SECONDS
    assert default.session.policy_summary()["model"] == "gw-default"
    assert default.session.policy_summary()["voice"] == "alloy"
    transcription = _config(FULL_TRANSCRIPTION).policy_summary()
    assert transcription["type"] == "transcription"
    assert transcription["model"] == "gpt-4o-transcribe"
    assert transcription["output_format"] is None
    json.dumps(summary)


def test_client_secret_ttl() -> None:
    parsed = parse_client_secret_request(
        {"expires_after": {"anchor": "created_at", "seconds": 7200}}, default_model="m"
    )
    assert parsed.ttl_seconds == 7200
    assert (
        parse_client_secret_request({"expires_after": {"seconds": 10}}, default_model="m").ttl_seconds == 10
    )
    assert (
        parse_client_secret_request({"expires_after": {}}, default_model="m").ttl_seconds
        == DEFAULT_TTL_SECONDS
    )


# --- bad input ---------------------------------------------------------------------------------------


def _s(**fields: Any) -> dict[str, Any]:
    return {"session": {"type": "realtime", **fields}}


def _vad(**fields: Any) -> dict[str, Any]:
    return _s(audio={"input": {"turn_detection": {"type": "server_vad", **fields}}})


def _fn(**fields: Any) -> dict[str, Any]:
    return {"type": "function", "name": "f", **fields}


BAD_INPUT: list[tuple[str, object, str, str | None, str | None]] = [
    # (id, body, code, param, message fragment)
    (
        "beta input_audio_format",
        _s(input_audio_format="pcm16"),
        "unknown_parameter",
        "session.input_audio_format",
        "Unknown parameter: 'session.input_audio_format'.",
    ),
    (
        "beta output_audio_format",
        _s(output_audio_format="pcm16"),
        "unknown_parameter",
        "session.output_audio_format",
        None,
    ),
    ("beta voice", _s(voice="alloy"), "unknown_parameter", "session.voice", None),
    ("beta modalities", _s(modalities=["text", "audio"]), "unknown_parameter", "session.modalities", None),
    (
        "beta input_audio_transcription",
        _s(input_audio_transcription={"model": "whisper-1"}),
        "unknown_parameter",
        "session.input_audio_transcription",
        None,
    ),
    (
        "beta turn_detection",
        _s(turn_detection={"type": "server_vad"}),
        "unknown_parameter",
        "session.turn_detection",
        None,
    ),
    ("beta temperature", _s(temperature=0.8), "unknown_parameter", "session.temperature", None),
    (
        "beta max_response_output_tokens",
        _s(max_response_output_tokens=100),
        "unknown_parameter",
        "session.max_response_output_tokens",
        None,
    ),
    (
        "beta shape without type",
        {"session": {"model": "m", "modalities": ["audio"]}},
        "unknown_parameter",
        "session.modalities",
        None,
    ),
    (
        "missing type",
        {"session": {"model": "m"}},
        "missing_required_parameter",
        "session.type",
        "Missing required parameter: 'session.type'.",
    ),
    ("unknown type", {"session": {"type": "voice"}}, "invalid_value", "session.type", "Supported values are"),
    ("type not a string", {"session": {"type": 1}}, "invalid_type", "session.type", None),
    (
        "session not an object",
        {"session": "realtime"},
        "invalid_type",
        "session",
        "Invalid type for 'session': expected object, got string",
    ),
    ("session null", {"session": None}, "invalid_type", "session", None),
    ("body not an object", [1, 2], "invalid_type", None, None),
    ("unknown top-level", {"model": "m"}, "unknown_parameter", "model", None),
    (
        "create_response null",
        _vad(create_response=None),
        "invalid_type",
        "session.audio.input.turn_detection.create_response",
        "Invalid type for 'session.audio.input.turn_detection.create_response': expected boolean, got null",
    ),
    (
        "interrupt_response as int",
        _vad(interrupt_response=1),
        "invalid_type",
        "session.audio.input.turn_detection.interrupt_response",
        "expected boolean, got integer",
    ),
    (
        "threshold above 1",
        _vad(threshold=1.5),
        "invalid_value",
        "session.audio.input.turn_detection.threshold",
        "Expected a value <= 1.0, but got 1.5 instead.",
    ),
    (
        "negative silence",
        _vad(silence_duration_ms=-1),
        "invalid_value",
        "session.audio.input.turn_detection.silence_duration_ms",
        None,
    ),
    (
        "silence as string",
        _vad(silence_duration_ms="500"),
        "invalid_type",
        "session.audio.input.turn_detection.silence_duration_ms",
        "expected integer, got string",
    ),
    (
        "eagerness on server_vad",
        _vad(eagerness="low"),
        "unknown_parameter",
        "session.audio.input.turn_detection.eagerness",
        None,
    ),
    (
        "bad eagerness",
        _s(audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "fast"}}}),
        "invalid_value",
        "session.audio.input.turn_detection.eagerness",
        "Invalid value: 'fast'. Supported values are: 'low', 'medium', 'high', and 'auto'.",
    ),
    (
        "unknown vad type",
        _s(audio={"input": {"turn_detection": {"type": "client_vad"}}}),
        "invalid_value",
        "session.audio.input.turn_detection.type",
        "Invalid value: 'client_vad'.",
    ),
    (
        "vad type not a string",
        _s(audio={"input": {"turn_detection": {"type": 5}}}),
        "invalid_type",
        "session.audio.input.turn_detection.type",
        "expected string, got integer",
    ),
    (
        "vad without type",
        _s(audio={"input": {"turn_detection": {"threshold": 0.5}}}),
        "missing_required_parameter",
        "session.audio.input.turn_detection.type",
        None,
    ),
    (
        "pcm without rate",
        _s(audio={"output": {"format": {"type": "audio/pcm"}}}),
        "missing_required_parameter",
        "session.audio.output.format.rate",
        "Missing required parameter: 'session.audio.output.format.rate'.",
    ),
    (
        "pcm rate 16000",
        _s(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}}}),
        "invalid_value",
        "session.audio.input.format.rate",
        "Invalid value: 16000. Supported values are: 24000.",
    ),
    (
        "beta format string",
        _s(audio={"input": {"format": "pcm16"}}),
        "invalid_type",
        "session.audio.input.format",
        "expected object, got string",
    ),
    (
        "format type g711",
        _s(audio={"input": {"format": {"type": "g711_ulaw"}}}),
        "invalid_value",
        "session.audio.input.format.type",
        "Invalid value: 'g711_ulaw'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.",
    ),
    (
        "rate on pcmu",
        _s(audio={"input": {"format": {"type": "audio/pcmu", "rate": 8000}}}),
        "unknown_parameter",
        "session.audio.input.format.rate",
        None,
    ),
    (
        "speed too high",
        _s(audio={"output": {"speed": 2}}),
        "invalid_value",
        "session.audio.output.speed",
        "integer above maximum value. Expected a value <= 1.5, but got 2",
    ),
    (
        "speed too low",
        _s(audio={"output": {"speed": 0.1}}),
        "invalid_value",
        "session.audio.output.speed",
        "decimal below minimum value",
    ),
    ("voice null", _s(audio={"output": {"voice": None}}), "invalid_type", "session.audio.output.voice", None),
    (
        "voice number",
        _s(audio={"output": {"voice": 3}}),
        "invalid_type",
        "session.audio.output.voice",
        "expected string or object, got integer",
    ),
    (
        "custom voice extra",
        _s(audio={"output": {"voice": {"id": "v", "name": "x"}}}),
        "unknown_parameter",
        "session.audio.output.voice.name",
        None,
    ),
    (
        "noise reduction kind",
        _s(audio={"input": {"noise_reduction": {"type": "studio"}}}),
        "invalid_value",
        "session.audio.input.noise_reduction.type",
        None,
    ),
    (
        "transcription model number",
        _s(audio={"input": {"transcription": {"model": 5}}}),
        "invalid_type",
        "session.audio.input.transcription.model",
        None,
    ),
    ("unknown audio section", _s(audio={"inputs": {}}), "unknown_parameter", "session.audio.inputs", None),
    (
        "both modalities",
        _s(output_modalities=["text", "audio"]),
        "invalid_value",
        "session.output_modalities",
        None,
    ),
    ("empty modalities", _s(output_modalities=[]), "invalid_value", "session.output_modalities", None),
    (
        "unknown modality",
        _s(output_modalities=["video"]),
        "invalid_value",
        "session.output_modalities[0]",
        None,
    ),
    (
        "max_output_tokens 0",
        _s(max_output_tokens=0),
        "invalid_value",
        "session.max_output_tokens",
        "integer below minimum value",
    ),
    (
        "max_output_tokens 4097",
        _s(max_output_tokens=4097),
        "invalid_value",
        "session.max_output_tokens",
        None,
    ),
    (
        "max_output_tokens 'infinite'",
        _s(max_output_tokens="infinite"),
        "invalid_value",
        "session.max_output_tokens",
        "Supported values are: 'inf'.",
    ),
    (
        "max_output_tokens float",
        _s(max_output_tokens=10.5),
        "invalid_type",
        "session.max_output_tokens",
        None,
    ),
    ("max_output_tokens null", _s(max_output_tokens=None), "invalid_type", "session.max_output_tokens", None),
    (
        "instructions too long",
        _s(instructions="x" * 70_000),
        "invalid_value",
        "session.instructions",
        "string too long. Expected a string with maximum length 65536, but got a string with length 70000",
    ),
    ("instructions null", _s(instructions=None), "invalid_type", "session.instructions", None),
    ("instructions number", _s(instructions=42), "invalid_type", "session.instructions", None),
    ("model empty", _s(model=""), "invalid_value", "session.model", None),
    (
        "too many tools",
        _s(tools=[_fn(name=f"f{i}") for i in range(129)]),
        "invalid_value",
        "session.tools",
        "array too long. Expected an array with maximum length 128, but got an array with length 129",
    ),
    ("tools not a list", _s(tools={"type": "function"}), "invalid_type", "session.tools", None),
    (
        "chat-completions tool shape",
        _s(tools=[{"type": "function", "function": {"name": "f"}}]),
        "unknown_parameter",
        "session.tools[0].function",
        None,
    ),
    (
        "tool without type",
        _s(tools=[{"name": "f"}]),
        "missing_required_parameter",
        "session.tools[0].type",
        None,
    ),
    (
        "tool of unknown type",
        _s(tools=[{"type": "web_search"}]),
        "invalid_value",
        "session.tools[0].type",
        None,
    ),
    (
        "tool without name",
        _s(tools=[_fn(), {"type": "function"}]),
        "missing_required_parameter",
        "session.tools[1].name",
        None,
    ),
    (
        "tool name with spaces",
        _s(tools=[_fn(name="get weather")]),
        "invalid_value",
        "session.tools[0].name",
        "string does not match pattern",
    ),
    ("duplicate tool names", _s(tools=[_fn(), _fn()]), "invalid_value", "session.tools[1].name", None),
    (
        "tool parameters not object",
        _s(tools=[_fn(parameters="{}")]),
        "invalid_type",
        "session.tools[0].parameters",
        None,
    ),
    (
        "deep tool parameters",
        _s(tools=[_fn(parameters=json.loads('{"a":' * 40 + "1" + "}" * 40))]),
        "invalid_value",
        "session.tools[0].parameters",
        "nested too deeply",
    ),
    ("tool extra field", _s(tools=[_fn(strict=True)]), "unknown_parameter", "session.tools[0].strict", None),
    (
        "mcp without server",
        _s(tools=[{"type": "mcp", "server_label": "x"}]),
        "missing_required_parameter",
        "session.tools[0].server_url",
        None,
    ),
    (
        "mcp bad approval",
        _s(tools=[{"type": "mcp", "server_label": "x", "server_url": "u", "require_approval": "sometimes"}]),
        "invalid_value",
        "session.tools[0].require_approval",
        None,
    ),
    (
        "tool_choice unknown mode",
        _s(tool_choice="any"),
        "invalid_value",
        "session.tool_choice",
        "Supported values are: 'none', 'auto', and 'required'.",
    ),
    (
        "tool_choice function without name",
        _s(tool_choice={"type": "function"}),
        "missing_required_parameter",
        "session.tool_choice.name",
        None,
    ),
    ("tool_choice number", _s(tool_choice=1), "invalid_type", "session.tool_choice", None),
    ("tracing bad string", _s(tracing="on"), "invalid_value", "session.tracing", None),
    ("tracing extra", _s(tracing={"workflow": "x"}), "unknown_parameter", "session.tracing.workflow", None),
    ("truncation bad", _s(truncation="always"), "invalid_value", "session.truncation", None),
    (
        "retention ratio above 1",
        _s(truncation={"type": "retention_ratio", "retention_ratio": 2}),
        "invalid_value",
        "session.truncation.retention_ratio",
        None,
    ),
    (
        "prompt without id",
        _s(prompt={"version": "1"}),
        "missing_required_parameter",
        "session.prompt.id",
        None,
    ),
    ("include unknown", _s(include=["logprobs"]), "invalid_value", "session.include[0]", None),
    ("reasoning effort", _s(reasoning={"effort": "max"}), "invalid_value", "session.reasoning.effort", None),
    (
        "ttl too short",
        {"expires_after": {"anchor": "created_at", "seconds": 5}},
        "invalid_value",
        "expires_after.seconds",
        "Expected a value >= 10, but got 5 instead.",
    ),
    ("ttl too long", {"expires_after": {"seconds": 7201}}, "invalid_value", "expires_after.seconds", None),
    ("ttl as string", {"expires_after": {"seconds": "600"}}, "invalid_type", "expires_after.seconds", None),
    ("ttl as bool", {"expires_after": {"seconds": True}}, "invalid_type", "expires_after.seconds", None),
    ("bad anchor", {"expires_after": {"anchor": "now"}}, "invalid_value", "expires_after.anchor", None),
    (
        "expires_after extra",
        {"expires_after": {"minutes": 5}},
        "unknown_parameter",
        "expires_after.minutes",
        None,
    ),
    ("expires_after null", {"expires_after": None}, "invalid_type", "expires_after", None),
    (
        "model on transcription session",
        {"session": {"type": "transcription", "model": "x"}},
        "unknown_parameter",
        "session.model",
        None,
    ),
    (
        "output audio on transcription session",
        {"session": {"type": "transcription", "audio": {"output": {"voice": "alloy"}}}},
        "unknown_parameter",
        "session.audio.output",
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "param", "fragment"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_client_secret_request(body: object, code: str, param: str | None, fragment: str | None) -> None:
    with pytest.raises(SessionConfigError) as caught:
        parse_client_secret_request(body, default_model="gpt-realtime")
    error = caught.value
    assert (error.code, error.param) == (code, param), error.message
    if fragment is not None:
        assert fragment in error.message
    assert error.to_error() == {
        "type": "invalid_request_error",
        "code": code,
        "message": error.message,
        "param": param,
    }
    # The same error as a Realtime `error` event passes the SDK's strict gate.
    event = {"type": "error", "event_id": "event_1", "error": {**error.to_error(), "event_id": "evt_client"}}
    RealtimeErrorEvent.model_validate(event, strict=True)


def test_error_messages_do_not_echo_huge_values() -> None:
    with pytest.raises(SessionConfigError) as caught:
        parse_client_secret_request(_s(tool_choice="x" * 100_000), default_model="m")
    assert len(caught.value.message) < 300


def test_at_least_twenty_five_bad_inputs() -> None:
    assert len(BAD_INPUT) >= 25


# --- session.update merging ---------------------------------------------------------------------------


def _update(config: SessionConfig, patch: dict[str, Any]) -> SessionConfig:
    return parse_session_update(config, patch)


def test_update_replaces_only_what_is_present() -> None:
    base = new_session_config(model="gpt-realtime", instructions="Default persona.")
    updated = _update(base, {"type": "realtime", "instructions": "Speak French."})
    assert updated.instructions == "Speak French."
    assert updated.to_dict() == {**base.to_dict(), "instructions": "Speak French."}
    assert base.instructions == "Default persona."  # the current config is not modified

    cleared = _update(updated, {"type": "realtime", "instructions": ""})
    assert cleared.instructions == ""


def test_update_merges_audio_sections_and_same_kind_vad() -> None:
    base = new_session_config(model="m")
    step1 = _update(
        base,
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.8}}},
        },
    )
    step2 = _update(
        step1,
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 900}}},
        },
    )
    vad = step2.to_dict()["audio"]["input"]["turn_detection"]
    assert vad["threshold"] == 0.8
    assert vad["silence_duration_ms"] == 900
    assert vad["create_response"] is True

    voice = _update(step2, {"type": "realtime", "audio": {"output": {"voice": "marin"}}})
    assert voice.voice == "marin"
    assert voice.to_dict()["audio"]["output"]["speed"] == 1.0
    assert voice.to_dict()["audio"]["input"] == step2.to_dict()["audio"]["input"]


def test_update_replaces_vad_of_another_kind_and_null_turns_it_off() -> None:
    base = _update(
        new_session_config(model="m"),
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.9}}},
        },
    )
    semantic = _update(
        base, {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}
    )
    assert semantic.to_dict()["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    }
    off = _update(semantic, {"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    assert off.turn_detection is None
    again = _update(off, {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    assert again.to_dict()["audio"]["input"]["turn_detection"]["threshold"] == 0.5


def test_update_keeps_noise_reduction_strength_and_replaces_lists() -> None:
    base = _update(
        new_session_config(model="m"),
        {
            "type": "realtime",
            "audio": {"input": {"noise_reduction": {"type": "near_field", "strength": 0.3}}},
            "tools": [_fn(name="a"), _fn(name="b")],
        },
    )
    changed = _update(
        base,
        {
            "type": "realtime",
            "audio": {"input": {"noise_reduction": {"type": "far_field"}}},
            "tools": [_fn(name="c")],
        },
    )
    assert changed.to_dict()["audio"]["input"]["noise_reduction"] == {"type": "far_field", "strength": 0.3}
    assert [t["name"] for t in changed.to_dict()["tools"]] == ["c"]
    assert _update(changed, {"type": "realtime", "tools": []}).tools == []
    off = _update(changed, {"type": "realtime", "audio": {"input": {"noise_reduction": None}}})
    assert off.to_dict()["audio"]["input"]["noise_reduction"] is None


def test_agents_sdk_connect_sequence() -> None:
    config = new_session_config(model="gpt-realtime")
    config = _update(config, copy.deepcopy(AGENTS_JS_UPDATE))
    config = _update(config, {"type": "realtime", "tracing": "auto"})
    assert config.to_dict()["tracing"] == "auto"
    assert config.turn_detection is not None
    assert config.turn_detection.type == "semantic_vad"
    assert config.voice == "alloy"  # AGJS sent no voice: the default stays
    config = _update(config, copy.deepcopy(AGENTS_PY_UPDATE))
    assert config.voice == "ash"
    obj = session_object(config, session_id="sess_1")
    SERVER_EVENT.validate_json(
        json.dumps({"type": "session.updated", "event_id": "e", "session": obj}), strict=True
    )


def test_update_errors_use_session_prefix_and_leave_config_alone() -> None:
    base = new_session_config(model="m")
    cases: list[tuple[object, str, str]] = [
        (
            {"type": "realtime", "input_audio_format": "pcm16"},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        ({"input_audio_format": "pcm16"}, "unknown_parameter", "session.input_audio_format"),
        ({"instructions": "hi"}, "missing_required_parameter", "session.type"),
        ({"type": "transcription"}, "invalid_value", "session.type"),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3}}},
            "invalid_value",
            "session.audio.output.speed",
        ),
        ("not an object", "invalid_type", "session"),
    ]
    for patch, code, param in cases:
        with pytest.raises(SessionConfigError) as caught:
            parse_session_update(base, patch)
        assert (caught.value.code, caught.value.param) == (code, param)
    assert base == new_session_config(model="m")


def test_transcription_session_update() -> None:
    base = new_session_config("transcription", model="gpt-realtime")
    updated = _update(
        base, {"type": "transcription", "audio": {"input": {"transcription": {"language": "fr"}}}}
    )
    assert updated.transcription is not None
    assert (updated.transcription.model, updated.transcription.language) == ("gpt-4o-transcribe", "fr")
    with pytest.raises(SessionConfigError) as caught:
        _update(base, {"type": "realtime"})
    assert caught.value.param == "session.type"


def test_bare_session_parser_prefix() -> None:
    config = parse_session_request({"type": "realtime", "instructions": "x"}, default_model="m")
    assert config.model == "m"
    with pytest.raises(SessionConfigError) as caught:
        parse_session_request({"type": "realtime", "voice": "alloy"}, default_model="m")
    assert caught.value.param == "voice"
    with pytest.raises(SessionConfigError) as caught:
        parse_session_request({"voice": "alloy"}, default_model="m", param_prefix="session.")
    assert caught.value.param == "session.voice"


# --- the official SDK's requests -------------------------------------------------------------------------


def _sdk_client(handler: Any) -> OpenAI:
    return OpenAI(
        api_key="sk-test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def _gateway(request: httpx2.Request) -> httpx2.Response:
    """What the gateway does with `POST /v1/realtime/client_secrets`, minus auth and storage."""
    assert request.url.path == "/v1/realtime/client_secrets"
    try:
        parsed = parse_client_secret_request(
            json.loads(request.content or b"{}"), default_model="gpt-realtime"
        )
    except SessionConfigError as exc:
        return httpx2.Response(400, json={"error": exc.to_error()})
    session = session_object(parsed.session, session_id="sess_sdk", expires_at=2_000_000_000)
    return httpx2.Response(
        200, json={"value": "ek_test", "expires_at": 100 + parsed.ttl_seconds, "session": session}
    )


SDK_CALLS: dict[str, dict[str, Any]] = {
    "no arguments": {},
    "ttl only": {"expires_after": {"anchor": "created_at", "seconds": 60}},
    "docs example": {
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "You are a friendly assistant.",
            "audio": {"output": {"voice": "marin"}},
        }
    },
    "full realtime": {"session": FULL_REALTIME, "expires_after": {"anchor": "created_at", "seconds": 7200}},
    "agents-js session": {"session": AGENTS_JS_UPDATE},
    "transcription": {"session": FULL_TRANSCRIPTION},
}


@pytest.mark.parametrize("kwargs", SDK_CALLS.values(), ids=SDK_CALLS.keys())
def test_sdk_client_secrets_create_round_trip(kwargs: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content or b"{}"))
        return _gateway(request)

    with _sdk_client(handler) as client:
        response = client.realtime.client_secrets.create(**copy.deepcopy(kwargs))

    assert sent == [json.loads(json.dumps(kwargs))]
    assert response.value == "ek_test"
    assert response.session.id == "sess_sdk"
    expected_type = kwargs.get("session", {}).get("type", "realtime")
    assert response.session.type == expected_type
    if "session" in kwargs:
        echoed = response.session.model_dump(mode="json", exclude_unset=True)
        expected = copy.deepcopy(kwargs["session"])
        voice = expected.get("audio", {}).get("output", {}).get("voice")
        if isinstance(voice, dict):
            expected["audio"]["output"]["voice"] = voice["id"]
        assert _subset(expected, echoed)
    ttl = kwargs.get("expires_after", {}).get("seconds", DEFAULT_TTL_SECONDS)
    assert response.expires_at == 100 + ttl


def test_sdk_sees_config_errors_as_bad_request() -> None:
    with _sdk_client(_gateway) as client, pytest.raises(openai.BadRequestError) as caught:
        client.realtime.client_secrets.create(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": None}}},
            },
        )
    assert caught.value.code == "invalid_type"
    assert caught.value.param == "session.audio.input.turn_detection.create_response"
