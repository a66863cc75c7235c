"""The client side of `bench/webrtc_media.py`: aiortc peers that talk to the gateway child (or to its
bare-aiortc endpoint), and the measurements they drive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench._gateway import cpu_seconds
from bench._webrtc_tracks import SpeechTrack, voiced
from media_gateway.codecs.frames import PlaybackFramer

RETRIES: list[str] = []  # refused POSTs retried (e.g. SQLite "database is locked" under load)


@dataclass(frozen=True)
class Sizes:
    """How many calls, and for how long, each part of a run uses."""

    response_seconds: float = 4.0  # synthetic voice the child's responder streams per response.create
    warmup_s: float = 3.0  # a load phase: calls connected, then this long before the window
    window_s: float = 6.0  # ... measured over this long
    settle_s: float = 1.5  # ... and this long after its calls are closed
    phases: tuple[int, ...] = (1, 10, 40)  # N of the bare/gateway pairs; the last is the A/B's N
    up: tuple[int, ...] = (60, 80)  # gateway N tried when the last of `phases` held, until one falls behind
    down: tuple[int, ...] = (30, 20)  # ... and when it fell behind, until one holds
    idle_calls: int = 40  # memory per idle call: this many connected calls
    idle_settle_s: float = 2.0
    answer_rounds: int = 5  # SDP answer times: this many rounds
    answer_offers: int = 10  # ... of this many concurrent offers
    answer_pause_s: float = 1.0
    profile_calls: int = 10  # the profile: this many calls
    profile_warmup_s: float = 2.0
    profile_s: float = 5.0


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Peer:
    def __init__(self, pcm: bytes, *, bare: bool, idle: bool = False) -> None:
        self.idle = idle  # connected, sending audio, but never asking for a response
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(SpeechTrack(pcm))
        self.bare = bare
        self.channel = None if bare else self.pc.createDataChannel("oai-events")
        self.opened = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda track: self.tasks.append(asyncio.create_task(self._drain(track))))
        if self.channel is not None:
            self.channel.on("open", self.opened.set)
            self.channel.on("message", self._on_message)

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    def _on_message(self, message: str) -> None:
        event_type = json.loads(message)["type"]
        if self.idle:
            return
        if event_type == "session.created":
            self._send(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
            self._send({"type": "response.create"})
        elif event_type == "response.done":
            self._send({"type": "response.create"})

    def _send(self, event: dict[str, Any]) -> None:
        assert self.channel is not None
        self.channel.send(json.dumps(event))

    async def connect(self, http: aiohttp.ClientSession, base: str, key: str) -> float:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        path = "/bench/bare" if self.bare else "/v1/realtime/calls"
        for _attempt in range(5):
            started = time.perf_counter()
            async with http.post(
                base + path,
                data=self.pc.localDescription.sdp.encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
            ) as response:
                answer = await response.text()
            elapsed = time.perf_counter() - started
            if response.status == 201:
                break
            RETRIES.append(f"{response.status} {answer[:120]}")
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"no answer after 5 attempts: {RETRIES[-1]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        if not self.bare:
            await asyncio.wait_for(self.opened.wait(), 20)
        return elapsed

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()


async def control(http: aiohttp.ClientSession, base: str, action: str, **query: str) -> dict[str, Any]:
    async with http.post(base + f"/bench/{action}", params=query) as response:
        return dict(await response.json())


async def connect_all(http: aiohttp.ClientSession, base: str, key: str, peers: list[Peer]) -> None:
    """Connect `peers`, 5 offers at a time."""
    for start in range(0, len(peers), 5):
        await asyncio.gather(*(p.connect(http, base, key) for p in peers[start : start + 5]))


async def phase(
    http: aiohttp.ClientSession, base: str, key: str, pid: int, n: int, sizes: Sizes, *, bare: bool
) -> dict[str, Any]:
    pcm = voiced(3.0, f0=120.0)
    peers = [Peer(pcm, bare=bare) for _ in range(n)]
    try:
        await connect_all(http, base, key, peers)
        await asyncio.sleep(sizes.warmup_s)
        before = await control(http, base, "reset")
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(sizes.window_s)
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
        after = await control(http, base, "reset")
        seconds = t1 - t0
        in_p = percentiles([x * 1000 for x in after["in"]])
        out_p = percentiles([x * 1000 for x in after["out"]])
        in_rate = after["in_frames"] / (n * seconds * 50)
        out_rate = after["out_frames"] / (n * seconds * 50) if not bare else 1.0
        usage = (cpu1 - cpu0) / seconds
        return {
            "n": n,
            "bare": bare,
            "cpu_per_session_s": (cpu1 - cpu0) / (n * seconds),
            "core_usage": usage,
            "in_ms": in_p,
            "out_ms": out_p,
            "in_rate": in_rate,
            "out_rate": out_rate,
            "holds": usage < 0.9 and in_rate >= 0.95 and out_rate >= 0.97,
            "_": before,
        }
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        if bare:
            await control(http, base, "bare_close")
        await asyncio.sleep(sizes.settle_s)


def row(result: dict[str, Any]) -> str:
    return (
        f"{'bare aiortc' if result['bare'] else 'gateway':12} N={result['n']:3d}  "
        f"CPU {result['cpu_per_session_s']:.4f} s/session-s (core {result['core_usage'] * 100:4.0f} %)  "
        f"in p50/p99 {result['in_ms'][0]:5.1f}/{result['in_ms'][1]:5.1f} ms  "
        f"out p50/p99 {result['out_ms'][0]:5.1f}/{result['out_ms'][1]:5.1f} ms  "
        f"in {result['in_rate'] * 100:3.0f} % out {result['out_rate'] * 100:3.0f} %  "
        f"{'holds' if result['holds'] else 'FALLS BEHIND'}"
    )


async def answer_times(
    http: aiohttp.ClientSession, base: str, key: str, sizes: Sizes
) -> list[tuple[float, float]]:
    await control(http, base, "reset")
    times: list[float] = []
    for _ in range(sizes.answer_rounds):
        peers = [Peer(voiced(1.0), bare=False, idle=True) for _ in range(sizes.answer_offers)]
        try:
            times += await asyncio.gather(*(p.connect(http, base, key) for p in peers))
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        await asyncio.sleep(sizes.answer_pause_s)
    server = await control(http, base, "reset")
    return [
        percentiles([t * 1000 for t in times]),
        percentiles([t * 1000 for t in server["answer"]]),
        percentiles([t * 1000 for t in server["aiortc_answer"]]),
    ]


async def idle_memory(http: aiohttp.ClientSession, base: str, key: str, sizes: Sizes) -> float:
    before: int = (await control(http, base, "reset"))["rss_now_kb"]
    peers = [Peer(voiced(1.0), bare=False, idle=True) for _ in range(sizes.idle_calls)]
    try:
        await connect_all(http, base, key, peers)
        await asyncio.sleep(sizes.idle_settle_s)
        after: int = (await control(http, base, "reset"))["rss_now_kb"]
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    return (after - before) / sizes.idle_calls / 1024


def send_path_microbench() -> list[str]:
    """Per-20 ms-frame costs of the pieces of the send path, in this process."""
    import aiortc.rtp
    from aiortc.codecs.opus import OpusEncoder

    from media_gateway.transports.webrtc.patches import _ORIGINAL, compute_audio_level_dbov

    framer = PlaybackFramer(48_000, "mono")
    frames = framer.push(voiced(2.0), 16_000)
    encoder = OpusEncoder()
    lines = []

    def timed(label: str, fn: Any) -> None:
        start = time.process_time()
        for frame in frames:
            fn(frame)
        lines.append(f"  {label:52} {(time.process_time() - start) / len(frames) * 1e6:7.1f} µs/frame")

    timed("aiortc Opus encode (libopus, 96 kbit/s stereo, compl. 10)", lambda f: encoder.encode(f))
    timed("aiortc audio level, pure Python (original)", _ORIGINAL)
    timed("audio level, numpy (webrtc_fast_audio_level)", compute_audio_level_dbov)
    timed("16 kHz PCM -> 48 kHz frame (PlaybackFramer)", lambda f: framer.push(bytes(640), 16_000))
    packet = aiortc.rtp.RtpPacket(payload_type=96, payload=bytes(120))
    timed("RTP packet serialize", lambda f: packet.serialize())
    return lines
