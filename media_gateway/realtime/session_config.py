"""GA Realtime session configuration: the public names, from the modules that implement them.

Public API::

    parse_client_secret_request(body, *, default_model) -> ClientSecretRequest
    parse_session_request(body, *, default_model, param_prefix="") -> SessionConfig
    parse_session_update(current, session_patch) -> SessionConfig
    new_session_config(session_type="realtime", *, model) -> SessionConfig
    session_object(config, *, session_id, expires_at=None) -> dict

All parsers raise :class:`SessionConfigError` (``code``/``param``/``message`` as OpenAI writes them;
``.to_error()`` gives the ``error`` object).

Where things live:

* ``session_rules``: validation against the ``openai`` SDK's session models, and the gateway's rules
  on top of them (nullability, required tags, bounds, tool names);
* ``session_validation``: OpenAI-style errors and the conversion of pydantic errors;
* ``session_defaults``: defaults, ``session.update`` merge semantics, restoring stored configs;
* ``session_effective``: :class:`SessionConfig` and its typed views;
* ``session_requests``: the parsers above; ``session_payload``: :func:`session_object`.
"""

from __future__ import annotations

from .session_defaults import DEFAULT_TRANSCRIPTION_MODEL, DEFAULT_VOICE
from .session_effective import SessionConfig
from .session_payload import session_object
from .session_requests import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    ClientSecretRequest,
    new_session_config,
    parse_client_secret_request,
    parse_session_request,
    parse_session_update,
)
from .session_validation import SessionConfigError

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
