"""The engine's `AudioSink` on a media stream: the provider plays the audio, marks say how much it played.

The reply goes out as fast as the pipeline makes it (the provider buffers and plays it in real time), with a
`mark` after every `MARK_MS` of audio. The provider echoes a mark when everything sent before it has played,
so the last echoed mark is the playback position: what `played_ms` reports, what truncation on barge-in
uses, and what tells OVOS a spoken passage has ended. `clear()` sends `clear`, which makes the provider drop
its unplayed audio and echo the pending marks at once; those echoes are not playback, so every mark carries
the number of clears before it and echoes of an older number are ignored.

Bounded: at most `MAX_UNPLAYED_SECONDS` of audio sent and not yet played; past it `play()` refuses and the
engine fails the response (never a silent cut).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from media_gateway.codecs import OutputAudioEncoder
from media_gateway.realtime.playout import PlayoutListener
from media_gateway.transports.twilio.protocol import clear_frame, mark_frame, media_frame

MARK_MS: Final = 100  # a mark per 100 ms of audio: the playback position is known to that
MAX_UNPLAYED_SECONDS: Final = 600.0
_HISTORY: Final = 32  # finished responses whose positions stay answerable
_MULAW: Final = {"type": "audio/pcmu"}


@dataclass(eq=False)
class _Playout:
    id: str
    encoder: OutputAudioEncoder = field(default_factory=lambda: OutputAudioEncoder(_MULAW))
    sent_ms: float = 0.0
    played_ms: float = 0.0
    unmarked: bytes = b""  # encoded audio held until it fills a MARK_MS chunk
    finished: bool = False
    stopped: bool = False  # playout_stopped was reported (played out, or cleared)


class MarkedPlayout:
    def __init__(
        self, send: Callable[[str], None], stream_sid: str, *, marks: Callable[[int], None] | None = None
    ) -> None:
        self._send = send
        self._stream_sid = stream_sid
        self._marks_changed = marks or (lambda _delta: None)  # told how many marks are pending, by delta
        self._listener: PlayoutListener | None = None
        self._playouts: OrderedDict[str, _Playout] = OrderedDict()
        self._marks: dict[str, tuple[_Playout, float, bool]] = {}  # name → (response, position, its end)
        self._clears = 0
        self._count = 0
        self.marks_sent = 0
        self.marks_acknowledged = 0

    # --- AudioSink ---------------------------------------------------------------------------------------

    def set_listener(self, listener: PlayoutListener) -> None:
        self._listener = listener

    def play(self, response_id: str, pcm: bytes, sample_rate: int) -> bool:
        playout = self._playout(response_id)
        if playout.stopped:
            return True  # cleared: nothing more of it is played
        if self.unplayed_ms() / 1000 >= MAX_UNPLAYED_SECONDS:
            return False
        first = playout.sent_ms == 0 and not playout.unmarked
        playout.unmarked += playout.encoder.encode(pcm, sample_rate)
        chunk = 8 * MARK_MS  # μ-law, 8 kHz: 8 bytes per ms
        while len(playout.unmarked) >= chunk:
            self._send_audio(playout, playout.unmarked[:chunk])
            playout.unmarked = playout.unmarked[chunk:]
        if first and self._listener is not None and playout.sent_ms > 0:
            self._listener.playout_started(response_id)
        return True

    def finish(self, response_id: str) -> None:
        playout = self._playout(response_id)
        if playout.finished or playout.stopped:
            return
        playout.finished = True
        rest = playout.unmarked + playout.encoder.flush()
        playout.unmarked = b""
        started = playout.sent_ms > 0
        if rest:
            self._send_audio(playout, rest, end=True)
            if not started and self._listener is not None:
                self._listener.playout_started(response_id)
        elif started:
            self._mark(playout, end=True)
        else:  # no audio at all: nothing to wait for
            self._stopped(playout)

    def flush(self, response_id: str) -> None:
        playout = self._playouts.get(response_id)
        if playout is None or playout.finished or playout.stopped:
            return
        rest = playout.unmarked + playout.encoder.flush()
        playout.unmarked = b""
        if rest:
            self._send_audio(playout, rest)

    def clear(self) -> str | None:
        cut = [p for p in self._playouts.values() if not p.stopped and (p.sent_ms or p.unmarked)]
        if not cut:
            return None
        self._send(clear_frame(self._stream_sid))
        self._clears += 1
        self._marks_changed(-len(self._marks))
        self._marks.clear()
        for playout in cut:
            playout.stopped = playout.finished = True
            playout.unmarked = b""
        return cut[-1].id

    def played_ms(self, response_id: str) -> int:
        playout = self._playouts.get(response_id)
        return int(playout.played_ms) if playout is not None else 0

    def queued_ms(self, response_id: str) -> int:
        playout = self._playouts.get(response_id)
        return int(playout.sent_ms + len(playout.unmarked) / 8) if playout is not None else 0

    # --- the provider's echoes -----------------------------------------------------------------------------

    def acknowledge(self, name: str) -> None:
        """A mark came back: everything before it has played (marks of before the last clear: ignored)."""
        entry = self._marks.pop(name, None)
        if entry is None:
            return
        self._marks_changed(-1)
        playout, position, end = entry
        self.marks_acknowledged += 1
        playout.played_ms = max(playout.played_ms, position)
        if end:
            self._stopped(playout)

    def unplayed_ms(self) -> float:
        return sum(p.sent_ms - p.played_ms for p in self._playouts.values() if not p.stopped)

    @property
    def marks_pending(self) -> int:
        return len(self._marks)

    def close(self) -> None:
        """The stream ended: its pending marks will never come back."""
        self._marks_changed(-len(self._marks))
        self._marks.clear()

    # --- helpers -----------------------------------------------------------------------------------------

    def _playout(self, response_id: str) -> _Playout:
        playout = self._playouts.get(response_id)
        if playout is None:
            playout = self._playouts[response_id] = _Playout(response_id)
            while len(self._playouts) > _HISTORY:
                self._playouts.popitem(last=False)
        return playout

    def _send_audio(self, playout: _Playout, mulaw: bytes, *, end: bool = False) -> None:
        self._send(media_frame(self._stream_sid, mulaw))
        playout.sent_ms += len(mulaw) / 8
        self._mark(playout, end=end)

    def _mark(self, playout: _Playout, *, end: bool) -> None:
        self._count += 1
        name = f"{self._clears}.{self._count}"
        self._marks[name] = (playout, playout.sent_ms, end)
        self._marks_changed(1)
        self.marks_sent += 1
        self._send(mark_frame(self._stream_sid, name))

    def _stopped(self, playout: _Playout) -> None:
        if not playout.stopped:
            playout.stopped = True
            if self._listener is not None:
                self._listener.playout_stopped(playout.id)
