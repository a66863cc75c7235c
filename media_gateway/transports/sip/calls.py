"""A SIP call as a realtime session: the call object that owns its dialog, media, session and admission.

Its life: an INVITE arrives (the SDP offer is checked first: nothing usable → 488) → the call is recorded
and announced (the `realtime.call.incoming` webhook, or the dispatch rule) and rings → the application
accepts it (`/accept`: admitted like any connection, policy transport `sip` with the caller, called
number and source address) and the gateway answers 200 with its SDP, or rejects it (`/reject`: the status
it asks for, 603 by default), or nobody decides within the answer timeout (480) → media flows both ways
and the session runs → it ends by the caller's BYE, `/hangup` (the gateway's BYE), `/refer` then the
caller leaving, CANCEL before the answer, or the session closing. The outcome is written to the call's
row and the metrics when it ends, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from media_gateway.observability.logging import get_logger
from media_gateway.observability.metrics import TelephonyMetrics
from media_gateway.realtime.session import RealtimeSession
from media_gateway.signaling.admission import Admission
from media_gateway.transports.sip.dialog import TRANSACTION_TIMEOUT, SipDialog
from media_gateway.transports.sip.media import CallMedia
from media_gateway.transports.sip.message import SipMessage
from media_gateway.transports.sip.sdp import Negotiated

log = get_logger(__name__)

State = Literal["ringing", "answering", "answered", "ended"]
# The outcomes are call statuses too: the call's row ends with one of them.
Outcome = Literal["ended", "failed", "rejected", "cancelled", "unanswered", "refused"]


@dataclass(frozen=True)
class CallFacts:
    """What the policy and the application know of a call before answering it."""

    caller: str
    called: str
    source: str

    def as_policy_input(self) -> dict[str, str]:
        return {"from": self.caller, "to": self.called, "source": self.source}


class SipCall:
    def __init__(
        self,
        call_id: str,
        dialog: SipDialog,
        negotiated: Negotiated,
        facts: CallFacts,
        metrics: TelephonyMetrics,
        on_end: Callable[[SipCall], Awaitable[None]],
        *,
        rtp_timeout: float = 30.0,
    ) -> None:
        self.id = call_id
        self.dialog = dialog
        self.negotiated = negotiated
        self.facts = facts
        self._metrics = metrics
        self._on_end = on_end
        self.rtp_timeout = rtp_timeout
        self.state: State = "ringing"
        self.outcome: Outcome | None = None
        self.media: CallMedia | None = None
        self.session: RealtimeSession | None = None
        self.admission: Admission | None = None
        self.decided = asyncio.Event()
        self.ended = asyncio.Event()
        self.refer_target: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(f"sip-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- media events (CallMedia) ----------------------------------------------------------------------

    async def audio(self, frames: list[bytes]) -> None:
        if self.session is not None:
            await self.session.push_frames(frames)

    async def digit(self, digit: str) -> None:
        self._metrics.dtmf.labels(transport="sip").inc()
        if self.session is not None:
            await self.session.dtmf(digit)

    # --- decisions --------------------------------------------------------------------------------------

    def reject(self, status: int, *, outcome: Outcome = "rejected", reason: str = "") -> bool:
        """Refuse the call before it is answered (the application's /reject, a refusal, a timeout);
        False when it was answered or ended already."""
        if self.state != "ringing":
            return False
        self.decided.set()
        self.dialog.respond(status, reason=reason)
        self.spawn(self.end(outcome), "end")
        return True

    async def answer(
        self, media: CallMedia, session: RealtimeSession, admission: Admission, sdp: bytes
    ) -> None:
        """Answer 200 with `sdp`; media starts at once (the caller's ACK may follow the first packets)."""
        self.media, self.session, self.admission = media, session, admission
        self.state = "answered"
        self.decided.set()
        self.dialog.respond(200, body=sdp)
        media.start()
        self.spawn(self._watch(), "watch")

    async def _watch(self) -> None:
        """Hang up a call whose caller vanished: no ACK for the 200 within 64·T1 (RFC 3261 §13.3.1.4), or
        no RTP for `rtp_timeout` seconds while not on hold (a caller gone without a BYE)."""
        try:
            await asyncio.wait_for(self.dialog.acked.wait(), TRANSACTION_TIMEOUT)
        except TimeoutError:
            await self.hang_up("no ACK", outcome="failed")
            return
        media = self.media
        assert media is not None
        while self.state == "answered":
            await asyncio.sleep(min(1.0, self.rtp_timeout / 4))
            silent = time.monotonic() - media.last_packet_at
            if media.negotiated.on_hold:
                media.last_packet_at = time.monotonic()  # a held caller may send nothing
            elif silent > self.rtp_timeout:
                await self.hang_up(f"no RTP for {silent:.0f} s", outcome="failed")

    # --- requests of the caller -------------------------------------------------------------------------

    def caller_hung_up(self, request: SipMessage) -> None:
        self.dialog.respond(200, request=request)
        self.spawn(self.end("ended" if self.state == "answered" else "cancelled"), "end")

    def cancelled(self, request: SipMessage) -> None:
        self.dialog.respond(200, request=request)
        if self.state == "ringing" and not self.dialog.final_sent:
            self.decided.set()
            self.dialog.respond(487)
            self.spawn(self.end("cancelled"), "end")

    # --- the gateway ends the call ----------------------------------------------------------------------

    async def hang_up(self, why: str, *, outcome: Outcome = "ended") -> None:
        """BYE (after the answer) or 480 (before), then end."""
        if self.state == "ringing":
            self.reject(480, outcome="unanswered")
            return
        if self.state != "answered":
            return
        log.info("sip.hanging_up", call_id=self.id, why=why)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.dialog.request(self.dialog.new_request("BYE")), 4.0)
        await self.end(outcome)

    async def refer(self, target: str) -> int:
        """Ask the caller to call `target` instead (RFC 3515); the SIP status of the answer (202 when
        accepted). The call goes on until the caller leaves it."""
        request = self.dialog.new_request("REFER")
        request.headers += [("Refer-To", f"<{target}>"), ("Referred-By", f"<{self.dialog.contact}>")]
        self.refer_target = target
        response = await self.dialog.request(request)
        return response.status

    async def end(self, outcome: Outcome) -> None:
        """Once: stop media, close the session, release the admission, record the outcome."""
        if self.state == "ended":
            return
        self.state = "ended"
        self.outcome = outcome
        self.decided.set()
        self.dialog.close()
        try:
            if self.media is not None:
                await self.media.close()
                stats = self.media.stats
                self._metrics.rtp_packets.labels(direction="in").inc(self.media.packets_in)
                self._metrics.rtp_packets.labels(direction="out").inc(self.media.packets_out)
                self._metrics.rtp_lost.inc(max(0, stats.lost))
                if stats.received > 1:
                    self._metrics.rtp_jitter.observe(stats.jitter_ms / 1000)
            if self.session is not None:
                await self.session.close()
        finally:
            self._metrics.calls.labels(transport="sip", outcome=outcome).inc()
            try:
                await self._on_end(self)
            finally:
                if self.admission is not None:
                    await self.admission.release()
                self.ended.set()
            log.info("sip.call_ended", call_id=self.id, outcome=outcome, **self.media_summary())

    def media_summary(self) -> dict[str, Any]:
        if self.media is None:
            return {}
        stats = self.media.stats
        return {
            "codec": self.media.codec.name,
            "packets_in": self.media.packets_in,
            "packets_out": self.media.packets_out,
            "lost": stats.lost,
            "late": stats.late,
            "jitter_ms": round(stats.jitter_ms, 2),
        }

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
