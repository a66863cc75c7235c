"""Credentials: server API keys (`sk_…`) and ephemeral client secrets (`ek_…`).

Both are 256-bit random tokens. Only their SHA-256 digests are stored: a token this random needs no
slow password hash, and a digest lets the database look a credential up by an indexed column. The
final comparison is constant-time (`hmac.compare_digest`) so timing tells nothing about a near miss.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "sk_"
CLIENT_SECRET_PREFIX = "ek_"  # noqa: S105 - a prefix, not a secret
_TOKEN_BYTES = 32  # 256 bits
DISPLAY_PREFIX_LENGTH = 10  # "sk_" + 7 characters, enough to tell keys apart in a listing


def _token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


def generate_api_key() -> str:
    return _token(API_KEY_PREFIX)


def generate_client_secret() -> str:
    return _token(CLIENT_SECRET_PREFIX)


def hash_credential(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def display_prefix(value: str) -> str:
    return value[:DISPLAY_PREFIX_LENGTH]


def digests_match(stored_hash: str, presented: str) -> bool:
    return hmac.compare_digest(stored_hash.encode("ascii"), hash_credential(presented).encode("ascii"))


def looks_like_api_key(value: str) -> bool:
    return value.startswith(API_KEY_PREFIX) and 20 <= len(value) <= 128


def looks_like_client_secret(value: str) -> bool:
    return value.startswith(CLIENT_SECRET_PREFIX) and 20 <= len(value) <= 128
