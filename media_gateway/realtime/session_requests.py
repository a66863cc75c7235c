"""Parse the session configurations clients send into a :class:`SessionConfig`.

Every parser raises :class:`SessionConfigError` (``code``/``param``/``message`` as OpenAI writes
them). A session object is validated twice: as sent (so errors name what the client wrote), then
merged over the defaults or the current configuration (so the result is a complete, valid config).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .session_defaults import default_session, fill_defaults, merge_update
from .session_effective import SessionConfig
from .session_rules import SESSION_MODELS, SessionParams, SessionType, validate_session
from .session_validation import (
    SessionConfigError,
    error_from_validation,
    missing_parameter,
    not_null,
    unsupported_value,
    wrong_type,
)

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "ClientSecretRequest",
    "new_session_config",
    "parse_client_secret_request",
    "parse_session_request",
    "parse_session_update",
]

DEFAULT_TTL_SECONDS: Final = 600
MIN_TTL_SECONDS: Final = 10
MAX_TTL_SECONDS: Final = 7200


class ClientSecretRequest(BaseModel):
    """A parsed ``POST /v1/realtime/client_secrets`` body."""

    model_config = ConfigDict(frozen=True)

    ttl_seconds: int
    """Seconds from creation until the secret expires (``expires_after.seconds``)."""
    session: SessionConfig


# The client_secrets envelope is the gateway's own model: the SDK types it only as TypedDict request
# params (openai 3.60.0, openai/types/realtime/client_secret_create_params.py), which pydantic
# validates without reporting unknown keys. Bounds from that file's docstring ("between 10 and 7200").
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


def _session_type(data: dict[str, Any], prefix: str, current_type: SessionType | None) -> SessionType:
    """The ``type`` of a session object, which every session object must name."""
    type_param = f"{prefix}type"
    if "type" not in data:
        # Report unknown (e.g. beta-shaped) fields first, as upstream does, then the missing type.
        validate_session({**data, "type": current_type or "realtime"}, current_type or "realtime", prefix)
        raise missing_parameter(type_param)
    session_type = data["type"]
    if not isinstance(session_type, str):
        raise wrong_type(type_param, "string", session_type)
    if session_type not in SESSION_MODELS:
        raise unsupported_value(type_param, session_type[:80], list(SESSION_MODELS))
    if current_type is not None and session_type != current_type:
        raise SessionConfigError(
            "invalid_value",
            type_param,
            f"Invalid value: '{session_type}'. The session type cannot be changed from '{current_type}'.",
        )
    return "realtime" if session_type == "realtime" else "transcription"


def _validate(data: object, prefix: str, *, current_type: SessionType | None = None) -> SessionParams:
    """Validate one session object (``type`` required) against the SDK's models and the rules."""
    if not isinstance(data, dict):
        raise wrong_type(prefix.rstrip(".") or None, "object", data)
    return validate_session(data, _session_type(data, prefix, current_type), prefix)


def _build(base: dict[str, Any], params: SessionParams, prefix: str) -> SessionConfig:
    patch = params.model_dump(mode="json", exclude_unset=True)
    if isinstance(patch.get("output_modalities"), list):  # ["audio", "audio"] is ["audio"]
        patch["output_modalities"] = list(dict.fromkeys(patch["output_modalities"]))
    merged = fill_defaults(merge_update(base, patch))
    return SessionConfig(_validate(merged, prefix))


def new_session_config(
    session_type: SessionType = "realtime", *, model: str, instructions: str = ""
) -> SessionConfig:
    """The default configuration of a fresh session (WebSocket connect without a client secret)."""
    base = fill_defaults(default_session(session_type, model=model, instructions=instructions))
    return SessionConfig(_validate(base, ""))


def parse_session_request(
    body: object, *, default_model: str, default_instructions: str = "", param_prefix: str = ""
) -> SessionConfig:
    """A full session configuration from a bare session object (``type`` required).

    For ``POST /v1/realtime/calls/{id}/accept``, the ``session`` part of ``POST /v1/realtime/calls``
    and a GA-shaped ``POST /v1/realtime/sessions``. ``param_prefix`` (e.g. ``"session."``) is
    prepended to error params.
    """
    params = _validate(body, param_prefix)
    base = default_session(params.type, model=default_model, instructions=default_instructions)
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
        raise wrong_type(None, "object", body)
    try:
        envelope = _ClientSecretBody.model_validate(body)
    except ValidationError as exc:
        raise error_from_validation(exc, _ClientSecretBody, body, "") from None

    ttl = DEFAULT_TTL_SECONDS
    if "expires_after" in body:
        raw = envelope.expires_after
        if not isinstance(raw, dict):
            raise wrong_type("expires_after", "object", raw)
        try:
            ttl = _ExpiresAfter.model_validate(raw).seconds
        except ValidationError as exc:
            raise error_from_validation(exc, _ExpiresAfter, raw, "expires_after.") from None

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
    """Apply the ``session`` of a ``session.update`` event to ``current`` (``session_defaults``).

    ``session.type`` is required and must equal the current type. Errors name ``session.…`` params.
    """
    params = _validate(session_patch, "session.", current_type=current.type)
    return _build(current.to_dict(), params, "session.")
