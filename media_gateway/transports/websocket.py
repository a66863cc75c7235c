"""The WebSocket transport: `GET /v1/realtime`, the way the official clients connect.

Before the upgrade: authenticate (Authorization bearer, or the browser subprotocol
`openai-insecure-api-key.<key>`) and admit the connection (`signaling.admission`); refusals answer the
OpenAI error JSON with 401/403/404/429, which clients do not retry. After the upgrade the connection
carries text frames of client events to the engine and server events back. One writer task owns the
socket's send side, so events from the engine's tasks never interleave mid-frame.

`?call_id=rtc_…` attaches a sideband connection to a live WebRTC call's session: it sees the same server
events and may send client events, but the call's own lifetime does not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from media_gateway.app_keys import ENGINE, LIVE_CONNECTIONS, REPOSITORIES, SESSIONS, SETTINGS
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.session import Principal, RealtimeSession
from media_gateway.signaling.admission import admit
from media_gateway.signaling.auth import MISSING_KEY_MESSAGE, authenticate_api_key_value, bearer_from_header
from media_gateway.signaling.client_secrets import key_summary
from media_gateway.signaling.errors import ApiError

log = get_logger(__name__)

SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
OUTBOUND_QUEUE_LIMIT = 4096
OUTBOUND_BYTES_LIMIT = 16 * 1024 * 1024
CLOSE_TIMEOUT = 5.0


def _credential(request: web.Request) -> str:
    """The bearer token, else the browser's `openai-insecure-api-key.<key>` subprotocol entry."""
    token = bearer_from_header(request)
    if token is not None:
        return token
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        protocol = protocol.strip()
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return protocol[len(KEY_SUBPROTOCOL_PREFIX) :]
    raise ApiError(401, MISSING_KEY_MESSAGE, code="missing_api_key")


class WebSocketOutput:
    """The engine's view of the socket: an outbound queue drained by one writer task.

    `send_event` never waits: a client that stops reading must not stall the engine (which emits under
    the session lock). When the queue passes its event or byte cap, the client is too slow for a
    realtime session and the connection is aborted; closing waits a bounded time for the backlog.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self._ws = ws
        self._transport = transport
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._writer = asyncio.create_task(self._write(), name="ws-writer")
        self.sent = 0
        self.aborted = False

    async def send_event(self, event: dict[str, Any]) -> None:
        self.send_text(json.dumps(event, separators=(",", ":")))

    def send_text(self, frame: str) -> None:
        """Queue one text frame (never waits; a peer that does not read is aborted past the caps)."""
        if self._ws.closed or self.aborted:
            return
        self._queued_bytes += len(frame)
        if self._queue.qsize() >= OUTBOUND_QUEUE_LIMIT or self._queued_bytes > OUTBOUND_BYTES_LIMIT:
            log.warning("ws.slow_consumer", queued=self._queue.qsize(), queued_bytes=self._queued_bytes)
            self.abort()
            return
        self._queue.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            self._queued_bytes -= len(frame)
            try:
                await self._ws.send_str(frame)
                self.sent += 1
            except (ConnectionError, RuntimeError):
                return  # the peer went away; the reader sees the close

    def abort(self) -> None:
        """Drop the connection now (the reader then sees it closed and the handler cleans up)."""
        self.aborted = True
        if self._transport is not None:
            self._transport.abort()
        self._writer.cancel()

    async def close(self, code: int, reason: str) -> None:
        await self.flush()
        try:
            await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()[:120]), CLOSE_TIMEOUT)
        except TimeoutError:
            self.abort()

    async def flush(self) -> None:
        """Let the backlog drain, for at most CLOSE_TIMEOUT seconds; a client that does not read by
        then loses it."""
        if self._writer.done():
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            self.abort()

    async def stop(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


def _prepare_response(request: web.Request) -> web.WebSocketResponse:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    # Select `realtime` when subprotocols are offered: browsers and `ws` fail without a selection, and
    # the key entry must never be echoed.
    return web.WebSocketResponse(
        protocols=(SUBPROTOCOL,) if SUBPROTOCOL in offered else (),
        max_msg_size=request.app[SETTINGS].ws_max_message_bytes,
        heartbeat=30.0,
        autoping=True,
    )


async def realtime_websocket(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(
            400, "This endpoint speaks WebSocket: send an Upgrade request.", code="websocket_required"
        )
    credential = _credential(request)
    if "call_id" in request.query:
        return await _sideband(request, credential, request.query["call_id"])
    admission = await admit(
        request,
        credential,
        transport="websocket",
        intent=request.query.get("intent"),
        model=request.query.get("model"),
    )
    bind_context(session_id=admission.session_id)
    ws = _prepare_response(request)
    try:
        await ws.prepare(request)
    except BaseException:
        await admission.release()
        raise
    request.app[LIVE_CONNECTIONS].add(ws)
    output = WebSocketOutput(ws, request.transport)
    session = RealtimeSession(
        session_id=admission.session_id,
        config=admission.config,
        output=output,
        services=request.app[ENGINE],
        principal=Principal(key=key_summary(admission.key), ovos=admission.ovos),
        expires_at=admission.expires_at,
    )
    sessions = request.app[SESSIONS]
    sessions.add(session)
    log.info("realtime.connected", transport="websocket", api_key_id=admission.key.id)
    try:
        await session.start()
        await _read_loop(ws, session, output, idle_timeout=request.app[SETTINGS].session_idle_timeout_seconds)
    finally:
        sessions.remove(session)
        await session.close()
        await output.flush()
        await output.stop()
        if not ws.closed:
            await ws.close()
        await admission.release()  # records the session closed, shielded from cancellation
        log.info("realtime.disconnected", transport="websocket", close_code=ws.close_code)
    return ws


async def _sideband(request: web.Request, credential: str, call_id: str) -> web.StreamResponse:
    """Attach to the session of a live call. Only the API key that owns the call's session may."""
    key = await authenticate_api_key_value(request, credential)
    call = await request.app[REPOSITORIES].calls.get(call_id)
    session_id = call.session_id if call is not None else None  # None: a SIP call not answered yet
    session_record = await request.app[REPOSITORIES].sessions.get(session_id) if session_id else None
    session = request.app[SESSIONS].get(session_id) if session_id else None
    if call is None or session_record is None or session_record.api_key_id != key.id:
        raise ApiError(404, f"Call '{call_id[:64]}' not found.", code="call_not_found", param="call_id")
    if session is None or session.closed:
        raise ApiError(404, f"Call '{call_id[:64]}' has ended.", code="call_not_found", param="call_id")
    bind_context(session_id=session.id, call_id=call_id)
    ws = _prepare_response(request)
    await ws.prepare(request)
    request.app[LIVE_CONNECTIONS].add(ws)
    output = WebSocketOutput(ws, request.transport)
    log.info("realtime.sideband_attached", api_key_id=key.id)
    try:
        await session.attach(output)
        await _read_loop(ws, session, output, idle_timeout=request.app[SETTINGS].session_idle_timeout_seconds)
    finally:
        session.detach(output)
        await output.flush()
        await output.stop()
        if not ws.closed:
            await ws.close()
        log.info("realtime.sideband_detached", close_code=ws.close_code)
    return ws


class _IdleWatchdog:
    """Closes a connection that has sent nothing for `timeout` seconds. One timer per connection that
    re-arms itself, instead of a timeout around every `receive()` (measured: ~13 us per frame)."""

    def __init__(self, output: WebSocketOutput, timeout: float) -> None:
        self._output = output
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self._task = asyncio.create_task(self._watch(), name="ws-idle-watchdog")

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    async def _watch(self) -> None:
        # A re-arming deadline, not a poll: each sleep lasts exactly until the current deadline.
        while (remaining := self.last_activity + self._timeout - self._loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)
        message = f"The session was idle for {self._timeout:g} seconds and has been closed."
        await self._output.send_event(ev.error(RealtimeError(message, code="idle_timeout")))
        await self._output.close(WSCloseCode.OK, "idle timeout")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _read_loop(
    ws: web.WebSocketResponse, session: RealtimeSession, output: WebSocketOutput, *, idle_timeout: float
) -> None:
    watchdog = _IdleWatchdog(output, idle_timeout)
    try:
        await _receive(ws, session, output, watchdog)
    finally:
        await watchdog.stop()


async def _receive(
    ws: web.WebSocketResponse, session: RealtimeSession, output: WebSocketOutput, watchdog: _IdleWatchdog
) -> None:
    while True:
        message = await ws.receive()
        watchdog.touch()
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
