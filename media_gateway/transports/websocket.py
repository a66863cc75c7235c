"""The WebSocket transport: `GET /v1/realtime`, the way the official clients connect.

Before the upgrade: authenticate (Authorization bearer, or the browser subprotocol
`openai-insecure-api-key.<key>`), resolve the session, and ask the `connect` policy; failures answer
the OpenAI error JSON with 401/403/404/429, which clients do not retry. After the upgrade the connection
carries text frames of client events to the engine and server events back. One writer task owns the
socket's send side, so events from the engine's tasks never interleave mid-frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from media_gateway.app_keys import ENGINE, LEASES, LIVE_CONNECTIONS, REPOSITORIES, SETTINGS
from media_gateway.credentials import looks_like_client_secret
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.persistence.repositories import ApiKeyRecord
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.session import Principal, RealtimeSession
from media_gateway.realtime.session_config import SessionConfig, new_session_config
from media_gateway.signaling.auth import (
    MISSING_KEY_MESSAGE,
    authenticate_api_key_value,
    authenticate_client_secret_value,
)
from media_gateway.signaling.client_secrets import decide, key_summary
from media_gateway.signaling.errors import ApiError
from media_gateway.signaling.leases import Lease

log = get_logger(__name__)

SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
OUTBOUND_QUEUE_LIMIT = 4096
CLOSE_POLICY = 4003  # 4xxx: not retried by clients


@dataclass
class _Admission:
    key: ApiKeyRecord
    session_id: str
    config: SessionConfig
    expires_at: int | None
    lease: Lease | None


def _credential(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        protocol = protocol.strip()
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return protocol[len(KEY_SUBPROTOCOL_PREFIX) :]
    raise ApiError(401, MISSING_KEY_MESSAGE, code="missing_api_key")


async def _admit(request: web.Request) -> _Admission:
    settings = request.app[SETTINGS]
    repositories = request.app[REPOSITORIES]
    if "call_id" in request.query:
        raise ApiError(
            404, f"Call '{request.query['call_id'][:64]}' not found.", code="call_not_found", param="call_id"
        )
    credential = _credential(request)
    lease: Lease | None = None
    secret_view: dict[str, Any] | None = None
    if looks_like_client_secret(credential):
        principal = await authenticate_client_secret_value(request, credential)
        key, secret = principal.key, principal.secret
        if (
            secret.session_id is None
            or (session := await repositories.sessions.get(secret.session_id)) is None
        ):
            raise ApiError(
                404, "The session of this client secret no longer exists.", code="session_not_found"
            )
        leases = request.app[LEASES]
        secret_view = {
            "id": secret.id,
            "expired": False,
            "revoked": secret.revoked_at is not None,
            "live_connections": leases.live(secret.id),
            "max_live_connections": leases.max_per_secret,
        }
        config = SessionConfig.model_validate(session.config)
        session_id, expires_at = session.id, int(secret.expires_at.timestamp())
    else:
        key = await authenticate_api_key_value(request, credential)
        intent = request.query.get("intent")
        model = request.query.get("model") or settings.default_model
        config = new_session_config("transcription" if intent == "transcription" else "realtime", model=model)
        session_id, expires_at = "", None
    usage = {"concurrent_sessions": await repositories.sessions.count_active(key.id)}
    await decide(
        request,
        "connect",
        {"key": key_summary(key), "secret": secret_view, "transport": "websocket", "usage": usage},
    )
    if secret_view is not None:
        lease = request.app[LEASES].acquire(secret_view["id"])
        if lease is None:
            raise ApiError(409, "This client secret already has a live connection.", code="secret_in_use")
        await repositories.client_secrets.record_use(secret_view["id"])
        await repositories.sessions.set_status(session_id, "active")
    else:
        record = await repositories.sessions.create(
            api_key_id=key.id, type=config.type, model=config.model, config=config.to_dict(), status="active"
        )
        session_id = record.id
    return _Admission(key=key, session_id=session_id, config=config, expires_at=expires_at, lease=lease)


class WebSocketOutput:
    """The engine's view of the socket: a bounded outbound queue drained by one writer task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(OUTBOUND_QUEUE_LIMIT)
        self._writer = asyncio.create_task(self._write(), name="ws-writer")
        self.sent = 0

    async def send_event(self, event: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        await self._queue.put(json.dumps(event, separators=(",", ":")))

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            try:
                await self._ws.send_str(frame)
                self.sent += 1
            except (ConnectionError, RuntimeError):
                return  # the peer went away; the reader sees the close

    async def close(self, code: int, reason: str) -> None:
        await self.flush()
        await self._ws.close(code=code, message=reason.encode()[:120])

    async def flush(self) -> None:
        if not self._writer.done():
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def stop(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


async def realtime_websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not request.headers.get("Upgrade", "").lower() == "websocket":
        raise ApiError(
            400, "This endpoint speaks WebSocket: send an Upgrade request.", code="websocket_required"
        )
    admission = await _admit(request)
    bind_context(session_id=admission.session_id)
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    # Select `realtime` when subprotocols are offered: browsers and `ws` fail without a selection, and
    # the key entry must never be echoed.
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,) if SUBPROTOCOL in offered else (),
        max_msg_size=settings.ws_max_message_bytes,
        heartbeat=30.0,
        autoping=True,
    )
    try:
        await ws.prepare(request)
    except Exception:
        if admission.lease is not None:
            admission.lease.release()
        raise
    request.app[LIVE_CONNECTIONS].add(ws)
    output = WebSocketOutput(ws)
    engine = request.app[ENGINE]
    session = RealtimeSession(
        session_id=admission.session_id,
        config=admission.config,
        output=output,
        services=engine,
        principal=Principal(key=key_summary(admission.key)),
        expires_at=admission.expires_at,
    )
    log.info("realtime.connected", transport="websocket", api_key_id=admission.key.id)
    try:
        await session.start()
        await _read_loop(ws, session, output, idle_timeout=settings.session_idle_timeout_seconds)
    finally:
        await session.close()
        await output.flush()
        await output.stop()
        if not ws.closed:
            await ws.close()
        if admission.lease is not None:
            admission.lease.release()
        with contextlib.suppress(Exception):
            await request.app[REPOSITORIES].sessions.set_status(admission.session_id, "closed")
        log.info("realtime.disconnected", transport="websocket", close_code=ws.close_code)
    return ws


async def _read_loop(
    ws: web.WebSocketResponse, session: RealtimeSession, output: WebSocketOutput, *, idle_timeout: float
) -> None:
    while True:
        try:
            message = await ws.receive(timeout=idle_timeout)
        except TimeoutError:
            await output.send_event(
                ev.error(
                    RealtimeError(
                        f"The session was idle for {idle_timeout:g} seconds and has been closed.",
                        code="idle_timeout",
                    )
                )
            )
            await output.close(WSCloseCode.OK, "idle timeout")
            return
        if message.type == WSMsgType.TEXT:
            await session.handle_text(message.data)
        elif message.type == WSMsgType.BINARY:
            await output.send_event(
                ev.error(
                    RealtimeError(
                        "Binary frames are not supported: send client events as JSON text frames.",
                        code="invalid_frame_type",
                    )
                )
            )
        elif message.type == WSMsgType.ERROR:
            # aiohttp reports a frame over max_msg_size (and protocol errors) here, then closes.
            exc = ws.exception()
            too_big = "message size" in str(exc).lower() or "too big" in str(exc).lower()
            await output.send_event(
                ev.error(
                    RealtimeError(
                        "The frame is larger than this server accepts."
                        if too_big
                        else "WebSocket protocol error.",
                        code="message_too_large" if too_big else "protocol_error",
                    )
                )
            )
            await output.close(
                WSCloseCode.MESSAGE_TOO_BIG if too_big else WSCloseCode.PROTOCOL_ERROR,
                "frame too large" if too_big else "protocol error",
            )
            return
        elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/realtime", realtime_websocket)
