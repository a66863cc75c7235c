"""Parse and validate client events against the `openai` SDK's own GA models.

Each event is validated against the one SDK model its `type` names (validating against the whole
event union would report errors from unrelated members). The SDK's models accept undeclared fields,
so after validation the model tree is walked and any extra field is reported as `unknown_parameter`,
naming its path, as OpenAI does. `session.update` is only checked for its envelope here; its
`session` goes through `session_config.parse_session_update`, which validates it against the SDK's
session models and knows the session rules (defaults, merge semantics, gateway limits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openai.types.realtime import (
    RealtimeClientEvent,
    RealtimeConversationItemAssistantMessage,
    RealtimeConversationItemFunctionCall,
    RealtimeConversationItemFunctionCallOutput,
    RealtimeConversationItemSystemMessage,
    RealtimeConversationItemUserMessage,
)
from pydantic import BaseModel, ValidationError

from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.sdk_models import members, type_tags, undeclared_field
from media_gateway.realtime.session_validation import error_from_validation, format_param


def _event_models() -> dict[str, type[BaseModel]]:
    """Each client event type and the SDK model of that event."""
    return {tag: model for model in members(RealtimeClientEvent) for tag in type_tags(model)}


_EVENT_MODELS = _event_models()
SUPPORTED_TYPES = tuple(_EVENT_MODELS)
MAX_EVENT_ID_LENGTH = 256
MAX_ITEM_ID_LENGTH = 64  # the conversation_items.id column


@dataclass(frozen=True)
class ClientEvent:
    """A validated client event: its type, the client's event_id (echoed in errors), and its fields."""

    type: str
    event_id: str | None
    data: dict[str, Any]


def _missing(param: str, event_id: str | None) -> RealtimeError:
    return RealtimeError(
        f"Missing required parameter: '{param}'.",
        code="missing_required_parameter",
        param=param,
        event_id=event_id,
    )


def _wrong_type(param: str, expected: str, event_id: str | None) -> RealtimeError:
    return RealtimeError(
        f"Invalid type for '{param}': expected {expected}.",
        code="invalid_type",
        param=param,
        event_id=event_id,
    )


def _only_keys(body: dict[str, Any], allowed: tuple[str, ...], event_id: str | None) -> None:
    for key in body:
        if key not in allowed:
            raise RealtimeError(
                f"Unknown parameter: '{key}'.", code="unknown_parameter", param=key, event_id=event_id
            )


def _reject_undeclared(model: BaseModel, prefix: str, event_id: str | None) -> None:
    found = undeclared_field(model)
    if found is not None:
        param = format_param(prefix, found)
        raise RealtimeError(
            f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param, event_id=event_id
        )


def parse_client_event(raw: str | bytes) -> ClientEvent:
    """Decode one frame; raise `RealtimeError` (with the event_id when one could be read)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise RealtimeError(
            "The server could not parse the event: it is not valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RealtimeError("A client event must be a JSON object.", code="invalid_type")
    raw_event_id = body.get("event_id")
    event_id = raw_event_id if isinstance(raw_event_id, str) else None
    if raw_event_id is not None and (event_id is None or len(event_id) > MAX_EVENT_ID_LENGTH):
        raise RealtimeError(
            "Invalid type for 'event_id': expected a string of at most 256 characters.",
            code="invalid_type",
            param="event_id",
        )
    event_type = body.get("type")
    if event_type is None:
        raise _missing("type", event_id)
    if not isinstance(event_type, str):
        raise _wrong_type("type", "a string", event_id)
    if event_type not in SUPPORTED_TYPES:
        supported = ", ".join(f"'{name}'" for name in SUPPORTED_TYPES)
        raise RealtimeError(
            f"Invalid value: '{event_type[:64]}'. Supported values are: {supported}.",
            code="invalid_value",
            param="type",
            event_id=event_id,
        )
    if event_type == "input_audio_buffer.append":
        return _append(body, event_id)
    if event_type == "session.update":
        return _session_update(body, event_id)
    if event_type == "conversation.item.create":
        return _item_create(body, event_id)
    event_model = _EVENT_MODELS[event_type]
    try:
        model = event_model.model_validate(body, strict=True)
    except ValidationError as exc:
        raise _validation_error(exc, event_model, body, "", event_id) from None
    _reject_undeclared(model, "", event_id)
    data = {key: value for key, value in body.items() if key not in ("type", "event_id")}
    return ClientEvent(type=event_type, event_id=event_id, data=data)


def _session_update(body: dict[str, Any], event_id: str | None) -> ClientEvent:
    _only_keys(body, ("type", "event_id", "session"), event_id)
    if "session" not in body:
        raise _missing("session", event_id)
    return ClientEvent(type="session.update", event_id=event_id, data={"session": body["session"]})


_MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "system": RealtimeConversationItemSystemMessage,
    "user": RealtimeConversationItemUserMessage,
    "assistant": RealtimeConversationItemAssistantMessage,
}
_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "function_call": RealtimeConversationItemFunctionCall,
    "function_call_output": RealtimeConversationItemFunctionCallOutput,
}


def _validation_error(
    exc: ValidationError, model: type[BaseModel], data: object, prefix: str, event_id: str | None
) -> RealtimeError:
    error = error_from_validation(exc, model, data, prefix)
    return RealtimeError(error.message, code=error.code, param=error.param, event_id=event_id)


def _item_create(body: dict[str, Any], event_id: str | None) -> ClientEvent:
    """conversation.item.create, validated against the one SDK item model its type and role select
    (validating against the whole item union would report errors from unrelated members)."""
    _only_keys(body, ("type", "event_id", "item", "previous_item_id"), event_id)
    previous = body.get("previous_item_id")
    if previous is not None and not isinstance(previous, str):
        raise _wrong_type("previous_item_id", "a string", event_id)
    item = body.get("item")
    if item is None:
        raise _missing("item", event_id)
    if not isinstance(item, dict):
        raise _wrong_type("item", "an object", event_id)
    item_type = item.get("type", "message")
    if item_type == "message":
        role = item.get("role")
        model = _MESSAGE_MODELS.get(role) if isinstance(role, str) else None
        if model is None:
            raise RealtimeError(
                f"Invalid value: '{str(role)[:32]}'. Supported values are: 'system', 'user' and 'assistant'.",
                code="invalid_value",
                param="item.role",
                event_id=event_id,
            )
    else:
        found = _ITEM_MODELS.get(item_type) if isinstance(item_type, str) else None
        if found is None:
            raise RealtimeError(
                f"Invalid value: '{str(item_type)[:32]}'. Supported values are: 'message', "
                "'function_call' and 'function_call_output'.",
                code="invalid_value",
                param="item.type",
                event_id=event_id,
            )
        model = found
    item_id = item.get("id")
    if isinstance(item_id, str) and not 1 <= len(item_id) <= MAX_ITEM_ID_LENGTH:
        raise RealtimeError(
            f"Invalid 'item.id': expected 1 to {MAX_ITEM_ID_LENGTH} characters.",
            code="invalid_value",
            param="item.id",
            event_id=event_id,
        )
    try:
        validated = model.model_validate(item, strict=True)
    except ValidationError as exc:
        raise _validation_error(exc, model, item, "item.", event_id) from None
    _reject_undeclared(validated, "item.", event_id)
    data = {"item": item, "previous_item_id": previous}
    return ClientEvent(type="conversation.item.create", event_id=event_id, data=data)


def _append(body: dict[str, Any], event_id: str | None) -> ClientEvent:
    """input_audio_buffer.append, fifty times a second per session: checked by hand, with the same
    outcome as validating against the SDK model (one string field), at a fraction of the cost."""
    _only_keys(body, ("type", "event_id", "audio"), event_id)
    audio = body.get("audio")
    if audio is None:
        raise _missing("audio", event_id)
    if not isinstance(audio, str):
        raise RealtimeError(
            f"Invalid type for 'audio': expected string, got {type(audio).__name__}.",
            code="invalid_type",
            param="audio",
            event_id=event_id,
        )
    return ClientEvent(type="input_audio_buffer.append", event_id=event_id, data={"audio": audio})
