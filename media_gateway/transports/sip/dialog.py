"""One SIP call's signaling as the called user agent (RFC 3261 §12-§15): the INVITE server transaction,
the dialog, and the requests the gateway itself sends in it (BYE, REFER).

The INVITE is answered `100 Trying` at once and `180 Ringing` while the application decides; the final
answer is a 2xx with the SDP answer, retransmitted (T1 doubling, capped at T2) until the caller's ACK
arrives, or an error status. A caller that never ACKs a 2xx is hung up on after 64·T1 (§13.3.1.4).
Requests the gateway sends are retransmitted the same way until a final response (§17.1.2), UDP being
unreliable. Everything here is signaling; the call's media and session live in `gateway.SipCall`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Final

from media_gateway.transports.sip import message as sip
from media_gateway.transports.sip.message import SipMessage

T1: Final = 0.5
T2: Final = 4.0
TRANSACTION_TIMEOUT: Final = 64 * T1
ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"

Send = Callable[[SipMessage, tuple[str, int]], None]


class SipDialog:
    """The gateway's side of one call: answers to its INVITE, requests inside its dialog."""

    def __init__(
        self, invite: SipMessage, source: tuple[str, int], send: Send, *, contact: str, user_agent: str
    ) -> None:
        self.invite = invite
        self.source = source
        self._send = send
        self.contact = contact
        self.user_agent = user_agent
        self.local_tag = sip.new_tag()
        self.call_id = invite.call_id
        self.remote_cseq = invite.cseq[0]
        self._local_cseq = secrets.randbelow(10_000) + 1
        self.last_response: SipMessage | None = None
        self.final_sent = False
        self.acked = asyncio.Event()
        self._pending: dict[int, asyncio.Future[SipMessage]] = {}
        self._retransmit: asyncio.Task[None] | None = None

    # --- the INVITE server transaction ------------------------------------------------------------------

    def respond(
        self, status: int, *, body: bytes = b"", reason: str = "", request: SipMessage | None = None
    ) -> None:
        """Answer the INVITE (or `request`, another request of this call)."""
        target = request or self.invite
        response = sip.response_to(target, status, to_tag=self.local_tag, reason=reason)
        response.headers.append(("User-Agent", self.user_agent))
        if target is self.invite or target.method == "INVITE":
            if 200 <= status < 300:
                response.headers += [("Record-Route", rr) for rr in target.get_all("record-route")]
                response.headers += [("Contact", f"<{self.contact}>"), ("Allow", ALLOW)]
            if body:
                response.headers.append(("Content-Type", "application/sdp"))
        response.body = body
        self._send(response, self.source)
        if target is self.invite:
            self.last_response = response
            if status >= 200:
                self.final_sent = True
                if status < 300:
                    self._retransmit = asyncio.create_task(self._until_acked(response))

    def retransmitted(self) -> None:
        """The INVITE came again: the answer was lost; send it again."""
        if self.last_response is not None:
            self._send(self.last_response, self.source)

    async def _until_acked(self, response: SipMessage) -> None:
        interval = T1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TRANSACTION_TIMEOUT
        while not self.acked.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acked.wait(), interval)
            if not self.acked.is_set():
                self._send(response, self.source)
                interval = min(interval * 2, T2)

    def ack(self) -> None:
        self.acked.set()

    # --- requests the gateway sends -----------------------------------------------------------------------

    def new_request(self, method: str) -> SipMessage:
        self._local_cseq += 1
        target = sip.uri_of(self.invite.get("contact")) or sip.uri_of(self.invite.get("from"))
        request = SipMessage(method=method, uri=target)
        request.headers += [
            ("Via", f"SIP/2.0/UDP {self._via_host()};branch={sip.new_branch()};rport"),
            ("Max-Forwards", "70"),
        ]
        request.headers += [("Route", rr) for rr in self.invite.get_all("record-route")]
        request.headers += [
            ("From", f"{self.invite.get('to').split(';tag=')[0]};tag={self.local_tag}"),
            ("To", self.invite.get("from")),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._local_cseq} {method}"),
            ("Contact", f"<{self.contact}>"),
            ("User-Agent", self.user_agent),
        ]
        return request

    def _via_host(self) -> str:
        return sip.uri_of(self.contact).split("@")[-1].split(";")[0]

    async def request(self, request: SipMessage) -> SipMessage:
        """Send an in-dialog request and wait for its final response (TimeoutError after 64·T1)."""
        number = request.cseq[0]
        future: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        interval = T1
        try:
            async with asyncio.timeout(TRANSACTION_TIMEOUT):
                while True:
                    self._send(request, self.source)
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(future), interval)
                    interval = min(interval * 2, T2)
        finally:
            self._pending.pop(number, None)

    def response(self, response: SipMessage) -> None:
        """A response to one of the gateway's requests; provisional ones are ignored."""
        try:
            number, _ = response.cseq
        except sip.SipParseError:
            return
        future = self._pending.get(number)
        if future is not None and not future.done() and response.status >= 200:
            future.set_result(response)

    def close(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
