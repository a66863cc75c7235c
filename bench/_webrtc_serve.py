"""The gateway child process of `bench/webrtc_media.py` (`--serve`): the gateway app with latency probes, a
responder on the bus, the bare-aiortc endpoint, and control routes (reset, key, profile, fast_level)."""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import time
from collections import deque
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

from bench._responder import voiced_responder
from bench._webrtc_tracks import ToneTrack
from media_gateway.codecs.frames import FrameResampler


def serve(port: int, database_url: str, response_seconds: float) -> None:
    from aiohttp import web
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    from media_gateway.app import build_app
    from media_gateway.app_keys import BUS, CALLS, METRICS, REPOSITORIES
    from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
    from media_gateway.observability.logging import configure_logging
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.migrate import upgrade_to_head
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
        async with voiced_responder(app_[BUS], response_seconds):
            yield

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
