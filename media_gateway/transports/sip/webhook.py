"""The `realtime.call.incoming` webhook: how the application learns of a SIP call, as OpenAI tells it.

The event's shape is OpenAI's (`{"object": "event", "id", "type", "created_at", "data": {"call_id",
"sip_headers": [{"name", "value"}], "sip_media_security"}}`) and it is signed the Standard Webhooks way:
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
keyed with the base64 part of a `whsec_…` secret, so an application verifies it with the official SDK's
`client.webhooks.unwrap(body, headers, secret=…)`. Authorization headers of the INVITE are never sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any, Final

import aiohttp

from media_gateway.observability.logging import get_logger

log = get_logger(__name__)

DELIVERY_TIMEOUT_SECONDS: Final = 5.0
# Headers that carry credentials: never sent to the application, stored redacted.
CREDENTIAL_HEADERS: Final = frozenset({"Authorization", "Proxy-Authorization"})
REDACTED: Final = "[redacted]"


def incoming_call_event(call_id: str, sip_headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "object": "event",
        "id": "evt_" + secrets.token_hex(16),
        "type": "realtime.call.incoming",
        "created_at": int(time.time()),
        "data": {
            "call_id": call_id,
            "sip_headers": [
                {"name": name, "value": value}
                for name, value in sip_headers
                if name not in CREDENTIAL_HEADERS
            ],
            "sip_media_security": "rtp",
        },
    }


def redacted_headers(sip_headers: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """The INVITE's headers as stored with the call: credential headers keep their name only."""
    return [
        {"name": name, "value": REDACTED if name in CREDENTIAL_HEADERS else value}
        for name, value in sip_headers
    ]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (any other string is used as it is, like the SDK does)."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def signature_headers(body: bytes, secret: str, *, webhook_id: str, timestamp: int) -> dict[str, str]:
    mac = hmac.new(signing_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


async def deliver(http: aiohttp.ClientSession, url: str, secret: str, event: dict[str, Any]) -> bool:
    """POST the event; True when the application answered 2xx in time."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = signature_headers(body, secret, webhook_id=event["id"], timestamp=event["created_at"])
    headers["Content-Type"] = "application/json"
    try:
        async with http.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
        ) as response:
            if 200 <= response.status < 300:
                return True
            log.warning("sip.webhook_refused", status=response.status, call_id=event["data"]["call_id"])
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("sip.webhook_failed", error=type(exc).__name__, call_id=event["data"]["call_id"])
    return False
