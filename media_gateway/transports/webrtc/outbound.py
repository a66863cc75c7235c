"""The call's one outbound audio track: server-owned playout, paced to the wall clock.

aiortc's RTP sender sends whatever `recv()` returns as soon as it returns it (it does no pacing of its own),
so the track paces itself: frame `n` is due at `t0 + n * 20 ms`; when nothing is queued it returns silence,
so the RTP stream never stalls and timestamps never jump. `pts` counts samples for the whole track and never
rewinds, not even when the queue is cleared on barge-in.

The track is the engine's `AudioSink`: the engine queues each response's PCM with `play()` (bounded by
`MAX_QUEUED_FRAMES`), announces the end with `finish()`, and drops everything with `clear()`. The track
tells the engine (its `PlayoutListener`) when a response's first frame goes out and when its queue drains
after `finish()`. `played_ms` counts frames handed to the RTP sender, not frames queued, so truncation uses
audio heard.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

from media_gateway.codecs.frames import PlaybackFramer
from media_gateway.realtime.playout import PlayoutListener

RATE = 48_000
FRAME_SECONDS = 0.020
# If the event loop fell this far behind the schedule, restart the schedule instead of bursting frames.
MAX_LAG_SECONDS = 0.2
# Played/queued positions stay answerable for this many finished responses (the engine asks after clear).
HISTORY = 32
# The most unplayed audio the track holds (every response together). The pipeline synthesises faster
# than real time, so a long reply waits here; past this `play()` refuses and the engine fails the
# response: it is never cut silently. 10 minutes of 48 kHz frames is about 110 MiB.
MAX_QUEUED_FRAMES = 600 * 50


@dataclass(eq=False)
class _Playout:
    id: str
    framer: PlaybackFramer
    queued_seconds: float = 0.0
    played_frames: int = 0
    pending: int = 0
    started: bool = False
    finished: bool = False
    stopped: bool = False

    def played_ms(self) -> int:
        return min(self.played_frames * 20, round(self.queued_seconds * 1000))


class PacedAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, rate: int = RATE) -> None:
        """`rate`: the frames' sample rate (48 kHz for Opus on WebRTC; a SIP call's G.711 uses 8 kHz, so
        its frames need no resampling before the codec)."""
        super().__init__()
        self.rate = rate
        self._samples = rate * 20 // 1000
        self._time_base = Fraction(1, rate)
        self._listener: PlayoutListener | None = None
        self._queue: deque[tuple[_Playout, AudioFrame, float]] = deque()
        self._playouts: OrderedDict[str, _Playout] = OrderedDict()
        self._cleared: OrderedDict[str, None] = OrderedDict()
        self._active: _Playout | None = None
        self._silence = AudioFrame(format="s16", layout="mono", samples=self._samples)
        for plane in self._silence.planes:
            plane.update(bytes(plane.buffer_size))
        self._silence.sample_rate = rate
        self._start: float | None = None
        self._sent = 0
        self.frames_sent = 0
        self.playing = False  # the last frame `recv()` returned was a response's audio, not idle silence
        # Optional probe (bench): seconds from `play()` of audio to its frame leaving `recv()`.
        self.latency_probe: Callable[[float], None] | None = None

    # --- AudioSink -------------------------------------------------------------------------------------

    def set_listener(self, listener: PlayoutListener) -> None:
        self._listener = listener

    def play(self, response_id: str, pcm: bytes, sample_rate: int) -> bool:
        if response_id in self._cleared or self.readyState != "live":
            return True  # nothing will play: not a reason to fail the response
        playout = self._playout(response_id)
        if playout.finished:
            return True
        if len(self._queue) >= MAX_QUEUED_FRAMES:
            return False
        playout.queued_seconds += len(pcm) / 2 / sample_rate
        self._enqueue(playout, playout.framer.push(pcm, sample_rate))
        return True

    def finish(self, response_id: str) -> None:
        playout = self._playouts.get(response_id)
        if playout is None or playout.finished or response_id in self._cleared:
            return
        playout.finished = True
        self._enqueue(playout, playout.framer.flush())
        self._maybe_stopped(playout)

    def flush(self, response_id: str) -> None:
        playout = self._playouts.get(response_id)
        if playout is None or playout.finished or response_id in self._cleared:
            return
        self._enqueue(playout, playout.framer.flush())

    def clear(self) -> str | None:
        playing = self._active if self._active is not None and not self._active.stopped else None
        queued = [playout for playout, _, _ in self._queue]
        self._queue.clear()
        victims = ([playing] if playing is not None else []) + queued
        for playout in victims:
            playout.pending = 0
            playout.stopped = True
            self._cleared[playout.id] = None
        while len(self._cleared) > HISTORY:
            self._cleared.popitem(last=False)
        self._active = None
        return victims[0].id if victims else None

    def played_ms(self, response_id: str) -> int:
        playout = self._playouts.get(response_id)
        return playout.played_ms() if playout is not None else 0

    def queued_ms(self, response_id: str) -> int:
        playout = self._playouts.get(response_id)
        return round(playout.queued_seconds * 1000) if playout is not None else 0

    # --- MediaStreamTrack ------------------------------------------------------------------------------

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        due = self._start + self._sent * FRAME_SECONDS
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > MAX_LAG_SECONDS:
            self._start = now - self._sent * FRAME_SECONDS
        self._sent += 1
        frame = self._next_frame()
        frame.pts = self.frames_sent * self._samples
        frame.time_base = self._time_base
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.clear()

    @property
    def buffered_frames(self) -> int:
        return len(self._queue)

    # --- internals -------------------------------------------------------------------------------------

    def _playout(self, response_id: str) -> _Playout:
        playout = self._playouts.get(response_id)
        if playout is None:
            playout = self._playouts[response_id] = _Playout(response_id, PlaybackFramer(self.rate, "mono"))
            while len(self._playouts) > HISTORY:
                self._playouts.popitem(last=False)
        return playout

    def _enqueue(self, playout: _Playout, frames: list[AudioFrame]) -> None:
        stamp = time.perf_counter()
        for frame in frames:
            self._queue.append((playout, frame, stamp))
        playout.pending += len(frames)

    def _next_frame(self) -> AudioFrame:
        self.playing = bool(self._queue)
        if not self._queue:
            return self._silence
        playout, frame, stamp = self._queue.popleft()
        if self.latency_probe is not None:
            self.latency_probe(time.perf_counter() - stamp)
        playout.pending -= 1
        playout.played_frames += 1
        if not playout.started:
            playout.started = True
            self._active = playout
            if self._listener is not None:
                self._listener.playout_started(playout.id)
        self._maybe_stopped(playout)
        return frame

    def _maybe_stopped(self, playout: _Playout) -> None:
        if playout.finished and playout.pending == 0 and playout.started and not playout.stopped:
            playout.stopped = True
            if self._active is playout:
                self._active = None
            if self._listener is not None:
                self._listener.playout_stopped(playout.id)
