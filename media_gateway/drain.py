"""Graceful drain on SIGTERM: stop taking work, let the work in flight finish, then stop.

`media-gateway serve` calls `Drain.start` on the first SIGTERM (a second one, or SIGINT, stops at once):

1. `/ready` answers 503 (`draining`), so a load balancer stops sending new connections, and admission
   refuses new sessions and calls with 503 `shutting_down` (SIP: 503);
2. every live session finishes the response it is producing (its audio included), then gets an
   `error` event (`server_shutting_down`) and its connections close with 1012 "service restart", on which
   the official SDKs reconnect (to another replica); WebRTC calls end the same way, SIP calls get a BYE;
3. when all have ended, or half of `shutdown_timeout_seconds` has passed, the process stops the way
   SIGINT stops it (aiohttp closes the listener; anything still open is closed with 1001), well within
   the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from media_gateway.app_keys import CALLS, SESSIONS, SETTINGS, SIP
from media_gateway.observability.logging import get_logger
from media_gateway.realtime.errors import RealtimeError

if TYPE_CHECKING:
    from media_gateway.realtime.session import RealtimeSession

log = get_logger(__name__)

SERVICE_RESTART = 1012  # RFC 6455 §7.4.1 via IANA: the server is restarting; clients may reconnect
POLL_SECONDS = 0.05


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._task: asyncio.Task[None] | None = None

    def install(self, app: web.Application) -> None:
        """Take SIGTERM over from aiohttp's immediate stop (called once the loop runs, at startup)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.start, app)

    def start(self, app: web.Application) -> None:
        if self._task is not None:  # a second SIGTERM: stop now
            _stop()
            return
        self._task = asyncio.ensure_future(self._run(app))

    async def _run(self, app: web.Application) -> None:
        self.draining = True
        budget = app[SETTINGS].shutdown_timeout_seconds / 2
        started = time.monotonic()
        sessions = app[SESSIONS].all()
        log.info("gateway.draining", sessions=len(sessions), seconds=budget)
        try:
            async with asyncio.timeout(budget):
                await asyncio.gather(
                    *(self._finish(session) for session in sessions),
                    self._hang_up_sip(app),
                    return_exceptions=True,
                )
                # The transports' own teardown (the session's store, its admission released) runs after
                # the close; stopping before it ends would cancel those writes.
                while len(app[SESSIONS]) or len(app[CALLS]):  # noqa: ASYNC110 - no event for "all gone"
                    await asyncio.sleep(POLL_SECONDS)
        except TimeoutError:
            log.warning("gateway.drain_incomplete", sessions_left=len(app[SESSIONS]))
        log.info("gateway.drained", seconds=round(time.monotonic() - started, 3))
        _stop()

    async def _finish(self, session: RealtimeSession) -> None:
        """The response in flight ends (completed, its audio played), then the session is told and closed."""
        # Polled: neither the end of a response nor the end of its playout has one event to wait on.
        while not session.closed and (session.responses.active is not None or _playing(session)):  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        if session.closed:
            return
        with contextlib.suppress(Exception):
            await session.terminate(
                RealtimeError(
                    "The server is restarting; reconnect to continue.",
                    code="server_shutting_down",
                    error_type="server_error",
                ),
                code=SERVICE_RESTART,
                reason="service restart",
            )

    async def _hang_up_sip(self, app: web.Application) -> None:
        gateway = app.get(SIP)
        if gateway is not None:
            await gateway.close()


def _playing(session: RealtimeSession) -> bool:
    """Audio the server itself still plays (a WebRTC track, an RTP stream) outlives `response.done`."""
    return bool(getattr(session.audio_sink, "buffered_frames", 0))


def _stop() -> None:
    """Stop the server as SIGINT does: aiohttp's run_app ends on GracefulExit raised in a loop callback."""

    def raise_exit() -> None:
        raise GracefulExit

    asyncio.get_running_loop().call_soon(raise_exit)
