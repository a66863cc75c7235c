"""Call control, OpenAI's shape: `POST /v1/realtime/calls/{call_id}/accept | reject | refer | hangup`.

`accept`, `reject` and `refer` act on SIP calls (announced by the `realtime.call.incoming` webhook); `hangup`
ends any live call (WebRTC or SIP). While a SIP call rings, any valid API key of the gateway may decide it
(the webhook went to the operator's application; the connect policy still decides the accepted session);
once it is answered only the key owning its session may refer or hang it up. All answer 200 with an empty
body, or an OpenAI-shaped error: 404 `call_not_found`, 409 `call_not_ringing`, 400 for a bad body.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from media_gateway.app_keys import CALLS, REPOSITORIES, SIP
from media_gateway.credentials import looks_like_client_secret
from media_gateway.persistence.records import CallRecord
from media_gateway.signaling.auth import (
    authenticate_api_key_value,
    authenticate_client_secret_value,
    bearer_token,
)
from media_gateway.signaling.calls import preflight, with_cors
from media_gateway.signaling.errors import ApiError, read_json_object
from media_gateway.transports.sip.calls import SipCall

# SIP statuses an application may reject with (RFC 3261 §21.4-§21.6: client, server and global failures).
REJECT_STATUSES: Final = range(400, 700)
_TARGET: Final = re.compile(r"^(sips?:[^\s<>]+|tel:\+?[0-9*#().\-]+)$", re.IGNORECASE)


def _not_found(call_id: str) -> ApiError:
    return ApiError(404, f"Call '{call_id[:64]}' not found.", code="call_not_found", param="call_id")


async def _owned_record(request: web.Request, call_id: str) -> CallRecord:
    """The call's row, if the bearer may control it; 404 otherwise (never telling whose it is)."""
    credential = bearer_token(request)
    repositories = request.app[REPOSITORIES]
    record = await repositories.calls.get(call_id)
    session = await repositories.sessions.get(record.session_id) if record and record.session_id else None
    if looks_like_client_secret(credential):
        principal = await authenticate_client_secret_value(request, credential)
        owned = session is not None and principal.secret.session_id == session.id
    else:
        key = await authenticate_api_key_value(request, credential)
        # A ringing SIP call has no session yet: the gateway's keys decide it.
        owned = record is not None and (session.api_key_id == key.id if session is not None else True)
    if record is None or not owned:
        raise _not_found(call_id)
    return record


def _sip_call(request: web.Request, call_id: str) -> SipCall:
    gateway = request.app.get(SIP)
    call = gateway.get(call_id) if gateway is not None else None
    if call is None:
        raise ApiError(
            404, f"Call '{call_id[:64]}' is not a live SIP call.", code="call_not_found", param="call_id"
        )
    return call


async def accept(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    body = await read_json_object(request)
    await _owned_record(request, call_id)
    call = _sip_call(request, call_id)
    gateway = request.app[SIP]
    await gateway.accept(call, request, bearer_token(request), body)
    return web.Response(status=200)


async def reject(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    body = await read_json_object(request)
    status = body.get("status_code", 603)
    if isinstance(status, bool) or not isinstance(status, int) or status not in REJECT_STATUSES:
        raise ApiError(
            400,
            "status_code must be a SIP failure status, 400 to 699.",
            code="invalid_value",
            param="status_code",
        )
    await _owned_record(request, call_id)
    call = _sip_call(request, call_id)
    if not call.reject(status):
        raise ApiError(409, f"Call '{call_id[:64]}' is no longer ringing.", code="call_not_ringing")
    return web.Response(status=200)


async def refer(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    body = await read_json_object(request)
    target = body.get("target_uri")
    if not isinstance(target, str) or not _TARGET.match(target) or len(target) > 512:
        raise ApiError(
            400,
            "target_uri must be a sip:, sips: or tel: URI (e.g. tel:+14155550123).",
            code="invalid_value",
            param="target_uri",
        )
    await _owned_record(request, call_id)
    call = _sip_call(request, call_id)
    if call.state != "answered":
        raise ApiError(
            409, f"Call '{call_id[:64]}' is not answered; accept it first.", code="call_not_answered"
        )
    try:
        status = await call.refer(target)
    except TimeoutError:
        raise ApiError(504, "The caller did not answer the REFER.", code="refer_timeout") from None
    if not 200 <= status < 300:
        raise ApiError(409, f"The caller refused the transfer (SIP {status}).", code="refer_refused")
    return web.Response(status=200)


async def hangup(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    await _owned_record(request, call_id)
    webrtc = request.app[CALLS].get(call_id)
    if webrtc is not None:
        await webrtc.close("hangup")
    gateway = request.app.get(SIP)
    sip_call = gateway.get(call_id) if gateway is not None else None
    if sip_call is not None:
        await sip_call.hang_up("hangup")
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    for name, handler in (("accept", accept), ("reject", reject), ("refer", refer), ("hangup", hangup)):
        path = f"/v1/realtime/calls/{{call_id}}/{name}"
        app.router.add_post(path, with_cors(handler))
        app.router.add_route("OPTIONS", path, preflight)
