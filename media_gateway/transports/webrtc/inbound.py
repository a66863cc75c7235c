"""Inbound audio: read an aiortc track, resample to 16 kHz 20 ms frames, hand them to the engine.

aiortc queues decoded frames of a remote track in an unbounded `asyncio.Queue`: a track nobody reads
grows without limit. Every accepted track therefore gets a reader task that runs for
the track's life. Between the reader and the engine sits a bounded queue with drop-oldest: a slow engine
loses the oldest audio (counted in `gateway_webrtc_inbound_frames_dropped_total`), never memory.

aiortc's Opus decoder always yields s16 *stereo* 48 kHz frames, even for mono calls; `FrameResampler`
downmixes them explicitly with one stateful resampler for the whole track (a resampler made per frame
restarts its filter every 20 ms, which is an audible 50 Hz crackle).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

from media_gateway.codecs.frames import FrameResampler


class InboundAudio:
    """One inbound track's reader (`read`) and the pump feeding the engine (`pump`)."""

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        capacity: int,
        on_drop: Callable[[int], None],
    ) -> None:
        self.track = track
        self._capacity = capacity
        self._on_drop = on_drop
        self._resampler = FrameResampler()
        self._frames: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.accepting = False  # frames before the session starts are discarded (not counted)
        self.last_frame_at = time.monotonic()
        self.frames_in = 0
        self.dropped = 0
        # Optional probe (bench): called with each decoded frame's pts when its audio reaches the engine.
        self.latency_probe: Callable[[list[int]], None] | None = None
        self._pts: deque[int] = deque()

    async def read(self) -> None:
        """Read the track until it ends; runs even while nothing consumes the frames."""
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                return
            self.last_frame_at = time.monotonic()
            if not self.accepting or not isinstance(frame, AudioFrame):
                continue
            self.frames_in += 1
            frames = self._resampler.push(frame)
            if self.latency_probe is not None and frame.pts is not None:
                self._pts.append(frame.pts)
            if frames:
                self._offer(frames)

    def _offer(self, frames: list[bytes]) -> None:
        overflow = len(self._frames) + len(frames) - self._capacity
        if overflow > 0:
            dropped = min(overflow, len(self._frames))
            for _ in range(dropped):
                self._frames.popleft()
            frames = frames[max(0, len(frames) - self._capacity) :]
            self.dropped += overflow
            self._on_drop(overflow)
        self._frames.extend(frames)
        self._ready.set()

    async def pump(self, push: Callable[[list[bytes]], Awaitable[None]]) -> None:
        """Hand everything queued to the engine, in order, batch by batch."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            if not self._frames:
                continue
            batch = list(self._frames)
            self._frames.clear()
            pts = list(self._pts)
            self._pts.clear()
            await push(batch)
            if self.latency_probe is not None and pts:
                self.latency_probe(pts)


async def drain(track: MediaStreamTrack) -> None:
    """Consume a track we do not use (e.g. video, or a second audio track) so aiortc's queue stays empty."""
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
