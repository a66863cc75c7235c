"""GA Realtime session configuration: parsing, ``session.update`` merging and the session object.

Public API::

    parse_client_secret_request(body, *, default_model) -> ClientSecretRequest
    parse_session_request(body, *, default_model, param_prefix="") -> SessionConfig
    parse_session_update(current, session_patch) -> SessionConfig
    new_session_config(session_type="realtime", *, model) -> SessionConfig
    session_object(config, *, session_id, expires_at=None) -> dict

All parsers raise :class:`SessionConfigError` (``code``/``param``/``message`` as OpenAI writes them;
``.to_error()`` gives the ``error`` object). The request models live in :mod:`session_models`, the
error mapping in :mod:`session_validation`.

Defaults (what ``session.created`` shows for an empty config) follow the SDK docstrings and the
live GA trace: PCM 24 kHz in and out, ``server_vad`` (threshold 0.5, prefix 300 ms, silence 500 ms,
``idle_timeout_ms`` null, create/interrupt response true), voice ``alloy`` at speed 1.0,
``output_modalities ["audio"]``, no tools, ``tool_choice "auto"``, ``max_output_tokens "inf"``,
``truncation "auto"``, ``tracing`` null, ``prompt`` null, no input transcription, no noise
reduction. Transcription sessions default to ``{"model": DEFAULT_TRANSCRIPTION_MODEL}``.

``session.update`` semantics: top-level fields present in the patch replace the current ones; the
containers ``audio``, ``audio.input``, ``audio.output``, ``audio.input.noise_reduction`` and
``audio.input.transcription`` are merged key by key ("Only the fields that are present in the
session.update are updated", SDK ``SessionUpdateEvent``); ``audio.input.turn_detection`` merges
when the ``type`` is unchanged and is replaced otherwise; ``null`` clears a nullable field; lists
(``tools``, ``output_modalities``, ``include``) and the other objects (``format``, ``prompt``,
``tracing``, ``tool_choice``, ``truncation``) are replaced whole.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from .session_models import (
    AudioTranscription,
    FunctionTool,
    McpTool,
    RealtimeSessionParams,
    SemanticVad,
    ServerVad,
    SessionParams,
    TranscriptionSessionParams,
    VoiceId,
)
from .session_validation import SessionConfigError, json_kind, not_null, session_config_error_from_validation

__all__ = [
    "DEFAULT_TRANSCRIPTION_MODEL",
    "DEFAULT_TTL_SECONDS",
    "DEFAULT_VOICE",
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "ClientSecretRequest",
    "SessionConfig",
    "SessionConfigError",
    "new_session_config",
    "parse_client_secret_request",
    "parse_session_request",
    "parse_session_update",
    "session_object",
]

SessionType = Literal["realtime", "transcription"]

DEFAULT_TTL_SECONDS: Final = 600
MIN_TTL_SECONDS: Final = 10
MAX_TTL_SECONDS: Final = 7200
DEFAULT_VOICE: Final = "alloy"
DEFAULT_TRANSCRIPTION_MODEL: Final = "gpt-4o-transcribe"
_PCM24K: Final[dict[str, Any]] = {"type": "audio/pcm", "rate": 24000}
_SERVER_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
# Transcription sessions have no responses: only the VAD knobs get defaults (the SDK's
# RealtimeTranscriptionSessionTurnDetection declares just type/threshold/prefix/silence).
_TRANSCRIPTION_SERVER_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
_TRANSCRIPTION_SEMANTIC_VAD_DEFAULTS: Final[dict[str, Any]] = {}
_MERGED_CONTAINERS: Final = frozenset(
    {
        ("audio",),
        ("audio", "input"),
        ("audio", "output"),
        ("audio", "input", "noise_reduction"),
        ("audio", "input", "transcription"),
    }
)
_MERGED_IF_SAME_TYPE: Final = frozenset({("audio", "input", "turn_detection")})
_REDACTED_MCP_FIELDS: Final = ("authorization", "headers")


_EffectiveParams = Annotated[RealtimeSessionParams | TranscriptionSessionParams, Field(discriminator="type")]


_NULLABLE_TOOL_FIELDS: Final = frozenset({"allowed_tools", "require_approval"})
_NULLABLE_INPUT_FIELDS: Final = frozenset({"noise_reduction", "transcription", "turn_detection"})


def _without_none(data: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None or k in keep}


def _restore_stored(data: dict[str, Any]) -> dict[str, Any]:
    """Undo ``model_dump()`` artefacts of a stored effective config, without touching free-form JSON.

    Drops ``null`` where the field is not nullable (full dumps write every unset field as null) and
    puts back the "off" nulls of nullable fields that ``exclude_none`` dumps leave out.
    """
    out = _without_none(data, frozenset({"tracing", "prompt"}))
    realtime = out.get("type") == "realtime"
    if realtime:
        out.setdefault("tracing", None)
        out.setdefault("prompt", None)
    for key, keep in (
        ("tool_choice", frozenset[str]()),
        ("truncation", frozenset[str]()),
        ("reasoning", frozenset[str]()),
        ("tracing", frozenset[str]()),
        ("prompt", frozenset({"variables", "version"})),
    ):
        if isinstance(out.get(key), dict):
            out[key] = _without_none(out[key], keep)
    if isinstance(out.get("truncation"), dict) and isinstance(out["truncation"].get("token_limits"), dict):
        out["truncation"]["token_limits"] = _without_none(out["truncation"]["token_limits"])
    if isinstance(out.get("tools"), list):
        tools = out["tools"]
        out["tools"] = [_without_none(t, _NULLABLE_TOOL_FIELDS) if isinstance(t, dict) else t for t in tools]
    audio = out.get("audio")
    if isinstance(audio, dict):
        audio = out["audio"] = _without_none(audio)
        for side in ("input", "output"):
            section = audio.get(side)
            if not isinstance(section, dict):
                continue
            nullable = _NULLABLE_INPUT_FIELDS if side == "input" else frozenset[str]()
            section = audio[side] = _without_none(section, nullable)
            for key in nullable:
                section.setdefault(key, None)
            for key in ("format", "noise_reduction", "transcription", "turn_detection"):
                if isinstance(section.get(key), dict):
                    section[key] = _without_none(section[key])
            turn_detection = section.get("turn_detection")
            if realtime and isinstance(turn_detection, dict) and turn_detection.get("type") == "server_vad":
                turn_detection.setdefault("idle_timeout_ms", None)
    return out


class SessionConfig(RootModel[_EffectiveParams]):
    """The effective configuration of one session: every default filled in, already validated.

    ``model_dump()`` gives the flat session dict (``{"type": "realtime", "model": …}``), and
    ``SessionConfig.model_validate(stored)`` restores a dumped config, with or without
    ``exclude_none``/``exclude_unset`` (the nulls that mean "off" are put back). Prefer
    :meth:`to_dict` for storage. Immutable by convention: :func:`parse_session_update` returns a
    new instance.
    """

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _restore_stored(cls, data: Any) -> Any:
        return _restore_stored(data) if isinstance(data, dict) else data

    @property
    def params(self) -> SessionParams:
        """The typed configuration (``RealtimeSessionParams`` or ``TranscriptionSessionParams``)."""
        return self.root

    @property
    def type(self) -> SessionType:
        return self.params.type

    @property
    def is_realtime(self) -> bool:
        return isinstance(self.params, RealtimeSessionParams)

    @property
    def model(self) -> str:
        """Realtime model; for transcription sessions the transcription model ("" if off)."""
        if isinstance(self.params, RealtimeSessionParams):
            return self.params.model or ""
        transcription = self.transcription
        return (transcription.model or "") if transcription else ""

    @property
    def instructions(self) -> str:
        return (self.params.instructions or "") if isinstance(self.params, RealtimeSessionParams) else ""

    @property
    def output_modalities(self) -> list[Literal["text", "audio"]]:
        if isinstance(self.params, RealtimeSessionParams):
            return list(self.params.output_modalities or ["audio"])
        return []

    @property
    def voice(self) -> str | VoiceId | None:
        if isinstance(self.params, RealtimeSessionParams) and self.params.audio and self.params.audio.output:
            return self.params.audio.output.voice
        return None

    @property
    def speed(self) -> float:
        if isinstance(self.params, RealtimeSessionParams) and self.params.audio and self.params.audio.output:
            return self.params.audio.output.speed or 1.0
        return 1.0

    @property
    def max_output_tokens(self) -> int | Literal["inf"]:
        if isinstance(self.params, RealtimeSessionParams) and self.params.max_output_tokens is not None:
            return self.params.max_output_tokens
        return "inf"

    @property
    def tools(self) -> list[FunctionTool | McpTool]:
        return list(self.params.tools or []) if isinstance(self.params, RealtimeSessionParams) else []

    @property
    def turn_detection(self) -> ServerVad | SemanticVad | None:
        audio_input = self.params.audio.input if self.params.audio else None
        return audio_input.turn_detection if audio_input else None

    @property
    def transcription(self) -> AudioTranscription | None:
        audio_input = self.params.audio.input if self.params.audio else None
        return audio_input.transcription if audio_input else None

    @property
    def input_format(self) -> str:
        """``audio/pcm`` (24 kHz), ``audio/pcmu`` or ``audio/pcma``."""
        audio_input = self.params.audio.input if self.params.audio else None
        return audio_input.format.type if audio_input and audio_input.format else "audio/pcm"

    @property
    def output_format(self) -> str | None:
        """Output audio format type; ``None`` for transcription sessions."""
        if isinstance(self.params, RealtimeSessionParams) and self.params.audio and self.params.audio.output:
            fmt = self.params.audio.output.format
            return fmt.type if fmt else "audio/pcm"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as JSON-ready data (no id/object, nothing redacted)."""
        return self.params.model_dump(mode="json", exclude_unset=True)

    def policy_summary(self) -> dict[str, Any]:
        """Flat, JSON-ready facts for the policy engine (no free text, no secrets)."""
        voice = self.voice
        tools = self.tools
        turn_detection = self.turn_detection
        transcription = self.transcription
        return {
            "type": self.type,
            "model": self.model,
            "voice": voice.id if isinstance(voice, VoiceId) else voice,
            "custom_voice": isinstance(voice, VoiceId),
            "output_modalities": self.output_modalities,
            "max_output_tokens": self.max_output_tokens,
            "tools_count": len(tools),
            "function_tools_count": sum(isinstance(t, FunctionTool) for t in tools),
            "mcp_tools_count": sum(isinstance(t, McpTool) for t in tools),
            "instructions_length": len(self.instructions),
            "input_format": self.input_format,
            "output_format": self.output_format,
            "turn_detection": turn_detection.type if turn_detection else None,
            "transcription_model": transcription.model if transcription else None,
        }


class ClientSecretRequest(BaseModel):
    """A parsed ``POST /v1/realtime/client_secrets`` body."""

    model_config = ConfigDict(frozen=True)

    ttl_seconds: int
    """Seconds from creation until the secret expires (``expires_after.seconds``)."""
    session: SessionConfig


class _ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    anchor: Annotated[Literal["created_at"], not_null("string")] = "created_at"
    seconds: Annotated[int, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS), not_null("integer")] = (
        DEFAULT_TTL_SECONDS
    )


class _ClientSecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expires_after: Any = None
    session: Any = None


# ---------------------------------------------------------------------------------------------
# helpers


def _defaults(session_type: SessionType, *, model: str, instructions: str) -> dict[str, Any]:
    if session_type == "transcription":
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": dict(_PCM24K),
                    "noise_reduction": None,
                    "transcription": {"model": DEFAULT_TRANSCRIPTION_MODEL},
                    "turn_detection": {"type": "server_vad"},
                }
            },
        }
    return {
        "type": "realtime",
        "model": model,
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": dict(_PCM24K),
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": {"type": "server_vad"},
            },
            "output": {"format": dict(_PCM24K), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
    }


def _merge(base: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        here = (*path, key)
        current = out.get(key)
        mergeable = here in _MERGED_CONTAINERS or (
            here in _MERGED_IF_SAME_TYPE
            and isinstance(current, dict)
            and isinstance(value, dict)
            and current.get("type") == value.get("type")
        )
        if mergeable and isinstance(current, dict) and isinstance(value, dict):
            out[key] = _merge(current, value, here)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on what the client chose (VAD kind, noise reduction)."""
    audio_input = (data.get("audio") or {}).get("input") or {}
    realtime = data.get("type") == "realtime"
    turn_detection = audio_input.get("turn_detection")
    if isinstance(turn_detection, dict):
        if turn_detection.get("type") == "server_vad":
            defaults = _SERVER_VAD_DEFAULTS if realtime else _TRANSCRIPTION_SERVER_VAD_DEFAULTS
        else:
            defaults = _SEMANTIC_VAD_DEFAULTS if realtime else _TRANSCRIPTION_SEMANTIC_VAD_DEFAULTS
        audio_input["turn_detection"] = {
            **turn_detection,
            **{k: v for k, v in defaults.items() if k not in turn_detection},
        }
    noise_reduction = audio_input.get("noise_reduction")
    if isinstance(noise_reduction, dict) and "strength" not in noise_reduction:
        noise_reduction["strength"] = 1.0  # SDK: "Defaults to 1 when noise reduction is first enabled."
    return data


def _type_error(param: str | None, expected: str, value: object) -> SessionConfigError:
    shown = param or "request body"
    return SessionConfigError(
        "invalid_type", param, f"Invalid type for '{shown}': expected {expected}, got {json_kind(value)}"
    )


def _validate_params(data: object, prefix: str, *, current_type: SessionType | None = None) -> SessionParams:
    """Validate one session object (``type`` required) into the request model."""
    where = prefix.rstrip(".") or None
    if not isinstance(data, dict):
        raise _type_error(where, "object", data)
    type_param = f"{prefix}type"
    if "type" not in data:
        # Report unknown (e.g. beta-shaped) fields first, as upstream does, then the missing type.
        probe_type = current_type or "realtime"
        probe_cls = RealtimeSessionParams if probe_type == "realtime" else TranscriptionSessionParams
        probe = {**data, "type": probe_type}
        try:
            probe_cls.model_validate(probe)
        except ValidationError as exc:
            raise session_config_error_from_validation(exc, probe, prefix) from None
        raise SessionConfigError(
            "missing_required_parameter", type_param, f"Missing required parameter: '{type_param}'."
        )
    session_type = data["type"]
    if not isinstance(session_type, str):
        raise _type_error(type_param, "string", session_type)
    if session_type not in ("realtime", "transcription"):
        raise SessionConfigError(
            "invalid_value",
            type_param,
            f"Invalid value: '{session_type[:80]}'. Supported values are: 'realtime' and 'transcription'.",
        )
    if current_type is not None and session_type != current_type:
        raise SessionConfigError(
            "invalid_value",
            type_param,
            f"Invalid value: '{session_type}'. The session type cannot be changed from '{current_type}'.",
        )
    cls = RealtimeSessionParams if session_type == "realtime" else TranscriptionSessionParams
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise session_config_error_from_validation(exc, data, prefix) from None


def _build(base: dict[str, Any], params: SessionParams, prefix: str) -> SessionConfig:
    patch = params.model_dump(mode="json", exclude_unset=True)
    merged = _fill_defaults(_merge(base, patch))
    return SessionConfig(_validate_params(merged, prefix))


# ---------------------------------------------------------------------------------------------
# public API


def new_session_config(
    session_type: SessionType = "realtime", *, model: str, instructions: str = ""
) -> SessionConfig:
    """The default configuration of a fresh session (WebSocket connect without a client secret)."""
    base = _fill_defaults(_defaults(session_type, model=model, instructions=instructions))
    return SessionConfig(_validate_params(base, ""))


def parse_session_request(
    body: object, *, default_model: str, default_instructions: str = "", param_prefix: str = ""
) -> SessionConfig:
    """A full session configuration from a bare session object (``type`` required).

    For ``POST /v1/realtime/calls/{id}/accept``, the ``session`` part of ``POST /v1/realtime/calls``
    and a GA-shaped ``POST /v1/realtime/sessions``. ``param_prefix`` (e.g. ``"session."``) is
    prepended to error params.
    """
    params = _validate_params(body, param_prefix)
    base = _defaults(params.type, model=default_model, instructions=default_instructions)
    return _build(base, params, param_prefix)


def parse_client_secret_request(
    body: object, *, default_model: str, default_instructions: str = ""
) -> ClientSecretRequest:
    """Parse ``POST /v1/realtime/client_secrets``: ``{"expires_after"?: {...}, "session"?: {...}}``.

    An absent body (``None``) or ``session`` gives a default realtime session on ``default_model``.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _type_error(None, "object", body)
    try:
        envelope = _ClientSecretBody.model_validate(body)
    except ValidationError as exc:
        raise session_config_error_from_validation(exc, body, "") from None

    ttl = DEFAULT_TTL_SECONDS
    if "expires_after" in body:
        raw = envelope.expires_after
        if not isinstance(raw, dict):
            raise _type_error("expires_after", "object", raw)
        try:
            ttl = _ExpiresAfter.model_validate(raw).seconds
        except ValidationError as exc:
            raise session_config_error_from_validation(exc, raw, "expires_after.") from None

    if "session" in body:
        session = parse_session_request(
            envelope.session,
            default_model=default_model,
            default_instructions=default_instructions,
            param_prefix="session.",
        )
    else:
        session = new_session_config("realtime", model=default_model, instructions=default_instructions)
    return ClientSecretRequest(ttl_seconds=ttl, session=session)


def parse_session_update(current: SessionConfig, session_patch: object) -> SessionConfig:
    """Apply the ``session`` of a ``session.update`` event to ``current`` (see module docstring).

    ``session.type`` is required and must equal the current type. Errors name ``session.…`` params.
    """
    params = _validate_params(session_patch, "session.", current_type=current.type)
    return _build(current.to_dict(), params, "session.")


def _redact_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # MCP credentials set server-side (client secret) must not reach the browser in session.created.
    return [
        {k: v for k, v in tool.items() if k not in _REDACTED_MCP_FIELDS}
        if tool.get("type") == "mcp"
        else tool
        for tool in tools
    ]


def session_object(
    config: SessionConfig, *, session_id: str, expires_at: int | None = None
) -> dict[str, Any]:
    """The GA session object sent to clients (client secret response, ``session.created/updated``).

    Realtime: ``RealtimeSessionCreateResponse`` shape with ``object: "realtime.session"``.
    Transcription: ``RealtimeTranscriptionSessionCreateResponse`` shape with
    ``object: "realtime.transcription_session"``. MCP ``authorization``/``headers`` are omitted; a
    custom voice ``{"id": "voice_…"}`` is shown as the id string (the only form the SDK's response
    model accepts).
    """
    data = config.to_dict()
    session_type = data.pop("type")
    obj: dict[str, Any] = {
        "type": session_type,
        "object": "realtime.session" if session_type == "realtime" else "realtime.transcription_session",
        "id": session_id,
    }
    if "tools" in data:
        data["tools"] = _redact_tools(data["tools"])
    output = (data.get("audio") or {}).get("output") or {}
    if isinstance(output.get("voice"), dict):
        # The SDK's RealtimeSessionCreateResponse types voice as a string only (the request and
        # session.created models also allow {"id"}): send the custom voice id as the string.
        output["voice"] = output["voice"]["id"]
    obj.update(data)
    if expires_at is not None:
        obj["expires_at"] = expires_at
    return obj
