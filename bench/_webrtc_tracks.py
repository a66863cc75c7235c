"""Paced audio tracks and a speech-like signal for `bench/webrtc_media.py` (both of its processes)."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

from media_gateway.codecs.frames import PlaybackFramer


def voiced(seconds: float, rate: int = 16_000, f0: float = 140.0) -> bytes:
    """A speech-like signal: a harmonic series with a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (wave * envelope * 2500).astype(np.int16).tobytes()


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
