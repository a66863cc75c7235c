"""The gateway's SIP endpoint: one UDP socket, requests routed to their call by Call-ID.

Out-of-dialog requests: `INVITE` opens a call (the `CallHandler` decides what happens to it), `OPTIONS`
is answered 200 (trunks use it as a keep-alive), anything else gets 405 or 481. Inside a dialog: `ACK`,
`BYE`, `CANCEL`, re-`INVITE`, `NOTIFY` (progress of a transfer), `INFO`. Responses go to the call whose
request they answer.

A datagram that is not a SIP message is dropped and counted (nothing can be answered without a Via); a
request missing a mandatory header gets 400 naming it. With a source allow-list, requests from other
addresses get 403 before anything else reads them.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Protocol, cast

from media_gateway.observability.logging import get_logger
from media_gateway.transports.sip import message as sip
from media_gateway.transports.sip.dialog import ALLOW
from media_gateway.transports.sip.message import SipMessage

log = get_logger(__name__)

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallHandler(Protocol):
    """Implemented by the SIP gateway: what happens to calls and their requests."""

    def invite(self, request: SipMessage, source: Address) -> None: ...
    def in_dialog(self, request: SipMessage, source: Address) -> bool:
        """Handle a request of a known call; False when no call has this Call-ID."""
        ...

    def response(self, response: SipMessage) -> None: ...
    def bad_message(self, reason: str) -> None: ...


class SipServer(asyncio.DatagramProtocol):
    def __init__(
        self, handler: CallHandler, *, allowed_sources: Iterable[Network] = (), user_agent: str
    ) -> None:
        self._handler = handler
        self._allowed = tuple(allowed_sources)
        self.user_agent = user_agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def send(self, message: SipMessage, address: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(message.encode(), address)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        if not data.strip():
            return  # a keep-alive (RFC 5626 §4.4.1 CRLF)
        try:
            message = sip.parse(data)
        except sip.SipParseError as exc:
            self._handler.bad_message(str(exc))
            log.info("sip.unparseable", source=source[0], error=str(exc))
            return
        if not message.is_request:
            self._handler.response(message)
            return
        try:
            self._request(message, source)
        except sip.SipParseError as exc:
            self._handler.bad_message(str(exc))
            self._reply(message, source, 400, reason=f"Bad Request ({exc})"[:120])

    def _request(self, request: SipMessage, source: Address) -> None:
        missing = sip.missing_headers(request)
        if missing:
            self._handler.bad_message("missing " + ", ".join(missing))
            if request.get("via") and request.method != "ACK":
                self._reply(request, source, 400, reason="Missing " + ", ".join(missing))
            return
        if self._allowed and not self._source_allowed(source[0]):
            log.warning("sip.source_refused", source=source[0], method=request.method)
            if request.method != "ACK":
                self._reply(request, source, 403)
            return
        _, cseq_method = request.cseq
        if cseq_method != request.method:
            raise sip.SipParseError("CSeq method does not match the request")
        if self._handler.in_dialog(request, source):
            return
        if request.method == "INVITE" and not request.to_tag:
            self._handler.invite(request, source)
        elif request.method == "OPTIONS":
            response = sip.response_to(request, 200, to_tag=sip.new_tag())
            response.headers += [
                ("Allow", ALLOW),
                ("Accept", "application/sdp"),
                ("User-Agent", self.user_agent),
            ]
            self.send(response, source)
        elif request.method == "ACK":
            pass  # the ACK of an error response, or of a call already gone: nothing to answer
        elif request.method in ("BYE", "CANCEL", "NOTIFY", "INFO", "INVITE", "REFER"):
            self._reply(request, source, 481)
        else:
            reply = sip.response_to(request, 405, to_tag=sip.new_tag())
            reply.headers.append(("Allow", ALLOW))
            self.send(reply, source)

    def _reply(self, request: SipMessage, source: Address, status: int, *, reason: str = "") -> None:
        self.send(sip.response_to(request, status, to_tag=sip.new_tag(), reason=reason), source)

    def _source_allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._allowed)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
