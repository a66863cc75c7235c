"""`GET /v1/telephony/twilio`: a Twilio Media Streams WebSocket as a realtime session.

A phone call reaches the gateway the way Twilio delivers one to any voice agent: the TwiML of the call says
`<Connect><Stream url="wss://gateway/v1/telephony/twilio"><Parameter name="token" value="ek_…"/></Stream>`.
The stream authenticates with that `token` (an `ek_` client secret minted for the call by the application
that answered Twilio's webhook, or an API key; `?token=` in the URL works too), is admitted like any
realtime connection (policy transport `twilio`), and becomes a realtime session:

* its audio formats are `audio/pcmu` both ways: the caller's μ-law goes to the engine's decoder as it came,
  the reply goes back as μ-law `media` frames (`playout.MarkedPlayout`: the provider plays it, echoed marks
  give the playback position, barge-in sends `clear` and truncates the reply at the last echoed mark);
* `dtmf` digits become `input_audio_buffer.dtmf_event_received` on the session (a sideband WebSocket,
  `/v1/realtime?call_id=<call id>`, sees them) and reach the pipeline;
* `stop`, or the socket going away, ends the session; the call is recorded (`calls`, id
  `tw_<CallSid>`) with its stream and call ids.

Twilio has no channel for errors: a stream that cannot be admitted is closed with 1008 and the reason is
logged; frames that are not Twilio messages are logged and dropped (past `MAX_BAD_FRAMES`, the stream is
closed: it is not Twilio).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from media_gateway.app_keys import ENGINE, LIVE_CONNECTIONS, METRICS, REPOSITORIES, SESSIONS
from media_gateway.codecs import InputAudioDecoder
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.observability.metrics import TelephonyMetrics
from media_gateway.persistence.errors import DuplicateRecord
from media_gateway.persistence.models import CallStatus, new_id
from media_gateway.realtime.session import Principal, RealtimeSession
from media_gateway.signaling.admission import Admission, admit
from media_gateway.signaling.client_secrets import key_summary
from media_gateway.signaling.errors import ApiError
from media_gateway.transports.twilio import protocol
from media_gateway.transports.twilio.playout import MarkedPlayout
from media_gateway.transports.websocket import WebSocketOutput

log = get_logger(__name__)

START_TIMEOUT_SECONDS: Final = 10.0  # Twilio sends `connected` and `start` at once
MAX_BAD_FRAMES: Final = 20
MULAW: Final = {"type": "audio/pcmu"}
# The session a phone call opens (or the update applied to the session its client secret was minted for):
# μ-law both ways, server VAD, and transcripts of the caller.
CALL_SESSION: Final[dict[str, Any]] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": MULAW,
            "turn_detection": {"type": "server_vad"},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
        },
        "output": {"format": MULAW},
    },
}
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


class TwilioOutput:
    """The engine's output on a media stream: realtime events have nowhere to go on Twilio (a sideband
    connection gets them); the audio goes through the stream's `MarkedPlayout`."""

    def __init__(self, writer: WebSocketOutput) -> None:
        self.writer = writer

    async def send_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "error":
            log.info("twilio.session_error", code=(event.get("error") or {}).get("code"))

    async def close(self, code: int, reason: str) -> None:
        await self.writer.close(code, reason)


async def twilio_stream(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME_BYTES, heartbeat=30.0, autoping=True)
    await ws.prepare(request)
    request.app[LIVE_CONNECTIONS].add(ws)
    metrics = request.app[METRICS].telephony
    writer = WebSocketOutput(ws, request.transport)
    try:
        start = await _until_start(ws, metrics)
        if start is None:
            metrics.calls.labels(transport="twilio", outcome="refused").inc()
            return ws
        bind_context(stream_sid=start.stream_sid)
        credential = start.custom_parameters.get("token") or request.query.get("token") or ""
        try:
            admission = await admit(
                request,
                credential,
                transport="twilio",
                session_body=CALL_SESSION,
                call=_call_facts(request, start),
            )
        except ApiError as exc:
            log.warning("twilio.refused", status=exc.status, code=exc.code, reason=exc.message)
            metrics.calls.labels(transport="twilio", outcome="refused").inc()
            await writer.close(WSCloseCode.POLICY_VIOLATION, exc.code or "refused")
            return ws
        await _run_call(request, ws, writer, start, admission)
    finally:
        await writer.flush()
        await writer.stop()
        if not ws.closed:
            await ws.close()
    return ws


def _call_facts(request: web.Request, start: protocol.Start) -> dict[str, str]:
    """What the connect policy knows of the call: Twilio's `start` names no numbers, so the TwiML passes
    them as `<Parameter name="From"/"To">` when the application wants the policy to see them."""
    parameters = start.custom_parameters
    return {
        "from": str(parameters.get("From") or parameters.get("from") or ""),
        "to": str(parameters.get("To") or parameters.get("to") or ""),
        "source": _peer_address(request),
    }


def _peer_address(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return str(peer[0]) if peer else "0.0.0.0"  # noqa: S104 - an unknown peer, not a bind address


async def _until_start(ws: web.WebSocketResponse, metrics: TelephonyMetrics) -> protocol.Start | None:
    """The stream's `start` message; None when the stream ended, stalled, sent garbage instead, or
    announced audio other than 8 kHz μ-law."""
    bad = 0
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while True:
                frame = await ws.receive()
                if frame.type != WSMsgType.TEXT:
                    if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        return None
                    bad += 1
                    continue
                try:
                    message = protocol.parse(frame.data)
                except protocol.UnsupportedFormat as exc:
                    log.warning("twilio.unsupported_format", error=str(exc))
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"only 8 kHz mu-law")
                    return None
                except protocol.ProtocolError as exc:
                    log.warning("twilio.bad_frame", error=str(exc))
                    metrics.bad_frames.labels(transport="twilio").inc()
                    bad += 1
                    if bad > MAX_BAD_FRAMES:
                        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"not a media stream")
                        return None
                    continue
                if isinstance(message, protocol.Start):
                    return message
    except TimeoutError:
        log.warning("twilio.no_start", seconds=START_TIMEOUT_SECONDS)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start message")
        return None


async def _run_call(
    request: web.Request,
    ws: web.WebSocketResponse,
    writer: WebSocketOutput,
    start: protocol.Start,
    admission: Admission,
) -> None:
    app = request.app
    metrics = app[METRICS].telephony
    sink = MarkedPlayout(writer.send_text, start.stream_sid, marks=metrics.marks_pending.inc)
    session = RealtimeSession(
        session_id=admission.session_id,
        config=admission.config,
        output=TwilioOutput(writer),
        services=app[ENGINE],
        principal=Principal(key=key_summary(admission.key), ovos=admission.ovos),
        expires_at=admission.expires_at,
        audio_sink=sink,
    )
    call_id = await _record_call(app, admission.session_id, start)
    bind_context(session_id=session.id, call_id=call_id)
    app[SESSIONS].add(session)
    status: CallStatus = "failed"
    try:
        await session.start()
        log.info("twilio.call_started", call_sid=start.call_sid)
        status = await _receive(ws, session, sink, metrics)
    finally:
        sink.close()
        metrics.calls.labels(transport="twilio", outcome=status).inc()
        await session.close()
        try:
            await app[REPOSITORIES].calls.set_status(call_id, status)
        finally:
            await admission.release()
            app[SESSIONS].remove(session)
        log.info(
            "twilio.call_ended",
            status=status,
            marks_sent=sink.marks_sent,
            marks_acknowledged=sink.marks_acknowledged,
        )


async def _record_call(app: web.Application, session_id: str, start: protocol.Start) -> str:
    """The call's row: `tw_<CallSid>`, so the application that knows the CallSid can attach a sideband."""
    meta = {
        "transport": "twilio",
        "stream_sid": start.stream_sid,
        "call_sid": start.call_sid,
        "account_sid": start.account_sid,
    }
    calls = app[REPOSITORIES].calls
    if _CALL_SID.match(start.call_sid):
        try:
            return (await calls.create(session_id, meta, status="connected", id=f"tw_{start.call_sid}")).id
        except DuplicateRecord:  # the same call streamed again: a row of its own
            pass
    return (await calls.create(session_id, meta, status="connected", id=new_id("tw"))).id


async def _receive(
    ws: web.WebSocketResponse, session: RealtimeSession, sink: MarkedPlayout, metrics: TelephonyMetrics
) -> CallStatus:
    """Feed the stream to the session until it stops; the call's final status."""
    decoder = InputAudioDecoder(MULAW)
    bad = 0
    while True:
        frame = await ws.receive()
        if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return "ended"  # the provider hung up without `stop`
        if frame.type == WSMsgType.ERROR:
            return "failed"
        if frame.type != WSMsgType.TEXT:
            bad += 1
            continue
        try:
            message = protocol.parse(frame.data)
        except protocol.ProtocolError as exc:
            bad += 1
            metrics.bad_frames.labels(transport="twilio").inc()
            log.warning("twilio.bad_frame", error=str(exc), bad_frames=bad)
            if bad > MAX_BAD_FRAMES:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"not a media stream")
                return "failed"
            continue
        if isinstance(message, protocol.Media):
            if message.track == "inbound":
                await session.push_frames(decoder.decode(message.payload))
        elif isinstance(message, protocol.Mark):
            sink.acknowledge(message.name)
        elif isinstance(message, protocol.Dtmf):
            metrics.dtmf.labels(transport="twilio").inc()
            await session.dtmf(message.digit)
        elif isinstance(message, protocol.Stop):
            return "ended"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/telephony/twilio", twilio_stream)
