"""A SIP call's audio: one RTP socket, the negotiated codec both ways, paced speech out.

In: RTP of the negotiated payload type is decoded (G.711 or Opus) into the pipeline's 16 kHz 20 ms frames;
RFC 4733 telephone-events become digits; anything else (comfort noise, other payload types, garbage) is
counted and dropped. Packets older than one already received are dropped as late rather than played out
of order. Out: the call's `PacedAudioTrack` (the engine's `AudioSink`) yields a frame every 20 ms at the
codec's rate, silence when no reply plays, so the RTP clock never stops; each becomes one RTP packet. The
marker bit is set on the first packet of each talk spurt only (RFC 3551 §4.1); some trunk jitter buffers
resynchronise on every marked packet, which a sender that marks all of them makes them do constantly.

While the caller holds the call (a re-INVITE with `sendonly`/`inactive`), the track keeps its clock but
nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from media_gateway.codecs import FrameResampler, InputAudioDecoder
from media_gateway.observability.logging import get_logger
from media_gateway.transports.sip import rtp
from media_gateway.transports.sip.sdp import Codec, Negotiated
from media_gateway.transports.webrtc.outbound import PacedAudioTrack

log = get_logger(__name__)

MAX_QUEUED_FRAMES: Final = 250  # 5 s of caller audio waiting for the engine; older frames are dropped
OPUS_BITRATE: Final = 32_000  # speech, mono


class MediaEvents(Protocol):
    """Who the call's media reports to (the call)."""

    async def audio(self, frames: list[bytes]) -> None: ...
    async def digit(self, digit: str) -> None: ...


class _Decoder(Protocol):
    def decode(self, payload: bytes) -> list[bytes]: ...


class _Encoder(Protocol):
    def encode(self, frame: AudioFrame) -> bytes: ...


class _G711Decoder:
    def __init__(self, name: str) -> None:
        self._decoder = InputAudioDecoder({"type": f"audio/{name}"})

    def decode(self, payload: bytes) -> list[bytes]:
        return self._decoder.decode(payload)


class _OpusDecoder:
    def __init__(self) -> None:
        ctx = av.CodecContext.create("opus", "r")
        assert isinstance(ctx, AudioCodecContext)
        ctx.sample_rate = 48_000
        self._ctx = ctx
        self._resampler: FrameResampler | None = None

    def decode(self, payload: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for frame in self._ctx.decode(av.Packet(payload)):
            if self._resampler is None:  # the decoder's layout is known once it has decoded a packet
                self._resampler = FrameResampler(frame.sample_rate, frame.layout.name)
            frames += self._resampler.push(frame)
        return frames


class _CodecEncoder:
    """PCMU/PCMA (8 kHz frames in) or Opus (48 kHz frames in), via FFmpeg's encoders."""

    def __init__(self, codec: Codec) -> None:
        name = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "opus": "libopus"}[codec.name]
        ctx = av.CodecContext.create(name, "w")
        assert isinstance(ctx, AudioCodecContext)
        ctx.sample_rate = 48_000 if codec.name == "opus" else 8_000
        ctx.layout = "mono"
        ctx.format = "s16"
        if codec.name == "opus":
            ctx.bit_rate = OPUS_BITRATE
            ctx.options = {"application": "voip", "frame_duration": "20"}
        self._ctx = ctx

    def encode(self, frame: AudioFrame) -> bytes:
        return b"".join(bytes(packet) for packet in self._ctx.encode(frame))


class _Receiver(asyncio.DatagramProtocol):
    """The socket's protocol; the socket is bound before its call's media exists (`media` is set then)."""

    media: CallMedia | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.media is not None:
            self.media.received(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("sip.rtp_socket_error", error=str(exc))


async def bind_rtp(
    host: str, ports: tuple[int, int], protocol: Callable[[], asyncio.DatagramProtocol]
) -> tuple[asyncio.DatagramTransport, int]:
    """A UDP socket on an even port of the range (RTCP would take the odd one above), tried from a random
    start so concurrent calls rarely collide. OSError when every port is taken."""
    loop = asyncio.get_running_loop()
    low, high = ports
    candidates = list(range(low + low % 2, high + 1, 2))
    if not candidates:
        raise OSError("the RTP port range holds no even port")
    start = random.randrange(len(candidates))
    last: OSError | None = None
    for index in range(len(candidates)):
        port = candidates[(start + index) % len(candidates)]
        try:
            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(host, port))
        except OSError as exc:
            last = exc
            continue
        return transport, port
    raise OSError(f"no free RTP port in {low}-{high}") from last


class CallMedia:
    """The RTP leg of one call. `start()` begins sending; `close()` stops everything it started."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        port: int,
        negotiated: Negotiated,
        events: MediaEvents,
        *,
        on_late: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.transport = transport
        self.port = port
        self.negotiated = negotiated
        self.codec = negotiated.codec
        self._events = events
        self._on_late = on_late
        opus = self.codec.name == "opus"
        self.track = PacedAudioTrack(rate=48_000 if opus else 8_000)
        self.stats = rtp.RtpStats(self.codec.clock_rate)
        self._decoder: _Decoder = _OpusDecoder() if opus else _G711Decoder(self.codec.name)
        self._encoder = _CodecEncoder(self.codec)
        self._samples_per_packet = 960 if opus else 160
        self._dtmf = rtp.DtmfReceiver()
        self._queue: deque[bytes] = deque()
        self._digits: deque[str] = deque()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._talking = False
        self.accepting = False
        self.last_packet_at = time.monotonic()
        self.packets_in = 0
        self.packets_out = 0
        self.bad_packets = 0
        self.dropped_frames = 0
        self.other_payloads = 0

    @classmethod
    async def open(
        cls,
        host: str,
        ports: tuple[int, int],
        negotiated: Negotiated,
        events: MediaEvents,
        **kwargs: Callable[[int], None],
    ) -> CallMedia:
        receiver = _Receiver()
        transport, port = await bind_rtp(host, ports, lambda: receiver)
        media = cls(transport, port, negotiated, events, **kwargs)
        receiver.media = media
        return media

    def update(self, negotiated: Negotiated) -> None:
        """A re-INVITE: a new remote address, direction (hold) or payload types; the codec stays."""
        self.negotiated = negotiated

    def start(self) -> None:
        self.accepting = True
        self._tasks = [
            asyncio.create_task(self._send(), name="sip-rtp-send"),
            asyncio.create_task(self._pump(), name="sip-rtp-pump"),
        ]

    async def close(self) -> None:
        self.accepting = False
        self.track.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.transport.close()

    # --- receive ----------------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        if not self.accepting:
            return
        try:
            packet = rtp.parse(data)
        except rtp.RtpError:
            self.bad_packets += 1
            return
        self.packets_in += 1
        self.last_packet_at = time.monotonic()
        if packet.payload_type == self.negotiated.dtmf_payload_type:
            self.stats.accept(packet, self.last_packet_at, timing=False)
            digit = self._dtmf.push(packet)
            if digit is not None:
                self._digits.append(digit)
                self._ready.set()
            return
        if packet.payload_type != self.codec.payload_type:
            self.other_payloads += 1  # comfort noise and the like
            return
        if not self.stats.accept(packet, time.monotonic()):
            self._on_late(1)
            return
        try:
            frames = self._decoder.decode(packet.payload)
        except (av.error.FFmpegError, ValueError):
            self.bad_packets += 1
            return
        overflow = len(self._queue) + len(frames) - MAX_QUEUED_FRAMES
        for _ in range(max(0, overflow)):
            self._queue.popleft()
            self.dropped_frames += 1
        self._queue.extend(frames)
        self._ready.set()

    async def _pump(self) -> None:
        """Hand the caller's frames and digits to the call, in order, off the socket's callback."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._digits:
                await self._events.digit(self._digits.popleft())
            if self._queue:
                frames = list(self._queue)
                self._queue.clear()
                await self._events.audio(frames)

    # --- send -------------------------------------------------------------------------------------------

    async def _send(self) -> None:
        while True:
            frame = await self.track.recv()
            payload = self._encoder.encode(frame)
            self._timestamp = (self._timestamp + self._samples_per_packet) & 0xFFFFFFFF
            marker = self.track.playing and not self._talking
            self._talking = self.track.playing
            if self.negotiated.on_hold or not payload:
                continue
            packet = rtp.RtpPacket(
                self.codec.payload_type, self._sequence, self._timestamp, self._ssrc, payload, marker
            )
            self._sequence = (self._sequence + 1) & 0xFFFF
            self.transport.sendto(
                packet.encode(), (self.negotiated.remote_address, self.negotiated.remote_port)
            )
            self.packets_out += 1
