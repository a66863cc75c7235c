"""The gateway's SIP side: its endpoint, its calls, and what happens to an incoming one.

`SipGateway` is created by the composition root when `MEDIA_GATEWAY_SIP_PORT` is set. It answers the SIP
endpoint's requests (`server.CallHandler`), announces each call (webhook, or the dispatch rule), and offers
the call-control operations the REST handlers expose: accept, reject, refer, hang up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web

from media_gateway.app_keys import DRAIN, ENGINE, METRICS, REPOSITORIES, SESSIONS, SETTINGS
from media_gateway.observability.logging import get_logger
from media_gateway.persistence.models import new_id
from media_gateway.realtime.session import Principal, RealtimeSession
from media_gateway.settings import Settings
from media_gateway.signaling.admission import Admission, admit
from media_gateway.signaling.client_secrets import key_summary
from media_gateway.signaling.errors import ApiError
from media_gateway.transports.sip import message as sip
from media_gateway.transports.sip import sdp, webhook
from media_gateway.transports.sip.calls import CallFacts, SipCall
from media_gateway.transports.sip.dialog import SipDialog
from media_gateway.transports.sip.media import CallMedia
from media_gateway.transports.sip.message import SipMessage
from media_gateway.transports.sip.server import Address, SipServer

log = get_logger(__name__)

USER_AGENT: Final = "ovos-media-gateway"
# The session of a call answered by the dispatch rule without one configured: what a phone line carries.
DEFAULT_CALL_SESSION: Final[dict[str, Any]] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {"type": "server_vad"},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
        },
        "output": {"format": {"type": "audio/pcmu"}},
    },
}


@dataclass(frozen=True)
class _Dispatcher:
    """The dispatch rule's stand-in for an HTTP request: admission needs only the application."""

    app: web.Application


class SessionOutput:
    """Where a SIP call's session sends events: nowhere but its sideband connections (a phone has no
    channel for them); a session closing on its own (expiry, error) hangs the call up."""

    def __init__(self, call: SipCall) -> None:
        self._call = call

    async def send_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "error":
            log.info("sip.session_error", call_id=self._call.id, code=(event.get("error") or {}).get("code"))

    async def close(self, code: int, reason: str) -> None:
        self._call.spawn(self._call.hang_up(f"session closed: {reason}"), "session-closed")


class SipGateway:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.settings: Settings = app[SETTINGS]
        self.metrics = app[METRICS].telephony
        settings = self.settings
        low, _, high = settings.sip_rtp_ports.partition("-")
        self.rtp_ports = (int(low), int(high))
        self.codecs = tuple(c.strip().lower() for c in settings.sip_codecs.split(",") if c.strip())
        self.address = settings.sip_public_address or settings.sip_host
        sources = [s.strip() for s in settings.sip_allowed_sources.split(",") if s.strip()]
        self.server = SipServer(
            self,
            allowed_sources=[ipaddress.ip_network(s, strict=False) for s in sources],
            user_agent=USER_AGENT,
        )
        self.port = 0
        self._by_call_id: dict[str, SipCall] = {}  # SIP Call-ID → call
        self._by_id: dict[str, SipCall] = {}  # the gateway's call id (rtc_…) → call
        self._http: aiohttp.ClientSession | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.settings.sip_port is not None
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.server, local_addr=(self.settings.sip_host, self.settings.sip_port)
        )
        self.port = transport.get_extra_info("sockname")[1]
        self._http = aiohttp.ClientSession()
        log.info(
            "sip.started", host=self.settings.sip_host, port=self.port, rtp_ports=self.settings.sip_rtp_ports
        )

    async def close(self) -> None:
        await asyncio.gather(
            *(call.hang_up("shutdown") for call in list(self._by_id.values())), return_exceptions=True
        )
        for call in list(self._by_id.values()):
            await call.close()
        self.server.close()
        if self._http is not None:
            await self._http.close()

    def get(self, call_id: str) -> SipCall | None:
        return self._by_id.get(call_id)

    @property
    def contact(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"sip:gateway@{host}:{self.port}"

    # --- the SIP endpoint's requests (server.CallHandler) -----------------------------------------------

    def bad_message(self, reason: str) -> None:
        self.metrics.sip_bad_messages.inc()

    def response(self, response: SipMessage) -> None:
        call = self._by_call_id.get(response.call_id)
        if call is not None:
            call.dialog.response(response)

    def invite(self, request: SipMessage, source: Address) -> None:
        dialog = SipDialog(request, source, self.server.send, contact=self.contact, user_agent=USER_AGENT)
        drain = self.app.get(DRAIN)
        if drain is not None and drain.draining:
            dialog.respond(503)
            self.metrics.calls.labels(transport="sip", outcome="refused").inc()
            return
        if len(self._by_id) >= self.settings.sip_max_calls:
            dialog.respond(486)
            self.metrics.calls.labels(transport="sip", outcome="refused").inc()
            return
        content_type = request.get("content-type").split(";")[0].strip().lower()
        try:
            if not request.body:
                raise sdp.SdpError("an INVITE without an SDP offer is not supported")
            if content_type != "application/sdp":
                raise sdp.SdpError(f"unsupported body type {content_type[:40]!r}", 415)
            negotiated = sdp.negotiate(request.body, self.codecs)
        except sdp.SdpError as exc:
            log.info("sip.offer_refused", status=exc.status, reason=str(exc), source=source[0])
            dialog.respond(exc.status, reason=sip.REASONS.get(exc.status, ""))
            self.metrics.calls.labels(transport="sip", outcome="refused").inc()
            return
        facts = CallFacts(
            caller=sip.user_of(request.get("from")), called=sip.user_of(request.uri), source=source[0]
        )
        call = SipCall(
            new_id("rtc"),
            dialog,
            negotiated,
            facts,
            self.metrics,
            self._ended,
            rtp_timeout=self.settings.sip_rtp_timeout_seconds,
        )
        self._by_call_id[request.call_id] = call
        self._by_id[call.id] = call
        self.metrics.sip_live_calls.set(len(self._by_id))
        dialog.respond(100)
        call.spawn(self._incoming(call), "incoming")

    def in_dialog(self, request: SipMessage, source: Address) -> bool:
        call = self._by_call_id.get(request.call_id)
        if call is None:
            return False
        method = request.method
        if method == "INVITE" and not request.to_tag:
            call.dialog.retransmitted()
        elif method == "ACK":
            call.dialog.ack()
        elif method == "BYE":
            call.caller_hung_up(request)
        elif method == "CANCEL":
            call.cancelled(request)
        elif method == "INVITE":
            self._reinvite(call, request)
        elif method in ("NOTIFY", "INFO", "OPTIONS"):
            call.dialog.respond(200, request=request)
        else:
            reply = sip.response_to(request, 405, to_tag=call.dialog.local_tag)
            self.server.send(reply, source)
        return True

    def _reinvite(self, call: SipCall, request: SipMessage) -> None:
        """A re-INVITE (hold, resume, a new address): the same codec, the new direction and address."""
        if call.media is None:
            call.dialog.respond(491, request=request)  # not answered yet: "request pending"
            return
        try:
            negotiated = (
                sdp.negotiate(request.body, (call.media.codec.name,))
                if request.body
                else call.media.negotiated
            )
        except sdp.SdpError as exc:
            call.dialog.respond(exc.status, request=request)
            return
        call.media.update(negotiated)
        log.info("sip.reinvite", call_id=call.id, direction=negotiated.direction, on_hold=negotiated.on_hold)
        body = sdp.answer(negotiated, self.address, call.media.port, version=request.cseq[0])
        call.dialog.respond(200, body=body, request=request)

    # --- announcing a call ------------------------------------------------------------------------------

    async def _incoming(self, call: SipCall) -> None:
        """Announce the call; any failure (a database error, say) answers it 500 rather than leaving the
        caller ringing until it gives up."""
        try:
            await self._announce(call)
        except Exception:
            log.exception("sip.incoming_failed", call_id=call.id)
            call.reject(500, outcome="failed")

    async def _announce(self, call: SipCall) -> None:
        await self.app[REPOSITORIES].calls.create(None, self._call_meta(call), status="new", id=call.id)
        if call.state == "ended":  # cancelled while its row was being written
            await self.app[REPOSITORIES].calls.set_status(call.id, call.outcome or "cancelled")
            return
        settings = self.settings
        if settings.sip_webhook_url:
            call.dialog.respond(180)
            assert self._http is not None
            assert settings.sip_webhook_secret is not None
            event = webhook.incoming_call_event(call.id, call.dialog.invite.headers)
            delivered = await webhook.deliver(
                self._http, settings.sip_webhook_url, settings.sip_webhook_secret.get_secret_value(), event
            )
            self.metrics.webhooks.labels(outcome="delivered" if delivered else "failed").inc()
            if not delivered:
                call.reject(480, outcome="failed")
                return
            try:
                await asyncio.wait_for(call.decided.wait(), settings.sip_answer_timeout_seconds)
            except TimeoutError:
                log.info("sip.unanswered", call_id=call.id, seconds=settings.sip_answer_timeout_seconds)
                call.reject(480, outcome="unanswered")
        elif settings.sip_dispatch_key is not None:
            body = (
                json.loads(settings.sip_dispatch_session)
                if settings.sip_dispatch_session
                else DEFAULT_CALL_SESSION
            )
            try:
                await self.accept(
                    call, _Dispatcher(self.app), settings.sip_dispatch_key.get_secret_value(), body
                )
            except ApiError as exc:
                log.warning("sip.dispatch_refused", call_id=call.id, status=exc.status, code=exc.code)
                call.reject(
                    403 if exc.status == 403 else 486 if exc.status == 429 else 503, outcome="refused"
                )
        else:
            log.warning(
                "sip.no_route", call_id=call.id, hint="set MEDIA_GATEWAY_SIP_WEBHOOK_URL or _DISPATCH_KEY"
            )
            call.reject(480, outcome="refused")

    def _call_meta(self, call: SipCall) -> dict[str, Any]:
        return {
            "transport": "sip",
            "sip_call_id": call.dialog.call_id,
            "from": call.facts.caller,
            "to": call.facts.called,
            "source": call.facts.source,
            "codec": call.negotiated.codec.name,
            "sip_headers": webhook.redacted_headers(call.dialog.invite.headers),
        }

    # --- call control (the REST handlers and the dispatch rule) -----------------------------------------

    async def accept(self, call: SipCall, request: Any, credential: str, body: Any) -> None:
        """Admit the call's session with `credential` and answer; `ApiError` when it is refused (the call
        keeps ringing: the application may still reject it)."""
        if call.state != "ringing":
            raise ApiError(
                409, f"Call '{call.id}' was already {call.outcome or 'answered'}.", code="call_not_ringing"
            )
        call.state = "answering"
        try:
            admission = await admit(
                request, credential, transport="sip", session_body=body, call=call.facts.as_policy_input()
            )
        except BaseException:
            if call.state == "answering":
                call.state = "ringing"
            raise
        if call.state != "answering":  # the caller hung up meanwhile
            await admission.release()
            raise ApiError(409, f"Call '{call.id}' ended before it was answered.", code="call_not_ringing")
        try:
            await self._answer(call, admission)
        except BaseException:
            await admission.release()
            call.state = "ringing"
            call.reject(500, outcome="failed")
            raise

    async def _answer(self, call: SipCall, admission: Admission) -> None:
        app = self.app
        media = await CallMedia.open(
            self.settings.sip_host, self.rtp_ports, call.negotiated, call, on_late=self.metrics.rtp_late.inc
        )
        session = RealtimeSession(
            session_id=admission.session_id,
            config=admission.config,
            output=SessionOutput(call),
            services=app[ENGINE],
            principal=Principal(key=key_summary(admission.key), ovos=admission.ovos),
            expires_at=admission.expires_at,
            audio_sink=media.track,
        )
        await app[REPOSITORIES].calls.answered(
            call.id, admission.session_id, {"model": admission.config.model}
        )
        app[SESSIONS].add(session)
        await session.start()
        answer = sdp.answer(call.negotiated, self.address, media.port)
        await call.answer(media, session, admission, answer)
        log.info("sip.call_answered", call_id=call.id, codec=media.codec.name, rtp_port=media.port)

    async def _ended(self, call: SipCall) -> None:
        # The outcome is recorded before the call leaves the registries: whoever sees it gone sees its status.
        try:
            await self.app[REPOSITORIES].calls.set_status(call.id, call.outcome or "ended")
        except Exception:
            log.exception("sip.call_status_failed", call_id=call.id)
        finally:
            self._by_id.pop(call.id, None)
            self._by_call_id.pop(call.dialog.call_id, None)
            self.metrics.sip_live_calls.set(len(self._by_id))
            if call.session is not None:
                self.app[SESSIONS].remove(call.session)
