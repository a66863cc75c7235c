"""One WebSocket connection to an OVOS messagebus, kept open for the life of the process.

The bus has no authentication and sends every message to every client (every session's `speak` included),
so the connection is one per process and routing happens here: each frame is parsed once and handed to
`on_message`, which must not block (it queues work for the session the message names). Frames that are not
messages (not JSON, no type, oversized) are counted and dropped; they cannot reach a session.

When the connection drops, the client reconnects with backoff (0.1 s doubling to 2 s) until stopped;
meanwhile `send` raises `OvosUnavailable`, and `on_connection` is told both ways so the owner can fail
turns in flight instead of waiting for their timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

import aiohttp

from media_gateway.observability.logging import get_logger
from media_gateway.ovos.message import MAX_FRAME_BYTES, BadMessage, OvosMessage

log = get_logger(__name__)

_BACKOFF_START: Final = 0.1
_BACKOFF_MAX: Final = 2.0
_HEARTBEAT_SECONDS: Final = 10.0


class OvosUnavailable(RuntimeError):
    """The messagebus is not connected: the message was not sent."""


class OvosBusClient:
    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[OvosMessage], None],
        on_connection: Callable[[bool], None] | None = None,
        name: str = "ovos-bus",
    ) -> None:
        self.url = url
        self._on_message = on_message
        self._on_connection = on_connection
        self._name = name
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.bad_frames = 0
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def start(self) -> None:
        if self._task is None:
            self._http = aiohttp.ClientSession()
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def wait_connected(self, seconds: float) -> None:
        """Return once connected; raise OvosUnavailable after `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        except TimeoutError:
            raise OvosUnavailable(f"the OVOS messagebus at {self.url} did not accept a connection") from None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, message: OvosMessage) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise OvosUnavailable(f"the OVOS messagebus at {self.url} is not connected")
        try:
            await ws.send_str(message.to_json())
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise OvosUnavailable(f"the OVOS messagebus connection failed: {exc}") from exc

    async def _run(self) -> None:
        assert self._http is not None
        backoff = _BACKOFF_START
        while True:
            try:
                ws = await self._http.ws_connect(
                    self.url, heartbeat=_HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES, autoping=True
                )
            except (aiohttp.ClientError, OSError) as exc:
                log.debug("ovos_bus.connect_failed", url=self.url, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(_BACKOFF_MAX, backoff * 2)
                continue
            backoff = _BACKOFF_START
            self._ws = ws
            self._connected.set()
            log.info("ovos_bus.connected", url=self.url, name=self._name)
            self._notify(True)
            try:
                await self._read(ws)
            finally:
                self._ws = None
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await ws.close()
                self._notify(False)
            self.reconnects += 1
            log.warning("ovos_bus.disconnected", url=self.url, name=self._name)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                if frame.type is aiohttp.WSMsgType.ERROR:
                    return
                continue
            try:
                message = OvosMessage.from_json(frame.data)
            except BadMessage as exc:
                self.bad_frames += 1
                log.debug("ovos_bus.bad_frame", error=str(exc))
                continue
            try:
                self._on_message(message)
            except Exception:
                log.exception("ovos_bus.handler_failed", type=message.type)

    def _notify(self, up: bool) -> None:
        if self._on_connection is not None:
            try:
                self._on_connection(up)
            except Exception:
                log.exception("ovos_bus.connection_handler_failed")
