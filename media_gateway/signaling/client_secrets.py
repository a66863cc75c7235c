"""`POST /v1/realtime/client_secrets` and `POST /v1/realtime/sessions`: minting and hydration.

A backend holding a server key mints a short-lived `ek_…` secret bound to a session configuration;
the browser uses that secret and never sees the server key. Every mint is decided by the `mint` policy.
All validation and the policy decision happen before anything is written, so a rejected request leaves
no row behind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from media_gateway.app_keys import POLICY, REPOSITORIES, SETTINGS
from media_gateway.credentials import generate_client_secret, hash_credential, looks_like_client_secret
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.persistence.errors import RecordNotFound
from media_gateway.persistence.repositories import ApiKeyRecord, NewSession, SecretMint
from media_gateway.policy.engine import Decision, DecisionPoint, Limit, PolicyUnavailable
from media_gateway.realtime.session_config import (
    SessionConfig,
    SessionConfigError,
    parse_client_secret_request,
    session_object,
)
from media_gateway.signaling.auth import (
    INVALID_KEY_MESSAGE,
    AppBound,
    authenticate_api_key,
    authenticate_api_key_value,
    authenticate_client_secret_value,
    bearer_token,
)
from media_gateway.signaling.errors import ApiError, read_json_object

log = get_logger(__name__)

MINT_WINDOW = timedelta(minutes=1)


def key_summary(key: ApiKeyRecord) -> dict[str, Any]:
    return {"id": key.id, "scopes": list(key.scopes), "revoked": key.revoked_at is not None}


def config_error(exc: SessionConfigError) -> ApiError:
    return ApiError(400, exc.message, code=exc.code, param=exc.param)


async def decide(request: AppBound, point: DecisionPoint, policy_input: dict[str, Any]) -> Decision:
    """Ask the policy engine; answer 503 when it cannot decide, 429/403 when it denies."""
    try:
        decision = await request.app[POLICY].decide(point, policy_input)
    except PolicyUnavailable as exc:
        raise ApiError(
            503,
            "The policy service is unavailable; the request was refused. Try again shortly.",
            code="policy_unavailable",
            error_type="server_error",
        ) from exc
    if decision.allow:
        return decision
    reasons = "; ".join(decision.reasons) or "denied by policy"
    if decision.retry_after_seconds is not None:
        retry_after = max(1, math.ceil(decision.retry_after_seconds))
        raise ApiError(
            429,
            f"Rate limit reached: {reasons}.",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry_after)},
        )
    raise ApiError(403, f"Request denied by policy: {reasons}.", code="policy_denied")


def limit_reached(limits: Sequence[Limit]) -> ApiError:
    """The 429 for limits the gateway found reached when enforcing them (after an allowing decision:
    other requests took the last slots meanwhile), in the words of the policy's reasons."""
    reasons = "; ".join(sorted(limit.reason for limit in limits))
    retry_after = max(1, math.ceil(max(limit.retry_after_seconds for limit in limits)))
    return ApiError(
        429,
        f"Rate limit reached: {reasons}.",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(retry_after)},
    )


async def _mint(
    request: web.Request, key: ApiKeyRecord, config: SessionConfig, ttl_seconds: int
) -> tuple[str, datetime, str]:
    """Decide, then persist the session and the secret. Returns (secret value, expiry, session id).

    The decision sees the usage counted here; the write re-counts under the key's lock and enforces the
    decision's `concurrent_sessions` and `mints_per_minute` limits, so they hold across gateway processes.
    """
    repositories = request.app[REPOSITORIES]
    now = datetime.now(UTC)
    window_start = now - MINT_WINDOW
    usage = {
        "mints_last_minute": await repositories.client_secrets.count_created_since(key.id, window_start),
        "concurrent_sessions": await repositories.sessions.count_live(key.id),
    }
    policy_input = {
        "key": key_summary(key),
        "request": {"ttl_seconds": ttl_seconds, "session": config.policy_summary()},
        "usage": usage,
    }
    decision = await decide(request, "mint", policy_input)

    value = generate_client_secret()
    expires_at = (now + timedelta(seconds=ttl_seconds)).replace(microsecond=0)
    mint = SecretMint(
        api_key_id=key.id,
        session=NewSession(type=config.type, model=config.model, config=config.to_dict()),
        secret_hash=hash_credential(value),
        expires_at=expires_at,
        window_start=window_start,
        max_mints=decision.limits["mints_per_minute"].max,
        max_live_sessions=decision.limits["concurrent_sessions"].max,
    )
    try:
        result = await repositories.admission.mint(mint)
    except RecordNotFound:  # the key was deleted since it authenticated
        raise ApiError(401, INVALID_KEY_MESSAGE, code="invalid_api_key") from None
    if result.exceeded:
        raise limit_reached([decision.limits[name] for name in result.exceeded])
    session, secret = result.session, result.secret
    assert session is not None
    assert secret is not None
    bind_context(session_id=session.id)
    log.info(
        "client_secret.minted",
        secret_id=secret.id,
        api_key_id=key.id,
        ttl_seconds=ttl_seconds,
        decision_id=decision.decision_id,
    )
    return value, expires_at, session.id


async def create_client_secret(request: web.Request) -> web.Response:
    key = await authenticate_api_key(request)
    body = await read_json_object(request)
    try:
        parsed = parse_client_secret_request(body, default_model=request.app[SETTINGS].default_model)
    except SessionConfigError as exc:
        raise config_error(exc) from None
    value, expires_at, session_id = await _mint(request, key, parsed.session, parsed.ttl_seconds)
    expires = int(expires_at.timestamp())
    return web.json_response(
        {
            "value": value,
            "expires_at": expires,
            "session": session_object(parsed.session, session_id=session_id, expires_at=expires),
        }
    )


async def create_or_hydrate_session(request: web.Request) -> web.Response:
    """With an `ek_` secret: return the session it is bound to and mark it hydrated. With an API key:
    mint a secret for the session in the body and answer the way the legacy endpoint did."""
    token = bearer_token(request)
    if looks_like_client_secret(token):
        return await _hydrate(request, token)
    key = await authenticate_api_key_value(request, token)
    body = await read_json_object(request)
    try:
        parsed = parse_client_secret_request(
            {"session": body}, default_model=request.app[SETTINGS].default_model
        )
    except SessionConfigError as exc:
        raise config_error(exc) from None
    value, expires_at, session_id = await _mint(request, key, parsed.session, parsed.ttl_seconds)
    expires = int(expires_at.timestamp())
    session = session_object(parsed.session, session_id=session_id, expires_at=expires)
    session["client_secret"] = {"value": value, "expires_at": expires}
    return web.json_response(session)


async def _hydrate(request: web.Request, token: str) -> web.Response:
    principal = await authenticate_client_secret_value(request, token)
    body = await read_json_object(request)
    if body:
        raise ApiError(
            400,
            "A client secret is bound to the session it was minted with; send an empty body.",
            code="unknown_parameter",
            param=next(iter(body)),
        )
    repositories = request.app[REPOSITORIES]
    secret = principal.secret
    if secret.session_id is None:
        raise ApiError(404, "The session of this client secret no longer exists.", code="session_not_found")
    session = await repositories.sessions.get(secret.session_id)
    if session is None:
        raise ApiError(404, "The session of this client secret no longer exists.", code="session_not_found")
    if session.status == "created":
        session = await repositories.sessions.set_status(session.id, "hydrated") or session
    await repositories.client_secrets.record_use(secret.id)
    bind_context(session_id=session.id)
    log.info("session.hydrated", secret_id=secret.id, api_key_id=principal.key.id)
    config = SessionConfig.model_validate(session.config)
    return web.json_response(
        session_object(config, session_id=session.id, expires_at=int(secret.expires_at.timestamp()))
    )
