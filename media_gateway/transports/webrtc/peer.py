"""One WebRTC call: its peer connection, media, data channel, engine session, and one teardown.

Lifecycle:

* `answer()` applies the offer, adds the paced outbound track *after* `setRemoteDescription` (so aiortc
  reuses the offered audio transceiver as `sendrecv` instead of adding a second m-line the browser did
  not offer), and builds the complete, non-trickle answer (aiortc does not trickle candidates).
* A connect watchdog closes a call whose peer never reaches `connected` (status `failed`).
* `connectionState` `failed`/`closed` closes the call. aiortc has no `disconnected` state and aioice
  notices a vanished peer only after ~30 s of failed consent checks, so a liveness task releases a
  connected call that has received no RTP and no data-channel message for `webrtc_peer_timeout_seconds`.
* `close()` is idempotent and shielded: every path (hangup, watchdogs, engine, shutdown, HTTP disconnect)
  runs the same teardown once, to completion, even if the caller is cancelled. Every task the call
  starts is owned here and cancelled there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media_gateway.observability.logging import get_logger
from media_gateway.observability.metrics import WebRtcMetrics
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.session import RealtimeSession
from media_gateway.settings import Settings
from media_gateway.transports.webrtc.datachannel import CHANNEL_LABEL, DataChannelOutput
from media_gateway.transports.webrtc.ice import rtc_configuration
from media_gateway.transports.webrtc.inbound import InboundAudio, drain
from media_gateway.transports.webrtc.offer import Offer, OfferError
from media_gateway.transports.webrtc.outbound import PacedAudioTrack

log = get_logger(__name__)

CloseStatus = Literal["ended", "failed"]
PC_CLOSE_TIMEOUT = 5.0
# Client events from the data channel waiting for the engine; past this they are refused with an error.
INBOX_EVENTS = 256
LIVENESS_TICK = 0.5


class WebRtcCall:
    def __init__(self, *, settings: Settings, metrics: WebRtcMetrics, session_id: str) -> None:
        self.id = ""  # the persisted `rtc_…` id, set once the call record exists
        self.session_id = session_id
        self.settings = settings
        self.metrics = metrics
        self.pc = RTCPeerConnection(rtc_configuration(settings))
        self.track = PacedAudioTrack()
        self.output = DataChannelOutput(self.request_close)
        self.session: RealtimeSession | None = None
        self.inbound: InboundAudio | None = None
        self.channel: RTCDataChannel | None = None
        self.connected = asyncio.Event()
        self.has_data_channel = True
        self.close_reason: str | None = None
        self.status: CloseStatus = "ended"
        self.last_message_at = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._session_started = False
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=INBOX_EVENTS)
        self._on_closed: list[Callable[[WebRtcCall], Awaitable[None]]] = []
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)

    # --- setup -------------------------------------------------------------------------------------------

    async def answer(self, offer: Offer, gather_timeout: float) -> str:
        """Apply the offer; return the complete SDP answer. Raises `OfferError` when aiortc rejects the
        offer; anything raised after the offer was applied is the gateway's own failure."""
        self.has_data_channel = offer.has_data_channel
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError and its own errors on offers it cannot use
            if self.closed:
                raise
            raise OfferError(f"The SDP offer was rejected: {_first_line(str(exc))}", "invalid_offer") from exc
        # addTrack reuses the offered audio transceiver and ORs its direction with sendonly → sendrecv.
        self.pc.addTrack(self.track)
        answer = await self.pc.createAnswer()
        # aiortc does not trickle local candidates: setLocalDescription waits for gathering, which the
        # gathering policy caps (ice.py); this outer bound only guards against an aioice hang.
        await asyncio.wait_for(self.pc.setLocalDescription(answer), gather_timeout + 1.0)
        local = self.pc.localDescription
        assert local is not None
        return local.sdp

    def bind(self, session: RealtimeSession, call_id: str) -> None:
        self.session = session
        self.id = call_id
        self.spawn(self._watch_connect(), "connect-watchdog")

    def on_closed(self, callback: Callable[[WebRtcCall], Awaitable[None]]) -> None:
        self._on_closed.append(callback)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=f"webrtc-{name}:{self.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- peer connection events --------------------------------------------------------------------------

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected.is_set():
            self.connected.set()
            self.spawn(self._watch_liveness(), "liveness")
            if not self.has_data_channel:
                self.spawn(self._start_session(), "session-start")
        elif state == "failed":
            self.request_close("ice_failed", "failed" if not self.connected.is_set() else "ended")
        elif state == "closed":
            self.request_close("peer_closed")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.inbound is None:
            self.inbound = InboundAudio(
                track,
                capacity=self.settings.webrtc_inbound_queue_frames,
                on_drop=self.metrics.inbound_frames_dropped.inc,
            )
            self.inbound.accepting = self._session_started
            self.spawn(self.inbound.read(), "inbound-read")
            if self._session_started:
                self._start_pump()
        else:
            self.spawn(drain(track), "drain")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self.channel is not None:
            return
        self.channel = channel

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self.last_message_at = time.monotonic()
            try:
                self._inbox.put_nowait(message)
            except asyncio.QueueFull:
                # SCTP gives no way to pause one channel's reader, so a client that outruns the engine
                # gets an error naming the refused event (its event_id echoed, so SDKs waiting on a
                # `response.create` are released), never a silent drop.
                self.metrics.inbound_events_refused.inc()
                self.output.refuse(message)

        @channel.on("close")
        def on_close() -> None:
            self.request_close("peer_closed")

        self.output.bind(channel)
        self.spawn(self._start_session(), "session-start")

    # --- session ------------------------------------------------------------------------------------------

    async def _start_session(self) -> None:
        if self._session_started or self.session is None:
            return
        self._session_started = True
        await self.session.start()
        if self.inbound is not None:
            self.inbound.accepting = True
            self._start_pump()
        self.spawn(self._read_events(), "events-in")

    def _start_pump(self) -> None:
        assert self.inbound is not None
        assert self.session is not None
        self.spawn(self.inbound.pump(self.session.push_frames), "inbound-pump")

    async def _read_events(self) -> None:
        assert self.session is not None
        while True:
            message = await self._inbox.get()
            try:
                await self.session.handle_text(message)
            except Exception:
                # The engine turns client faults into `error` events itself; anything else (e.g. the
                # database refusing a write under load) must not kill this call's only event reader.
                log.exception("webrtc.client_event_failed", call_id=self.id)
                await self.output.send_event(
                    ev.error(
                        RealtimeError(
                            "The server had an error while processing the event.",
                            code="server_error",
                            error_type="server_error",
                        )
                    )
                )

    # --- watchdogs ----------------------------------------------------------------------------------------

    async def _watch_connect(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), self.settings.webrtc_connect_timeout_seconds)
        except TimeoutError:
            log.info("webrtc.connect_timeout", state=self.pc.connectionState)
            self.request_close("connect_timeout", "failed")

    async def _watch_liveness(self) -> None:
        timeout = self.settings.webrtc_peer_timeout_seconds
        start = time.monotonic()
        while True:
            await asyncio.sleep(LIVENESS_TICK)
            heard = max(start, self.last_message_at)
            if self.inbound is not None:
                heard = max(heard, self.inbound.last_frame_at)
            if time.monotonic() - heard > timeout:
                log.info("webrtc.peer_timeout", silent_seconds=round(time.monotonic() - heard, 1))
                self.request_close("peer_timeout")
                return

    # --- teardown -----------------------------------------------------------------------------------------

    def request_close(self, reason: str, status: CloseStatus = "ended") -> None:
        """Start the teardown (once) without waiting for it."""
        if self._closing is None:
            self.close_reason, self.status = reason, status
            self._closing = asyncio.ensure_future(self._close())

    async def close(self, reason: str, status: CloseStatus = "ended") -> None:
        self.request_close(reason, status)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    @property
    def closed(self) -> bool:
        return self._closing is not None

    async def _close(self) -> None:
        log.info("webrtc.call_closing", call_id=self.id, reason=self.close_reason, status=self.status)
        self.output.stop()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.track.stop()
        try:
            await asyncio.wait_for(self.pc.close(), PC_CLOSE_TIMEOUT)
        except (TimeoutError, Exception):  # a hung close must not keep the call (and its lease) alive
            log.warning("webrtc.pc_close_failed", call_id=self.id, exc_info=True)
        self.metrics.calls_ended.labels(reason=self.close_reason or "unknown").inc()
        for callback in self._on_closed:
            with contextlib.suppress(Exception):
                await callback(self)


def _first_line(text: str) -> str:
    return (text.splitlines() or ["no reason given"])[0][:200]
