"""WebRTC media bench: gateway CPU and added latency for two-way calls, against bare aiortc, same run.

    .venv/bin/python bench/webrtc_media.py            # prints a report; no asserts; ~4-5 min on 2 cores

Setup. The gateway runs in a child process (`--serve`, pinned to core 0) built by `build_app` with
`MEDIA_GATEWAY_SPEECH_PIPELINE=none` and a small responder on the bus: every `response.create` is answered
with 4 s of synthetic voiced audio (16 kHz, 20 ms chunks published at real time), then `response.done`.
The client peers (aiortc, in this process, pinned to core 1) play speech on their track continuously and
send `response.create` again whenever a response is done, with `turn_detection: null` (no VAD), so every
call carries speech both ways all the time. The same child also serves a *bare aiortc* endpoint: a peer
that only decodes + resamples the inbound track (the gateway's `FrameResampler`) and sends a 440 Hz tone
from a paced track: the floor the gateway is compared to.

Measured in the child: process CPU (all threads) over a steady window; inbound added latency = RTP packet
arrival (aiortc receiver) → its 16 kHz frames published on the bus (bare: → resampled); outbound added
latency = the engine hands pipeline audio to the track (`AudioSink.play`) → the frame is handed to aiortc's
RTP sender (encode, ~0.12 ms, follows). "Holds real time": the child's CPU stays under 90 % of its core,
the track sends ≥ 97 % of 50 frames/s per call, and the inbound path delivers ≥ 95 % of 50 frames/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from av.audio.frame import AudioFrame  # noqa: E402

from media_gateway.codecs.frames import FrameResampler, PlaybackFramer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S, WINDOW_S = 3.0, 6.0
RESPONSE_SECONDS = 4.0
RETRIES: list[str] = []  # refused POSTs retried (e.g. SQLite "database is locked" under load)


def voiced(seconds: float, rate: int = 16_000, f0: float = 140.0) -> bytes:
    """A speech-like signal: a harmonic series with a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (wave * envelope * 2500).astype(np.int16).tobytes()


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# ================================================ the gateway child process ================================


def serve(port: int, database_url: str) -> None:
    from aiohttp import web
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    from media_gateway.app import build_app
    from media_gateway.app_keys import BUS, CALLS, METRICS, REPOSITORIES
    from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
    from media_gateway.observability.logging import configure_logging
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.migrate import upgrade_to_head
    from media_gateway.pipeline.messages import INPUT_TOPIC, OUTPUT_TOPIC, audio_headers, event_payload
    from media_gateway.settings import load_settings
    from media_gateway.transports.webrtc import patches
    from media_gateway.transports.webrtc.peer import WebRtcCall

    asyncio.run(_migrate(Database, upgrade_to_head, database_url))
    settings = load_settings(
        _env_file=None, database_url=database_url, port=port, speech_pipeline="none", log_level="warning"
    )
    configure_logging("warning", "console")
    app = build_app(settings)
    stats: dict[str, Any] = {"in": deque(maxlen=200_000), "out": deque(maxlen=200_000), "in_frames": 0}
    arrivals: dict[int, dict[int, float]] = {}

    # Inbound probe: arrival time of each RTP packet by receiver and timestamp.
    original_rtp = RTCRtpReceiver._handle_rtp_packet

    async def on_rtp(self: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
        table = arrivals.setdefault(id(self), {})
        table[packet.timestamp] = time.perf_counter()
        if len(table) > 500:
            for stale in list(table)[:250]:
                del table[stale]
        await original_rtp(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = on_rtp  # type: ignore[method-assign]

    def probe_for(receiver: RTCRtpReceiver) -> Any:
        def probe(pts_list: list[int]) -> None:
            now = time.perf_counter()
            origin = receiver._RTCRtpReceiver__timestamp_mapper._origin  # type: ignore[attr-defined]
            table = arrivals.get(id(receiver), {})
            for pts in pts_list:
                arrived = table.pop((pts + origin) & 0xFFFFFFFF, None)
                if arrived is not None:
                    stats["in"].append(now - arrived)
            stats["in_frames"] += len(pts_list)

        return probe

    original_on_track = WebRtcCall._on_track

    def on_track(self: WebRtcCall, track: Any) -> None:
        original_on_track(self, track)
        if self.inbound is not None and self.inbound.track is track:
            receiver = next(r for r in self.pc.getReceivers() if r.track is track)
            self.inbound.latency_probe = probe_for(receiver)
        self.track.latency_probe = stats["out"].append

    WebRtcCall._on_track = on_track  # type: ignore[method-assign]

    # Server-side answer times: the whole POST handler, and aiortc's part of it (offer -> answer SDP).
    stats["answer"], stats["aiortc_answer"] = [], []
    histogram = app[METRICS].webrtc.answer_seconds
    observe = histogram.observe
    histogram.observe = lambda amount, exemplar=None: (stats["answer"].append(amount), observe(amount))[1]  # type: ignore[method-assign]
    original_answer = WebRtcCall.answer

    async def timed_answer(self: WebRtcCall, offer: Any, gather_timeout: float) -> str:
        started = time.perf_counter()
        try:
            return await original_answer(self, offer, gather_timeout)
        finally:
            stats["aiortc_answer"].append(time.perf_counter() - started)

    WebRtcCall.answer = timed_answer  # type: ignore[method-assign]

    bare: set[RTCPeerConnection] = set()
    bare_tasks: set[asyncio.Task[None]] = set()

    async def bare_offer(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        bare.add(pc)

        @pc.on("track")
        def on_bare_track(track: MediaStreamTrack) -> None:
            receiver = next(r for r in pc.getReceivers() if r.track is track)
            probe = probe_for(receiver)

            async def read() -> None:
                resampler = FrameResampler()
                while True:
                    try:
                        frame = await track.recv()
                    except MediaStreamError:
                        return
                    assert isinstance(frame, AudioFrame)  # an audio track's frames
                    resampler.push(frame)
                    if frame.pts is not None:
                        probe([frame.pts])

            task = asyncio.create_task(read())
            bare_tasks.add(task)
            task.add_done_callback(bare_tasks.discard)

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        pc.addTrack(ToneTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp")

    async def bare_close(_request: web.Request) -> web.Response:
        await asyncio.gather(*(pc.close() for pc in bare), return_exceptions=True)
        bare.clear()
        return web.json_response({})

    async def key(_request: web.Request) -> web.Response:
        value = generate_api_key()
        await app[REPOSITORIES].api_keys.create(
            name="bench", scopes=["admin"], key_hash=hash_credential(value), prefix=display_prefix(value)
        )
        return web.json_response({"key": value})

    profiler = cProfile.Profile()

    async def control(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        calls = list(app[CALLS]._calls.values())
        snapshot = {
            "cpu": sum(os.times()[:2]),
            "rss_now_kb": _rss_now_kb(),
            "in": list(stats["in"]),
            "out": list(stats["out"]),
            "in_frames": stats["in_frames"],
            "out_frames": sum(call.track.frames_sent for call in calls),
            "calls": len(calls),
            "answer": list(stats["answer"]),
            "aiortc_answer": list(stats["aiortc_answer"]),
        }
        if action == "reset":
            stats["in"].clear()
            stats["out"].clear()
            stats["in_frames"] = 0
            stats["answer"].clear()
            stats["aiortc_answer"].clear()
            for call in calls:
                call.track.frames_sent = 0
        elif action == "fast_level":
            patches.install_fast_audio_level(request.query.get("on") == "1")
        elif action == "profile_start":
            profiler.enable()
        elif action == "profile_stop":
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
            snapshot["profile"] = out.getvalue()
        return web.json_response(snapshot)

    async def responder(app_: web.Application) -> Any:
        bus = app_[BUS]
        subscription = bus.subscribe(INPUT_TOPIC)
        streams: dict[str, asyncio.Task[None]] = {}
        chunk = voiced(RESPONSE_SECONDS)

        async def stream(session_id: str, response_id: str) -> None:
            start = time.perf_counter()
            for seq, offset in enumerate(range(0, len(chunk), 640)):
                delay = start + seq * 0.02 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                headers = audio_headers(16_000, response_id=response_id, seq=str(seq))
                await bus.publish(OUTPUT_TOPIC, session_id, chunk[offset : offset + 640], headers)
            payload, headers = event_payload("response.done", response_id=response_id, status="completed")
            await bus.publish(OUTPUT_TOPIC, session_id, payload, headers)

        async def run() -> None:
            async for message in subscription:
                if message.headers.get("kind") != "event":
                    continue
                event = json.loads(message.payload)
                if event["type"] == "response.create":
                    task = asyncio.create_task(stream(message.key, event["response_id"]))
                    streams[message.key] = task
                elif event["type"] in ("response.cancel", "session.close"):
                    running = streams.pop(message.key, None)
                    if running is not None:
                        running.cancel()
                    if event["type"] == "response.cancel":
                        payload, headers = event_payload(
                            "response.done", response_id=event["response_id"], status="cancelled"
                        )
                        await bus.publish(OUTPUT_TOPIC, message.key, payload, headers)

        runner = asyncio.create_task(run())
        yield
        runner.cancel()
        for task in streams.values():
            task.cancel()

    app.cleanup_ctx.append(responder)
    app.router.add_post("/bench/bare", bare_offer)
    app.router.add_post("/bench/bare_close", bare_close)
    app.router.add_post("/bench/key", key)
    app.router.add_post("/bench/{action}", control)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _migrate(database_cls: Any, upgrade: Any, url: str) -> None:
    db = database_cls(url)
    await upgrade(db)
    await db.dispose()


def _rss_now_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ToneTrack(MediaStreamTrack):
    """A paced 440 Hz tone, 48 kHz mono 20 ms frames (the bare baseline's outbound audio)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        t = np.arange(48_000) / 48_000
        self._tone = (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16).tobytes()
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.perf_counter()
        self._start = self._start or now
        delay = self._start + self._n * 0.02 - now
        if delay > 0:
            await asyncio.sleep(delay)
        offset = (self._n % 50) * 1920
        frame = AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._tone[offset : offset + 1920])
        frame.sample_rate, frame.pts, frame.time_base = 48_000, self._n * 960, Fraction(1, 48_000)
        self._n += 1
        return frame


# ================================================ the client side =========================================


class SpeechTrack(MediaStreamTrack):
    """Loops speech-like audio at real time (what a talking user sends)."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        framer = PlaybackFramer(48_000, "mono")
        self._frames = framer.push(pcm, 16_000) + framer.flush()
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.perf_counter()
        self._start = self._start or now
        delay = self._start + self._n * 0.02 - now
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self._frames[self._n % len(self._frames)]
        frame.pts, frame.time_base = self._n * 960, Fraction(1, 48_000)
        self._n += 1
        return frame


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


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def phase(
    http: aiohttp.ClientSession, base: str, key: str, pid: int, n: int, *, bare: bool
) -> dict[str, Any]:
    pcm = voiced(3.0, f0=120.0)
    peers = [Peer(pcm, bare=bare) for _ in range(n)]
    try:
        for start in range(0, n, 5):
            await asyncio.gather(*(p.connect(http, base, key) for p in peers[start : start + 5]))
        await asyncio.sleep(WARMUP_S)
        before = await control(http, base, "reset")
        cpu0, t0 = cpu_of(pid), time.perf_counter()
        await asyncio.sleep(WINDOW_S)
        cpu1, t1 = cpu_of(pid), time.perf_counter()
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
        await asyncio.sleep(1.5)


def row(result: dict[str, Any]) -> str:
    return (
        f"{'bare aiortc' if result['bare'] else 'gateway':12} N={result['n']:3d}  "
        f"CPU {result['cpu_per_session_s']:.4f} s/session-s (core {result['core_usage'] * 100:4.0f} %)  "
        f"in p50/p99 {result['in_ms'][0]:5.1f}/{result['in_ms'][1]:5.1f} ms  "
        f"out p50/p99 {result['out_ms'][0]:5.1f}/{result['out_ms'][1]:5.1f} ms  "
        f"in {result['in_rate'] * 100:3.0f} % out {result['out_rate'] * 100:3.0f} %  "
        f"{'holds' if result['holds'] else 'FALLS BEHIND'}"
    )


async def answer_times(http: aiohttp.ClientSession, base: str, key: str) -> list[tuple[float, float]]:
    await control(http, base, "reset")
    times: list[float] = []
    for _ in range(5):
        peers = [Peer(voiced(1.0), bare=False, idle=True) for _ in range(10)]
        try:
            times += await asyncio.gather(*(p.connect(http, base, key) for p in peers))
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        await asyncio.sleep(1.0)
    server = await control(http, base, "reset")
    return [
        percentiles([t * 1000 for t in times]),
        percentiles([t * 1000 for t in server["answer"]]),
        percentiles([t * 1000 for t in server["aiortc_answer"]]),
    ]


async def idle_memory(http: aiohttp.ClientSession, base: str, key: str) -> float:
    before: int = (await control(http, base, "reset"))["rss_now_kb"]
    peers = [Peer(voiced(1.0), bare=False, idle=True) for _ in range(40)]
    try:
        for start in range(0, 40, 5):
            await asyncio.gather(*(p.connect(http, base, key) for p in peers[start : start + 5]))
        await asyncio.sleep(2.0)
        after: int = (await control(http, base, "reset"))["rss_now_kb"]
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    return (after - before) / 40 / 1024


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


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = 18000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any peer
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                __file__,
                "--serve",
                str(port),
                f"sqlite+aiosqlite:///{tmp}/b.db",
            ],
            cwd=tmp,
        )
        os.sched_setaffinity(0, {1})
        try:
            for _ in range(300):
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(base + "/ready", timeout=1)  # noqa: S310, ASYNC210
                    break
                await asyncio.sleep(0.2)
            async with aiohttp.ClientSession() as http:
                key = (await (await http.post(base + "/bench/key")).json())["key"]
                print(__doc__.split("\n\n")[1])
                print(f"\nhost: {os.cpu_count()} cores; gateway pinned to core 0, client peers to core 1\n")
                per_call = await idle_memory(http, base, key)
                print(f"memory per idle call (gateway RSS delta / 40 connected calls): {per_call:.2f} MiB\n")
                results = []
                for n in (1, 10, 40):
                    for bare in (True, False):
                        results.append(await phase(http, base, key, child.pid, n, bare=bare))
                        print(row(results[-1]), flush=True)
                # The largest N that holds: search upwards from 40 if it held, else downwards.
                largest = 40 if results[-1]["holds"] else None
                for n in (60, 80) if largest else (30, 20):
                    result = await phase(http, base, key, child.pid, n, bare=False)
                    print(row(result), flush=True)
                    if result["holds"]:
                        largest = max(largest or 0, n)
                        if n < 40:
                            break
                    elif n > 40:
                        break
                print(f"\nlargest N that held real time (of those tried): {largest}")
                print("\nratios gateway / bare (CPU per session-second):")
                for n in (1, 10, 40):
                    g = next(r for r in results if r["n"] == n and not r["bare"])
                    b = next(r for r in results if r["n"] == n and r["bare"])
                    print(
                        f"  N={n:3d}: CPU x{g['cpu_per_session_s'] / b['cpu_per_session_s']:.2f}; "
                        f"≈ {1 / g['cpu_per_session_s']:.0f} gateway sessions per core vs "
                        f"{1 / b['cpu_per_session_s']:.0f} bare; "
                        f"inbound p50 {g['in_ms'][0] - b['in_ms'][0]:+.1f} ms"
                    )
                await control(http, base, "fast_level", on="0")
                slow = await phase(http, base, key, child.pid, 40, bare=False)
                await control(http, base, "fast_level", on="1")
                print(f"\nA/B at N=40 with aiortc's pure-Python audio level:\n{row(slow)}")
                client, server, aiortc_part = await answer_times(http, base, key)
                print("\nSDP answer time, 10 concurrent offers x5, p50/p99:")
                print(f"  client-measured POST        {client[0]:7.1f} / {client[1]:7.1f} ms")
                print(f"  gateway handler (metric)    {server[0]:7.1f} / {server[1]:7.1f} ms")
                print(f"  aiortc offer -> answer SDP  {aiortc_part[0]:7.1f} / {aiortc_part[1]:7.1f} ms")

                await asyncio.sleep(1)
                peers = [Peer(voiced(3.0), bare=False) for _ in range(10)]
                for p in peers:
                    await p.connect(http, base, key)
                await asyncio.sleep(2)
                await control(http, base, "profile_start")
                await asyncio.sleep(5)
                profile = (await control(http, base, "profile_stop"))["profile"]
                await asyncio.gather(*(p.close() for p in peers))
                print("\nwhere the CPU goes: gateway event-loop thread, N=10, 5 s, top functions by own time")
                print("(Opus encode and decode run on other threads: see the per-frame costs below)")
                print("\n".join(line for line in profile.splitlines() if line.strip())[:4000])
                print(f"\nPOSTs retried after a refusal: {len(RETRIES)} {sorted(set(RETRIES))[:3]}")
                print("\nsend path, per 20 ms frame (this process):")
                print("\n".join(send_path_microbench()))
        finally:
            child.terminate()
            child.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
    else:
        asyncio.run(main())
