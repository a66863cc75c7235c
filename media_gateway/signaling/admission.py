"""Admission of a realtime connection, shared by the WebSocket and WebRTC transports.

Authenticate the bearer (an `sk_` API key opens a new session; an `ek_` client secret opens the session
it was minted for), ask the `connect` policy, take the secret's live-connection lease, and record the
session as active. Everything that can refuse happens before anything is written or upgraded, so a
refusal is a plain OpenAI-shaped HTTP error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from media_gateway.app_keys import LEASES, REPOSITORIES, SESSIONS, SETTINGS
from media_gateway.credentials import looks_like_client_secret
from media_gateway.persistence.repositories import ApiKeyRecord
from media_gateway.realtime.session_config import (
    SessionConfig,
    SessionConfigError,
    new_session_config,
    parse_session_request,
    parse_session_update,
)
from media_gateway.signaling.auth import authenticate_api_key_value, authenticate_client_secret_value
from media_gateway.signaling.client_secrets import decide, key_summary
from media_gateway.signaling.errors import ApiError
from media_gateway.signaling.leases import Lease

Transport = Literal["websocket", "webrtc"]


@dataclass
class Admission:
    key: ApiKeyRecord
    session_id: str
    config: SessionConfig
    expires_at: int | None
    lease: Lease | None

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


def _config_error(exc: SessionConfigError) -> ApiError:
    return ApiError(400, exc.message, code=exc.code, param=exc.param)


async def admit(
    request: web.Request,
    credential: str,
    *,
    transport: Transport,
    session_body: Any = None,
    intent: str | None = None,
    model: str | None = None,
) -> Admission:
    """Admit one connection; raise `ApiError` (401/403/404/429) to refuse it.

    `session_body` (WebRTC's optional `session` part) configures a new session opened with an API key,
    or updates the session a client secret is bound to.
    """
    settings = request.app[SETTINGS]
    repositories = request.app[REPOSITORIES]
    leases = request.app[LEASES]
    secret_view: dict[str, Any] | None = None
    if looks_like_client_secret(credential):
        principal = await authenticate_client_secret_value(request, credential)
        key, secret = principal.key, principal.secret
        session = await repositories.sessions.get(secret.session_id) if secret.session_id else None
        if session is None:
            raise ApiError(
                404, "The session of this client secret no longer exists.", code="session_not_found"
            )
        secret_view = {
            "id": secret.id,
            "expired": False,
            "revoked": secret.revoked_at is not None,
            "live_connections": leases.live(secret.id),
            "max_live_connections": leases.max_per_secret,
        }
        config = SessionConfig.model_validate(session.config)
        if session_body is not None:
            try:
                config = parse_session_update(config, session_body)
            except SessionConfigError as exc:
                raise _config_error(exc) from None
        session_id: str | None = session.id
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

    async with leases.admission_lock(key.id):
        if session_id is not None and request.app[SESSIONS].get(session_id) is not None:
            # A session has one primary connection; others attach as sideband (?call_id=).
            raise ApiError(409, "This session already has a live connection.", code="session_in_use")
        usage = {"concurrent_sessions": await repositories.sessions.count_active(key.id)}
        await decide(
            request,
            "connect",
            {"key": key_summary(key), "secret": secret_view, "transport": transport, "usage": usage},
        )
        lease: Lease | None = None
        if secret_view is not None:
            lease = leases.acquire(secret_view["id"])
            if lease is None:  # lost a race with another connection of the same secret since the decision
                raise ApiError(409, "This client secret already has a live connection.", code="secret_in_use")
        try:
            if secret_view is not None:
                await repositories.client_secrets.record_use(secret_view["id"])
            if session_id is None:
                record = await repositories.sessions.create(
                    api_key_id=key.id,
                    type=config.type,
                    model=config.model,
                    config=config.to_dict(),
                    status="active",
                )
                session_id = record.id
            else:
                await repositories.sessions.set_status(session_id, "active")
                if session_body is not None:
                    await repositories.sessions.update_config(
                        session_id, config.to_dict(), model=config.model
                    )
        except BaseException:
            if lease is not None:
                lease.release()
            raise
    return Admission(key=key, session_id=session_id, config=config, expires_at=expires_at, lease=lease)
