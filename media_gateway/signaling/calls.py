"""WebRTC signaling: `POST /v1/realtime/calls` (SDP offer → answer), hangup, and the legacy SDP POST.

The offer comes as raw `application/sdp`, or as `multipart/form-data` with an `sdp` part and an optional
`session` JSON part (the Python SDK sends raw SDP when only `sdp` is given). The answer is complete
(non-trickle): **201**, `Content-Type: application/sdp`, `Location: /v1/realtime/calls/rtc_…`.

Everything that can refuse (body, SDP, auth, policy, capacity) is checked before a peer connection is
built, and every refusal is the OpenAI error JSON. Browsers call cross-origin, so these routes answer the
CORS preflight and expose `Location` (not a CORS-safelisted header: without it AGJS cannot read the call id);
errors carry the CORS headers too, so pages can show `error.message`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from media_gateway.app_keys import CALLS, ENGINE, METRICS, REPOSITORIES, SESSIONS, SETTINGS
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.realtime.session import Principal, RealtimeSession
from media_gateway.signaling.admission import Admission, admit
from media_gateway.signaling.auth import (
    bearer_token,
)
from media_gateway.signaling.client_secrets import key_summary
from media_gateway.signaling.errors import ApiError
from media_gateway.transports.webrtc.offer import MAX_SDP_BYTES, OfferError, parse_offer
from media_gateway.transports.webrtc.peer import WebRtcCall

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_SESSION_PART_BYTES = 256 * 1024
CORS_ALLOWED_HEADERS = "authorization, content-type, x-openai-agents-sdk, openai-beta, accept"
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location"}


def with_cors(handler: Handler) -> Handler:
    """Answer with the CORS headers, errors included (the error middleware would drop them)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[SETTINGS].max_body_bytes
            response = ApiError(
                413, f"Request body too large; the limit is {limit} bytes.", code="request_too_large"
            ).response()
        except Exception:
            # A failure of the gateway, not of the request: logged with its trace, answered without it.
            log.exception("webrtc.request_failed", path=request.path)
            response = ApiError(
                500,
                "The server had an error while processing your request.",
                error_type="server_error",
                code="internal_error",
            ).response()
        response.headers.update(CORS_HEADERS)
        return response

    return wrapped


async def preflight(request: web.Request) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=204,
        headers={
            **CORS_HEADERS,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": requested[:1024] or CORS_ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )


# --- reading the offer ------------------------------------------------------------------------------------


async def _read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"The '{name}' part is larger than {limit} bytes.", code="request_too_large")
    return bytes(data)


async def _read_multipart(request: web.Request) -> tuple[bytes | None, bytes | None]:
    sdp: bytes | None = None
    session: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ValueError("nested multipart")
            if part.name == "sdp":
                sdp = await _read_part(part, MAX_SDP_BYTES, "sdp")
            elif part.name == "session":
                session = await _read_part(part, MAX_SESSION_PART_BYTES, "session")
            else:
                await part.release()
    except (ApiError, web.HTTPException):
        raise
    except Exception as exc:  # aiohttp raises ValueError, AssertionError, RuntimeError on bad multipart
        raise ApiError(
            400, "The multipart/form-data body could not be parsed.", code="invalid_multipart"
        ) from exc
    return sdp, session


def _session_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(
            400, "The 'session' part is not valid JSON.", code="invalid_json", param="session"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The 'session' part must be a JSON object.", code="invalid_type", param="session")
    return body


async def read_offer(request: web.Request) -> tuple[bytes, dict[str, Any] | None]:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    content_type = request.content_type
    if content_type == "application/sdp":
        return await request.read(), None
    if content_type == "multipart/form-data":
        sdp, session = await _read_multipart(request)
        if sdp is None:
            raise ApiError(
                400, "The multipart body has no 'sdp' part.", code="missing_required_parameter", param="sdp"
            )
        return sdp, _session_json(session) if session is not None else None
    raise ApiError(
        415,
        f"Unsupported content type {content_type!r}; send application/sdp, or multipart/form-data with an "
        "'sdp' part.",
        code="unsupported_content_type",
    )


# --- the call ---------------------------------------------------------------------------------------------


async def create_call(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    settings = app[SETTINGS]
    credential = bearer_token(request)
    raw, session_body = await read_offer(request)
    try:
        offer = parse_offer(raw)
    except OfferError as exc:
        status = 413 if exc.code == "sdp_too_large" else 400
        raise ApiError(status, exc.message, code=exc.code, param="sdp") from None
    calls = app[CALLS]
    if calls.closing:
        raise _shutting_down()
    if len(calls) >= settings.webrtc_max_calls:
        raise ApiError(
            429, "This gateway is at its WebRTC call capacity; try again later.", code="too_many_calls"
        )
    admission = await admit(
        request, credential, transport="webrtc", session_body=session_body, model=request.query.get("model")
    )
    bind_context(session_id=admission.session_id)
    if len(calls) >= settings.webrtc_max_calls:
        # Checked again after admission's awaits: concurrent offers may have filled the last places.
        # From here to reserve() there is no await, so the check and the reservation are one step.
        await admission.release()
        raise ApiError(
            429, "This gateway is at its WebRTC call capacity; try again later.", code="too_many_calls"
        )
    call = WebRtcCall(settings=settings, metrics=app[METRICS].webrtc, session_id=admission.session_id)
    try:
        calls.reserve(call)
        answer = await call.answer(offer, settings.webrtc_gather_timeout_seconds)
        record = await app[REPOSITORIES].calls.create(
            admission.session_id,
            {"mdns_candidates_stripped": offer.mdns_candidates_stripped, "model": admission.config.model},
            status="connecting",
        )
        if call.closed:  # shutdown closed it while it was being answered: nothing may be registered
            raise _shutting_down()
    except BaseException as exc:
        shutting_down = call.closed or calls.closing
        await call.close("answer_failed", "failed")
        calls.remove(call)
        await admission.release()
        if isinstance(exc, ApiError):
            raise
        if isinstance(exc, OfferError):  # the client's offer: the only 400 this step can give
            raise ApiError(400, exc.message, code=exc.code, param="sdp") from None
        if shutting_down and isinstance(exc, Exception):
            raise _shutting_down() from None
        if isinstance(exc, TimeoutError):
            raise ApiError(
                503, "ICE gathering did not finish in time.", code="ice_gathering_timeout"
            ) from None
        raise
    # No await from the check above to the registration below: shutdown cannot slip in between.
    session = RealtimeSession(
        session_id=admission.session_id,
        config=admission.config,
        output=call.output,
        services=app[ENGINE],
        principal=Principal(key=key_summary(admission.key), ovos=admission.ovos),
        expires_at=admission.expires_at,
        audio_sink=call.track,
    )
    call.bind(session, record.id)
    app[SESSIONS].add(session)
    calls.add(call)
    call.on_closed(_finalizer(app, admission, session))
    call.spawn(_persist_connected(app, call), "persist-connected")
    elapsed = time.perf_counter() - started
    app[METRICS].webrtc.answer_seconds.observe(elapsed)
    log.info("webrtc.call_answered", call_id=call.id, answer_ms=round(elapsed * 1000, 1))
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call.id}"},
    )


def _shutting_down() -> ApiError:
    return ApiError(
        503, "The gateway is shutting down; try again.", code="shutting_down", error_type="server_error"
    )


async def _persist_connected(app: web.Application, call: WebRtcCall) -> None:
    await call.connected.wait()
    try:
        await app[REPOSITORIES].calls.set_status(call.id, "connected")
    except Exception:  # a status write that fails must not end the call
        log.exception("webrtc.call_status_failed", call_id=call.id)


def _finalizer(
    app: web.Application, admission: Admission, session: RealtimeSession
) -> Callable[[WebRtcCall], Awaitable[None]]:
    async def finalize(call: WebRtcCall) -> None:
        # Record the outcome before the call leaves the registries, so whoever sees it gone also sees
        # its final status.
        try:
            await app[REPOSITORIES].calls.set_status(call.id, call.status)
        finally:
            await admission.release()  # records the session closed
            app[SESSIONS].remove(session)
            app[CALLS].remove(call)
        log.info("webrtc.call_closed", call_id=call.id, reason=call.close_reason, status=call.status)

    return finalize


def add_routes(app: web.Application) -> None:
    for path in ("/v1/realtime/calls", "/v1/realtime"):
        app.router.add_post(path, with_cors(create_call))
        app.router.add_route("OPTIONS", path, preflight)
