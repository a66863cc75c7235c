"""`av.AudioFrame` paths for the WebRTC transport (aiortc decodes Opus to 48 kHz packed s16 frames).

* `FrameResampler`: incoming 48 kHz stereo or mono frames → 16 kHz mono s16le 20 ms pipeline frames.
* `PlaybackFramer`: pipeline/TTS PCM at 16/22.05/24 kHz… → 48 kHz s16 20 ms `av.AudioFrame`s with `pts` and
  `time_base` set, ready to return from an aiortc `MediaStreamTrack.recv()`.
"""

from __future__ import annotations

from fractions import Fraction

from av.audio.frame import AudioFrame

from media_gateway.codecs.formats import AudioFormatError
from media_gateway.codecs.resample import (
    BytesLike,
    Framer,
    PcmResampler,
    channels_of,
    mono_to_stereo,
    pcm_to_frame,
)
from media_gateway.pipeline.messages import FRAME_BYTES, FRAME_MS, PIPELINE_SAMPLE_RATE


class FrameResampler:
    """Transport frames → 16 kHz mono s16le 20 ms frames (640 bytes), keeping filter state across frames.

    `input_rate`/`input_layout` describe the raw PCM `push_pcm` takes; `push` accepts any `av.AudioFrame`
    (format, layout and rate are read from the frame; a change mid-stream drains the filter and goes on).
    """

    def __init__(self, input_rate: int = 48_000, input_layout: str = "stereo") -> None:
        self.input_rate = input_rate
        self.input_layout = input_layout
        self._resampler = PcmResampler(input_rate, PIPELINE_SAMPLE_RATE, in_layout=input_layout)
        self._framer = Framer(FRAME_BYTES)

    def push(self, frame: AudioFrame) -> list[bytes]:
        return self._framer.push(self._resampler.push_frame(frame))

    def push_pcm(self, pcm: BytesLike) -> list[bytes]:
        """Interleaved s16le PCM in `input_rate`/`input_layout`."""
        try:
            return self._framer.push(self._resampler.push(pcm))
        except ValueError as exc:
            raise AudioFormatError(f"Invalid PCM: {exc}.") from exc

    def flush(self) -> list[bytes]:
        frames = self._framer.push(self._resampler.flush())
        return frames + self._framer.flush()


class PlaybackFramer:
    """Mono s16le PCM at any rate → `output_rate` s16 `av.AudioFrame`s of `frame_ms`, with running `pts`.

    `pts` counts samples from the first frame (`time_base` = 1/`output_rate`) and keeps running across
    `flush()`, so one instance serves a whole track.
    """

    def __init__(self, output_rate: int = 48_000, layout: str = "mono", frame_ms: int = FRAME_MS) -> None:
        channels = channels_of(layout)
        if channels not in (1, 2):
            raise ValueError(f"unsupported playback layout {layout!r}: mono or stereo")
        self.output_rate = output_rate
        self.layout = layout
        self._stereo = channels == 2
        self.samples_per_frame = output_rate * frame_ms // 1000
        self.time_base = Fraction(1, output_rate)
        self._resampler: PcmResampler | None = None
        self._framer = Framer(self.samples_per_frame * 2 * channels)
        self._pts = 0

    def push(self, pcm: BytesLike, sample_rate: int) -> list[AudioFrame]:
        if len(pcm) % 2:
            raise AudioFormatError(f"Invalid PCM: {len(pcm)} bytes is not whole s16 samples.")
        out = bytearray()
        if self._resampler is not None and self._resampler.in_rate != sample_rate:
            out += self._resampler.flush()
        if self._resampler is None or self._resampler.in_rate != sample_rate:
            self._resampler = PcmResampler(sample_rate, self.output_rate)
        out += self._resampler.push(pcm)
        return self._frames(self._framer.push(self._layout(out)))

    def flush(self) -> list[AudioFrame]:
        """Drain the filter; the last partial frame is padded with silence."""
        tail = self._resampler.flush() if self._resampler is not None else b""
        return self._frames(self._framer.push(self._layout(tail)) + self._framer.flush())

    def _layout(self, mono: BytesLike) -> BytesLike:
        return mono_to_stereo(mono) if self._stereo else mono

    def _frames(self, chunks: list[bytes]) -> list[AudioFrame]:
        frames = []
        for chunk in chunks:
            frame = pcm_to_frame(chunk, self.output_rate, self.layout)
            frame.pts = self._pts
            frame.time_base = self.time_base
            self._pts += self.samples_per_frame
            frames.append(frame)
        return frames
