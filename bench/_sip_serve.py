"""The child process of `bench/sip_calls.py` (`--serve`): the gateway app with its SIP endpoint answering
every call by the dispatch rule, a responder on the bus, a bare SIP/RTP endpoint (the baseline), and the
control route the bench reads its counters from (`POST /bench/info`).

The gateway's calls: the session of the dispatch rule has `turn_detection: null`, so every inbound frame goes
to the bus; the child sends the call's session a `response.create` as soon as the call is answered and again
on each `response.done` (what an application's sideband connection would do, without its WebSocket), and the
responder answers each with `response_seconds` of synthetic voice at real time. The call thus carries speech
both ways all the time, as the WebRTC bench's calls do.

The bare endpoint: a minimal SIP user agent on a second UDP port (the gateway's SIP parser and SDP
negotiation, which run before the measured window) whose calls do only the media work: receive RTP, decode
μ-law to 16 kHz 20 ms frames (`InputAudioDecoder`, as the gateway), and every 20 ms encode 20 ms of a 440 Hz
tone to μ-law (FFmpeg's encoder, as the gateway) and send it as an RTP packet, one paced task per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import numpy as np
from av.audio.frame import AudioFrame

from bench._responder import voiced_responder
from media_gateway.codecs import InputAudioDecoder
from media_gateway.codecs.resample import G711Encoder
from media_gateway.transports.sip import message as sip
from media_gateway.transports.sip import rtp, sdp

RESPONSE_CREATE = json.dumps({"type": "response.create"})
DISPATCH_SESSION = json.dumps(
    {
        "type": "realtime",
        "audio": {
            "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
            "output": {"format": {"type": "audio/pcmu"}},
        },
    }
)
RTP_PORTS = "41000-42998"  # not the default range: a test suite's gateways may be using that one
MAX_CALLS = 2000


def serve(port: int, database_url: str, response_seconds: float) -> None:
    from aiohttp import web

    from media_gateway.app import build_app
    from media_gateway.app_keys import BUS, REPOSITORIES, SIP
    from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
    from media_gateway.observability.logging import configure_logging
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.migrate import upgrade_to_head
    from media_gateway.settings import load_settings
    from media_gateway.transports.sip.calls import SipCall
    from media_gateway.transports.sip.gateway import SessionOutput, SipGateway
    from media_gateway.transports.webrtc.outbound import PacedAudioTrack

    asyncio.run(_migrate(Database, upgrade_to_head, database_url))
    key = generate_api_key()
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        port=port,
        speech_pipeline="none",
        log_level="warning",
        sip_port=0,
        sip_host="127.0.0.1",
        sip_rtp_ports=RTP_PORTS,
        sip_codecs="pcmu",
        sip_dispatch_key=key,
        sip_dispatch_session=DISPATCH_SESSION,
        sip_max_calls=MAX_CALLS,
    )
    configure_logging("warning", "console")
    app = build_app(settings)
    counters = {"in_frames": 0, "responses": 0, "frames_out": 0, "reply_frames_out": 0}
    lags: list[float] = []  # the event loop's lateness waking a 20 ms timer, since the last /bench/info

    # Inbound: frames the calls' media hand to their sessions.
    original_audio = SipCall.audio

    async def audio(self: SipCall, frames: list[bytes]) -> None:
        counters["in_frames"] += len(frames)
        await original_audio(self, frames)

    SipCall.audio = audio  # type: ignore[method-assign]

    # Outbound: the frames the calls' tracks hand to the RTP sender, and how many of them are reply audio.
    original_recv = PacedAudioTrack.recv

    async def recv(self: PacedAudioTrack) -> AudioFrame:
        frame = await original_recv(self)
        counters["frames_out"] += 1
        counters["reply_frames_out"] += self.playing
        return frame

    PacedAudioTrack.recv = recv  # type: ignore[method-assign]

    # Speech out all the time: a response.create when the call is answered, another on each response.done.
    original_answer = SipGateway._answer

    async def answer(self: SipGateway, call: SipCall, admission: Any) -> None:
        await original_answer(self, call, admission)
        if call.session is not None:
            call.spawn(call.session.handle_text(RESPONSE_CREATE), "bench-response")

    SipGateway._answer = answer  # type: ignore[method-assign]
    original_send = SessionOutput.send_event

    async def send_event(self: SessionOutput, event: dict[str, Any]) -> None:
        await original_send(self, event)
        if event.get("type") == "response.done":
            counters["responses"] += 1
            call: SipCall = self._call
            if call.session is not None and call.state == "answered":
                call.spawn(call.session.handle_text(RESPONSE_CREATE), "bench-response")

    SessionOutput.send_event = send_event  # type: ignore[method-assign]

    bare = BareEndpoint()

    async def info(_request: web.Request) -> web.Response:
        gateway = app[SIP]
        recent = sorted(lags)
        lags.clear()
        return web.json_response(
            {
                "loop_lag_p99": recent[int(len(recent) * 0.99)] if recent else 0.0,
                "loop_lag_max": recent[-1] if recent else 0.0,
                "sip": gateway.port,
                "bare": bare.port,
                "calls": len(gateway._by_id),
                "bare_calls": len(bare.calls),
                "in_frames": counters["in_frames"],
                "bare_in_frames": bare.in_frames,
                "responses": counters["responses"],
                "frames_out": counters["frames_out"],
                "reply_frames_out": counters["reply_frames_out"],
                "packets_out": sum(c.media.packets_out for c in gateway._by_id.values() if c.media),
            }
        )

    async def context(app_: web.Application) -> AsyncIterator[None]:
        await app_[REPOSITORIES].api_keys.create(
            name="bench-dispatch", scopes=["admin"], key_hash=hash_credential(key), prefix=display_prefix(key)
        )
        await bare.start()

        async def watch_loop() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due = loop.time() + 0.02
                await asyncio.sleep(0.02)
                lags.append(loop.time() - due)

        watcher = asyncio.create_task(watch_loop())
        async with voiced_responder(app_[BUS], response_seconds):
            yield
        watcher.cancel()
        bare.close()

    app.cleanup_ctx.append(context)
    app.router.add_post("/bench/info", info)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _migrate(database_cls: Any, upgrade: Any, url: str) -> None:
    db = database_cls(url)
    await upgrade(db)
    await db.dispose()


# --- the baseline: SIP signalling enough to set calls up, then only the codec and socket work -------------


def _tone_frames() -> list[bytes]:
    """One second of a 440 Hz tone, 8 kHz s16le, as fifty 20 ms frames (320 bytes)."""
    t = np.arange(8_000) / 8_000
    pcm = (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16).tobytes()
    return [pcm[i : i + 320] for i in range(0, len(pcm), 320)]


class BareCall(asyncio.DatagramProtocol):
    def __init__(self, endpoint: BareEndpoint) -> None:
        self.endpoint = endpoint
        self.decoder = InputAudioDecoder({"type": "audio/pcmu"})
        self.encoder = G711Encoder("pcm_mulaw")
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] = ("127.0.0.1", 0)
        self.answer = b""
        self.response: sip.SipMessage | None = None
        self.sender: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            packet = rtp.parse(data)
        except rtp.RtpError:
            return
        if packet.payload_type == 0:
            self.endpoint.in_frames += len(self.decoder.decode(packet.payload))

    async def send(self) -> None:
        loop = asyncio.get_running_loop()
        tone = _tone_frames()
        ssrc, sequence, timestamp = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        start, sent = loop.time(), 0
        while self.transport is not None:
            due = start + sent * 0.02
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 0.2:  # fell far behind: restart the schedule, as the gateway's track does
                start = now - sent * 0.02
            payload = self.encoder.encode(tone[sent % len(tone)])
            timestamp = (timestamp + 160) & 0xFFFFFFFF
            packet = rtp.RtpPacket(0, sequence, timestamp, ssrc, payload)
            sequence = (sequence + 1) & 0xFFFF
            self.transport.sendto(packet.encode(), self.remote)
            sent += 1

    def close(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class BareEndpoint(asyncio.DatagramProtocol):
    """INVITE → 200 with an SDP answer (PCMU) and media at once; retransmitted INVITE → the same 200;
    BYE → 200 and the call's media stops. Nothing else."""

    def __init__(self) -> None:
        self.calls: dict[str, BareCall] = {}
        self.in_frames = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = transport.get_extra_info("sockname")[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        try:
            request = sip.parse(data)
        except sip.SipParseError:
            return
        if not request.is_request:
            return
        call = self.calls.get(request.call_id)
        if request.method == "INVITE":
            if call is not None:  # a retransmission: the 200 was lost or is late
                if call.response is not None:
                    self._send(call.response, source)
                return
            task = asyncio.create_task(self._invite(request, source))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif request.method == "BYE":
            self._send(sip.response_to(request, 200), source)
            if call is not None:
                call.close()
                del self.calls[request.call_id]

    async def _invite(self, request: sip.SipMessage, source: tuple[str, int]) -> None:
        try:
            negotiated = sdp.negotiate(request.body, ("pcmu",))
        except sdp.SdpError as exc:
            self._send(sip.response_to(request, exc.status, to_tag=sip.new_tag()), source)
            return
        call = BareCall(self)
        self.calls[request.call_id] = call
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: call, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        call.remote = (negotiated.remote_address, negotiated.remote_port)
        response = sip.response_to(request, 200, to_tag=sip.new_tag())
        response.headers += [
            ("Contact", f"<sip:bare@127.0.0.1:{self.port}>"),
            ("Content-Type", "application/sdp"),
        ]
        response.body = sdp.answer(negotiated, "127.0.0.1", port)
        call.response = response
        self._send(response, source)
        call.sender = asyncio.create_task(call.send())

    def _send(self, message: sip.SipMessage, address: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(message.encode(), address)

    def close(self) -> None:
        for call in self.calls.values():
            call.close()
        self.calls.clear()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
