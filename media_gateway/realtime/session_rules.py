"""Session configurations: validated against the `openai` SDK's models, then the gateway's rules.

The protocol is the installed SDK's: ``RealtimeSessionCreateRequest`` (``type: "realtime"``) and
``RealtimeTranscriptionSessionCreateRequest`` (``type: "transcription"``) with the types they
reference, as used by ``POST /v1/realtime/client_secrets``, ``POST /v1/realtime/sessions``,
``session.update`` and the ``session`` part of ``POST /v1/realtime/calls``. Input is validated with
``strict=True`` (no coercion: ``"5"`` is not an integer, ``1`` is not a boolean). The SDK's models
(openai 3.60.0, ``openai/types/realtime/``) declare every field ``Optional`` without bounds, accept
undeclared fields and leave some union tags optional, so three checks follow, in this order (when
the SDK's validation fails, its first error is reported, after any undeclared field on the way to
it, see ``session_validation.error_from_validation``):

1. Union tags are required (:data:`TAGGED`): ``format.type`` and ``tools[].type`` are optional in
   ``realtime_audio_formats.py`` and ``realtime_function_tool.py``; the official clients always
   send them, and without one the SDK's untagged union picks a member by shape.
2. Undeclared fields are ``unknown_parameter`` (the SDK keeps them in ``model_extra``), so
   beta-shaped fields (``modalities``, ``voice``, ``input_audio_format``…) are rejected.
3. The rules (:data:`NULLABLE`, :data:`LIMITS`, :data:`MODEL_RULES`, :data:`LIST_RULES`):

   * ``null`` only where OpenAI documents the field as nullable ("set to null to turn off");
     elsewhere it is ``invalid_type`` ("expected boolean, got null"), as observed upstream.
   * ``audio/pcm`` requires ``rate`` (upstream rejects it without; the SDK marks it optional).
   * Function tools need a ``name`` matching ``^[a-zA-Z0-9_-]{1,64}$``, unique per session; MCP
     tools need one of ``server_url``/``connector_id``/``tunnel_id`` (SDK docstring of ``Mcp``).
   * Ranges OpenAI documents but the SDK does not type (``speed`` 0.25-1.5, ``threshold`` 0-1,
     ``max_output_tokens`` 1-4096, ``retention_ratio`` 0-1) and one output modality only.
   * Size caps (gateway limits, see the ``MAX_*`` constants): strings, arrays, 128 tools, and
     depth/size of free-form JSON (tool ``parameters``, tracing ``metadata``), which the SDK types
     as ``object`` and the gateway requires to be a JSON object.

Where the SDK is stricter than the hand-written models the gateway used before, the SDK wins:
``prompt.variables`` values are strings or ``input_text``/``input_image``/``input_file`` objects
(``ResponsePrompt``, openai 3.60.0 ``openai/types/responses/response_prompt.py``), not any object.

Accepted although the gateway cannot honour them (kept in the config and echoed back, so clients
see what they sent): MCP tools and ``tool_choice {type:"mcp"}``, ``prompt`` templates, ``tracing``,
``truncation``, ``reasoning``, ``parallel_tool_calls``, ``include`` logprobs, transcription
``delay``/``keywords``/``languages``, custom voices ``{id}`` (echoed as the id string), any
``model`` string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias, get_args, get_origin

from openai.types.realtime import (
    RealtimeFunctionTool,
    RealtimeSessionCreateRequest,
    RealtimeTranscriptionSessionCreateRequest,
)
from openai.types.realtime.realtime_audio_formats import AudioPCM, AudioPCMA, AudioPCMU
from openai.types.realtime.realtime_tools_config_union import Mcp
from pydantic import BaseModel, ValidationError

from .sdk_models import Path, describe_kinds, members, models_in, undeclared_field
from .session_limits import Items, JsonObject, Limit, Matches, Range, Text
from .session_validation import (
    SessionConfigError,
    error_from_validation,
    format_param,
    invalid_value,
    missing_parameter,
    unknown_parameter,
    wrong_type,
)

__all__ = [
    "FREE_FORM",
    "LIMITS",
    "LIST_RULES",
    "MAX_ID_CHARS",
    "MAX_INSTRUCTIONS_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TOOLS",
    "MODEL_RULES",
    "NULLABLE",
    "REQUIRED",
    "SESSION_MODELS",
    "TAGGED",
    "SessionParams",
    "SessionType",
    "validate_session",
]

SessionType = Literal["realtime", "transcription"]
SessionParams: TypeAlias = RealtimeSessionCreateRequest | RealtimeTranscriptionSessionCreateRequest
SESSION_MODELS: Final[dict[SessionType, type[SessionParams]]] = {
    "realtime": RealtimeSessionCreateRequest,
    "transcription": RealtimeTranscriptionSessionCreateRequest,
}

MAX_INSTRUCTIONS_CHARS: Final = 65_536
"""``instructions`` cap (64 Ki characters)."""
MAX_TEXT_CHARS: Final = 65_536
"""Cap for other prose: tool/server descriptions, transcription prompt, header values."""
MAX_ID_CHARS: Final = 256
"""Cap for identifiers and labels: model, voice, language, tool and server names, ids."""
MAX_TOOLS: Final = 128
MAX_LIST_ITEMS: Final = 256
MAX_MS: Final = 600_000
"""Sanity cap on ``*_ms`` turn-detection fields (OpenAI documents no bound)."""
TOOL_NAME_PATTERN: Final = r"^[a-zA-Z0-9_-]{1,64}$"

# --- the rules, by field pattern --------------------------------------------------------------
# A pattern is the field's path with `[]` for any array index and `*` for any key of a map.

NULLABLE: Final = frozenset(
    {
        "audio.input.noise_reduction",
        "audio.input.transcription",
        "audio.input.turn_detection",
        "audio.input.turn_detection.idle_timeout_ms",
        "tracing",
        "prompt",
        "prompt.variables",
        "prompt.version",
        "tools[].allowed_tools",
        "tools[].require_approval",
    }
)
"""The fields OpenAI documents as nullable; ``null`` anywhere else is ``invalid_type``."""

_ID = (Text(min=1, max=MAX_ID_CHARS),)
_PROSE = (Text(max=MAX_TEXT_CHARS),)
_NAMES = (Items(max=MAX_LIST_ITEMS),)
_MS = (Range(ge=0, le=MAX_MS),)

LIMITS: Final[dict[str, tuple[Limit, ...]]] = {
    "model": _ID,
    "instructions": (Text(max=MAX_INSTRUCTIONS_CHARS),),
    "include": (Items(max=MAX_LIST_ITEMS),),
    "max_output_tokens": (Range(ge=1, le=4096),),
    "output_modalities": (Items(min=1, max=2),),
    "audio.input.noise_reduction.strength": (Range(ge=0.0),),
    "audio.input.transcription.model": _ID,
    "audio.input.transcription.language": _ID,
    "audio.input.transcription.prompt": _PROSE,
    "audio.input.transcription.keywords": _NAMES,
    "audio.input.transcription.keywords[]": _ID,
    "audio.input.transcription.languages": _NAMES,
    "audio.input.transcription.languages[]": _ID,
    "audio.input.turn_detection.threshold": (Range(ge=0.0, le=1.0),),
    "audio.input.turn_detection.prefix_padding_ms": _MS,
    "audio.input.turn_detection.silence_duration_ms": _MS,
    "audio.input.turn_detection.idle_timeout_ms": (Range(ge=1, le=MAX_MS),),
    "audio.output.voice": _ID,
    "audio.output.voice.id": _ID,
    "audio.output.speed": (Range(ge=0.25, le=1.5),),
    "prompt.id": _ID,
    "prompt.version": _ID,
    "prompt.variables": (Items(max=MAX_LIST_ITEMS),),
    "prompt.variables.*": _PROSE,
    "tool_choice.name": _ID,
    "tool_choice.server_label": _ID,
    "tools": (Items(max=MAX_TOOLS),),
    "tools[].name": (Matches(TOOL_NAME_PATTERN),),
    "tools[].description": _PROSE,
    "tools[].parameters": (JsonObject(),),
    "tools[].server_label": _ID,
    "tools[].allowed_tools": _NAMES,
    "tools[].allowed_tools[]": _ID,
    "tools[].allowed_tools.tool_names": _NAMES,
    "tools[].allowed_tools.tool_names[]": _ID,
    "tools[].authorization": _PROSE,
    "tools[].headers": (Items(max=64),),
    "tools[].headers.*": _PROSE,
    "tools[].require_approval.always.tool_names": _NAMES,
    "tools[].require_approval.always.tool_names[]": _ID,
    "tools[].require_approval.never.tool_names": _NAMES,
    "tools[].require_approval.never.tool_names[]": _ID,
    "tools[].server_description": _PROSE,
    "tools[].server_url": (Text(min=1, max=2048),),
    "tools[].tunnel_id": _ID,
    "tracing.workflow_name": _ID,
    "tracing.group_id": _ID,
    "tracing.metadata": (JsonObject(),),
    "truncation.retention_ratio": (Range(ge=0.0, le=1.0),),
    "truncation.token_limits.post_instructions": (Range(ge=1),),
}
"""Bounds per field; a bound applies to the JSON kinds it names (``Range`` to numbers…).

The SDK types none of them (openai 3.60.0: plain ``Optional[int]``/``float``/``str``/``List``). The
ranges of ``speed``, ``threshold``, ``max_output_tokens`` and ``retention_ratio`` are the ones its
docstrings state; the other bounds (non-negative numbers, ``*_ms`` and size caps) are the gateway's."""

FREE_FORM: Final = frozenset(
    p for p, limits in LIMITS.items() if any(isinstance(x, JsonObject) for x in limits)
)
"""Free-form JSON fields (the SDK's ``object``): their content is the client's, not the protocol's."""

TAGGED: Final[tuple[type[BaseModel], ...]] = (AudioPCM, AudioPCMU, AudioPCMA, RealtimeFunctionTool)
"""Union members whose ``type`` tag the SDK marks optional and the gateway requires."""

ModelRule = Callable[[BaseModel, str | None], SessionConfigError | None]
ListRule = Callable[[list[Any], str | None], SessionConfigError | None]


def _required(name: str) -> ModelRule:
    def check(model: BaseModel, param: str | None) -> SessionConfigError | None:
        missing = name not in model.model_fields_set
        return missing_parameter(format_param(param or "", [name])) if missing else None

    return check


def _needs_a_server(model: BaseModel, param: str | None) -> SessionConfigError | None:
    if isinstance(model, Mcp) and model.server_url is None and model.connector_id is None:
        return (
            missing_parameter(format_param(param or "", ["server_url"])) if model.tunnel_id is None else None
        )
    return None


# openai 3.60.0 marks both optional: AudioPCM.rate (realtime_audio_formats.py) and
# RealtimeFunctionTool.name (realtime_function_tool.py); the docstring of Mcp.server_url
# (realtime_tools_config_union.py) says "One of server_url, connector_id, or tunnel_id must be provided".
REQUIRED: Final[dict[type[BaseModel], tuple[ModelRule, ...]]] = {
    AudioPCM: (_required("rate"),),
    RealtimeFunctionTool: (_required("name"),),
}
"""Fields the gateway requires and the SDK marks optional, checked before the object's fields."""
MODEL_RULES: Final[dict[type[BaseModel], tuple[ModelRule, ...]]] = {Mcp: (_needs_a_server,)}
"""Rules on a whole object, by SDK model, checked after its fields."""


def _one_modality(value: list[Any], param: str | None) -> SessionConfigError | None:
    if len(set(value)) > 1:
        detail = "it is not possible to request both 'text' and 'audio'. Use ['audio'] or ['text']."
        return invalid_value(param, detail)
    return None


def _unique_tool_names(tools: list[Any], param: str | None) -> SessionConfigError | None:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        field = "server_label" if tool.get("type") == "mcp" else "name"
        key = f"{tool.get('type')}:{tool.get(field)}"
        if key in seen:
            where = format_param(param or "", [index, field])
            return invalid_value(where, f"duplicate tool {field} '{tool.get(field)}'.")
        seen.add(key)
    return None


LIST_RULES: Final[dict[str, ListRule]] = {
    "output_modalities": _one_modality,
    "tools": _unique_tool_names,
}
"""Rules on a whole array, after its items passed."""


# --- checking a validated session --------------------------------------------------------------


def _check_model(
    model: BaseModel, raw: dict[str, Any], path: Path, pattern: str, prefix: str
) -> SessionConfigError | None:
    param = format_param(prefix, path)
    for rule in REQUIRED.get(type(model), ()):
        if error := rule(model, param):
            return error
    for name, field in type(model).model_fields.items():
        if name in raw:
            here = f"{pattern}.{name}" if pattern else name
            value = getattr(model, name)
            if error := _check_value(value, raw[name], field.annotation, (*path, name), here, prefix):
                return error
    for rule in MODEL_RULES.get(type(model), ()):
        if error := rule(model, param):
            return error
    return None


def _container(annotation: Any, origin: type) -> tuple[Any, ...] | None:
    """The type arguments of the ``list``/``dict`` member of an SDK annotation, or None."""
    found = next((m for m in members(annotation) if get_origin(m) is origin), None)
    return get_args(found) if found is not None else None


def _check_value(
    value: object, raw: object, annotation: Any, path: Path, pattern: str, prefix: str
) -> SessionConfigError | None:
    """The first rule ``raw`` (as sent; ``value`` as validated) breaks at ``pattern``, or None.

    Only the SDK's structure is entered (models, typed arrays and maps), never free-form JSON.
    """
    if raw is None:
        if pattern in NULLABLE:
            return None
        return wrong_type(format_param(prefix, path), describe_kinds(annotation), None)
    for limit in LIMITS.get(pattern, ()):
        if error := limit.check(raw, format_param(prefix, path)):
            return error
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        return _check_model(value, raw, path, pattern, prefix)
    if isinstance(value, list) and isinstance(raw, list) and (item_types := _container(annotation, list)):
        for index, (item, sent) in enumerate(zip(value, raw, strict=True)):
            if error := _check_value(item, sent, item_types[0], (*path, index), f"{pattern}[]", prefix):
                return error
        rule = LIST_RULES.get(pattern)
        return rule(raw, format_param(prefix, path)) if rule else None
    if isinstance(value, dict) and isinstance(raw, dict) and (map_types := _container(annotation, dict)):
        for key, item in value.items():
            if error := _check_value(item, raw.get(key), map_types[1], (*path, key), f"{pattern}.*", prefix):
                return error
    return None


def _violation(params: SessionParams, data: dict[str, Any], prefix: str) -> SessionConfigError | None:
    for model, path in models_in(params):
        if isinstance(model, TAGGED) and getattr(model, "type", None) is None:
            type_param = format_param(prefix, [*path, "type"])
            if "type" in model.model_fields_set:
                return wrong_type(type_param, "string", None)
            return missing_parameter(type_param)
    undeclared = undeclared_field(params)
    if undeclared is not None:
        return unknown_parameter(format_param(prefix, undeclared))
    return _check_model(params, data, (), "", prefix)


def validate_session(data: dict[str, Any], session_type: SessionType, prefix: str) -> SessionParams:
    """``data`` (a session object of ``session_type``) validated; raises :class:`SessionConfigError`.

    ``prefix`` (e.g. ``"session."``) is prepended to error params.
    """
    model = SESSION_MODELS[session_type]
    try:
        params = model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise error_from_validation(exc, model, data, prefix) from None
    error = _violation(params, data, prefix)
    if error is not None:
        raise error
    return params
