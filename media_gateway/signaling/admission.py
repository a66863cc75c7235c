"""Admission of a realtime connection, shared by the WebSocket and WebRTC transports.

Authenticate the bearer (an `sk_` API key opens a new session; an `ek_` client secret opens the session
it was minted for), read the key's usage, ask the `connect` policy, then claim the session's live
connection in the database. Everything that can refuse happens before anything is upgraded, so a refusal
is a plain OpenAI-shaped HTTP error.

The claim (`AdmissionRepository.claim`) re-counts the key's live sessions under a short per-key lock and
enforces the policy's `concurrent_sessions` limit there, so the limit holds across every gateway process
on the database; the lock is held only for that count and write, never across the policy call, and
connects of other keys never wait for it. A session has one primary connection on all processes: the
claim refuses a session that is connected on any live instance (409 `session_in_use`). Since a client
secret opens exactly its one session, that also caps a secret at one live connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from media_gateway.app_keys import DRAIN, INSTANCE, REPOSITORIES, SETTINGS
from media_gateway.credentials import looks_like_client_secret
from media_gateway.persistence.errors import RecordNotFound
from media_gateway.persistence.repositories import ApiKeyRecord, NewSession, SessionClaim
from media_gateway.realtime.session_config import (
    SessionConfig,
    SessionConfigError,
    new_session_config,
    parse_session_request,
    parse_session_update,
)
from media_gateway.signaling.auth import (
    INVALID_KEY_MESSAGE,
    AppBound,
    authenticate_api_key_value,
    authenticate_client_secret_value,
)
from media_gateway.signaling.client_secrets import decide, key_summary, limit_reached
from media_gateway.signaling.errors import ApiError
from media_gateway.signaling.instance import GatewayInstance

Transport = Literal["websocket", "webrtc", "twilio", "sip"]

SESSION_NOT_FOUND = "The session of this client secret no longer exists."
SESSION_IN_USE = "This session already has a live connection."


@dataclass
class Admission:
    """An admitted connection. Call `release()` when it ends (any number of times).

    `ovos` is what the connect policy decided about the key's OVOS sessions (`Decision.ovos`: timezone,
    pipeline, system_unit, ...); the transport hands it to the session as `Principal.ovos`."""

    key: ApiKeyRecord
    session_id: str
    config: SessionConfig
    expires_at: int | None
    instance: GatewayInstance = field(repr=False)
    ovos: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    released: bool = False

    async def release(self) -> None:
        """Give the session's slot back. Shielded: a cancelled handler still records the session closed
        (otherwise it would keep counting against its key's limit while this instance lives)."""
        if self.released:
            return
        self.released = True
        with contextlib.suppress(Exception):
            await asyncio.shield(self.instance.release(self.session_id))


def _config_error(exc: SessionConfigError) -> ApiError:
    return ApiError(400, exc.message, code=exc.code, param=exc.param)


async def admit(
    request: AppBound,
    credential: str,
    *,
    transport: Transport,
    session_body: Any = None,
    intent: str | None = None,
    model: str | None = None,
    call: Mapping[str, str] | None = None,
) -> Admission:
    """Admit one connection; raise `ApiError` (401/403/404/409/429/503) to refuse it.

    `session_body` (WebRTC's optional `session` part) configures a new session opened with an API key,
    or updates the session a client secret is bound to. `call` (phone transports: `from`, `to`,
    `source`) is what the connect policy knows of a phone call.
    """
    settings = request.app[SETTINGS]
    repositories = request.app[REPOSITORIES]
    instance = request.app[INSTANCE]
    drain = request.app.get(DRAIN)
    if drain is not None and drain.draining:
        raise ApiError(
            503, "The gateway is shutting down; try again.", code="shutting_down", error_type="server_error"
        )
    secret_id: str | None = None
    if looks_like_client_secret(credential):
        principal = await authenticate_client_secret_value(request, credential)
        key, secret = principal.key, principal.secret
        session = await repositories.sessions.get(secret.session_id) if secret.session_id else None
        if session is None:
            raise ApiError(404, SESSION_NOT_FOUND, code="session_not_found")
        config = SessionConfig.model_validate(session.config)
        if session_body is not None:
            try:
                config = parse_session_update(config, session_body)
            except SessionConfigError as exc:
                raise _config_error(exc) from None
        session_id: str | None = session.id
        secret_id = secret.id
        expires_at: int | None = int(secret.expires_at.timestamp())
    else:
        key = await authenticate_api_key_value(request, credential)
        chosen_model = model or settings.default_model
        try:
            if session_body is not None:
                config = parse_session_request(
                    session_body, default_model=chosen_model, param_prefix="session."
                )
            else:
                if intent == "transcription":
                    config = new_session_config("transcription", model=chosen_model)
                else:
                    config = new_session_config("realtime", model=chosen_model)
        except SessionConfigError as exc:
            raise _config_error(exc) from None
        session_id, expires_at = None, None

    usage = await repositories.admission.usage(key.id, session_id)
    if usage.session_live:
        # A session has one primary connection; others attach as sideband (?call_id=).
        raise ApiError(409, SESSION_IN_USE, code="session_in_use")
    secret_view = None
    if secret_id is not None:
        secret_view = {
            "id": secret_id,
            "expired": False,
            "revoked": False,
            "live_connections": 0,  # its one session has no live connection (checked just above)
            "max_live_connections": settings.max_connections_per_secret,
        }
    policy_input: dict[str, Any] = {
        "key": key_summary(key),
        "secret": secret_view,
        "transport": transport,
        "usage": {"concurrent_sessions": usage.live_sessions},
    }
    if call is not None:
        policy_input["call"] = dict(call)
    decision = await decide(request, "connect", policy_input)
    limit = decision.limits["concurrent_sessions"]
    opens_new = session_id is None
    updates_config = not opens_new and session_body is not None  # WebRTC's `session` part
    claim = SessionClaim(
        api_key_id=key.id,
        instance_id=instance.id,
        max_live_sessions=limit.max,
        session_id=session_id,
        new_session=NewSession(config.type, config.model, config.to_dict()) if opens_new else None,
        config=config.to_dict() if updates_config else None,
        model=config.model if updates_config else None,
        client_secret_id=secret_id,
    )
    try:
        result = await repositories.admission.claim(claim)
    except RecordNotFound as exc:
        if exc.entity == "api key":  # deleted since it authenticated
            raise ApiError(401, INVALID_KEY_MESSAGE, code="invalid_api_key") from None
        raise ApiError(404, SESSION_NOT_FOUND, code="session_not_found") from None
    if result.outcome == "session_in_use":
        raise ApiError(409, SESSION_IN_USE, code="session_in_use")
    if result.outcome == "limit_reached":
        raise limit_reached([limit])
    assert result.session_id is not None
    return Admission(
        key=key,
        session_id=result.session_id,
        config=config,
        expires_at=expires_at,
        instance=instance,
        ovos=decision.ovos,
    )
