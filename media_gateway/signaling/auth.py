"""Bearer authentication for the REST endpoints: server API keys (`sk_…`) and client secrets (`ek_…`).

Both kinds are looked up by the SHA-256 digest of what the client presented, then compared in constant
time. Error messages never echo the presented value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web

from media_gateway.app_keys import REPOSITORIES
from media_gateway.credentials import (
    digests_match,
    hash_credential,
    looks_like_api_key,
    looks_like_client_secret,
)
from media_gateway.persistence.repositories import ApiKeyRecord, ClientSecretRecord
from media_gateway.signaling.errors import ApiError

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
INVALID_KEY_MESSAGE = "Incorrect API key provided. You can create API keys with `media-gateway keys create`."
INVALID_SECRET_MESSAGE = "Invalid client secret provided."  # noqa: S105
EXPIRED_SECRET_MESSAGE = "This client secret has expired; mint a new one."  # noqa: S105


class AppBound(Protocol):
    """What authentication and admission need of a request: the application (a `web.Request` is one; a
    SIP call answered by the dispatch rule, which has no HTTP request, passes the application itself)."""

    @property
    def app(self) -> web.Application: ...


@dataclass(frozen=True)
class SecretPrincipal:
    """A client secret that authenticated, and the API key that minted it."""

    secret: ClientSecretRecord
    key: ApiKeyRecord


def bearer_from_header(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_token(request: web.Request) -> str:
    token = bearer_from_header(request)
    if token is None:
        raise ApiError(401, MISSING_KEY_MESSAGE, code="missing_api_key")
    return token


async def authenticate_api_key_value(request: AppBound, value: str) -> ApiKeyRecord:
    if not looks_like_api_key(value):
        raise ApiError(401, INVALID_KEY_MESSAGE, code="invalid_api_key")
    keys = request.app[REPOSITORIES].api_keys
    record = await keys.get_by_hash(hash_credential(value))
    if record is None or not digests_match(record.key_hash, value):
        raise ApiError(401, INVALID_KEY_MESSAGE, code="invalid_api_key")
    if record.revoked_at is not None:
        raise ApiError(401, "This API key has been revoked.", code="invalid_api_key")
    await keys.touch(record.id)
    return record


async def authenticate_api_key(request: web.Request) -> ApiKeyRecord:
    return await authenticate_api_key_value(request, bearer_token(request))


async def authenticate_client_secret_value(
    request: AppBound, value: str, *, now: datetime | None = None
) -> SecretPrincipal:
    if not looks_like_client_secret(value):
        raise ApiError(401, INVALID_SECRET_MESSAGE, code="invalid_api_key")
    repositories = request.app[REPOSITORIES]
    secret = await repositories.client_secrets.get_by_hash(hash_credential(value))
    if secret is None or not digests_match(secret.secret_hash, value):
        raise ApiError(401, INVALID_SECRET_MESSAGE, code="invalid_api_key")
    key = await repositories.api_keys.get(secret.api_key_id)
    if key is None or key.revoked_at is not None or secret.revoked_at is not None:
        raise ApiError(401, "This client secret has been revoked.", code="invalid_api_key")
    if secret.expires_at <= (now or datetime.now(UTC)):
        raise ApiError(401, EXPIRED_SECRET_MESSAGE, code="session_expired")
    return SecretPrincipal(secret=secret, key=key)
