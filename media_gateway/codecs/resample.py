"""Stateful PCM plumbing over PyAV: s16 resampling (libswresample), G.711 codecs and fixed-size framing.

Everything here speaks packed signed 16-bit PCM as bytes; frames from and to PyAV are an implementation
detail, except `PcmResampler.push_frame`, which takes `av.AudioFrame`s of any format as a transport yields
them.
"""

from __future__ import annotations

from typing import Final, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

# Input is fed to the resampler in pieces of at most this many samples, so one huge append never builds one
# huge FFmpeg frame (memory stays bounded, time stays linear).
MAX_FRAME_SAMPLES: Final = 48_000

BytesLike = bytes | bytearray | memoryview


def channels_of(layout: str) -> int:
    return av.AudioLayout(layout).nb_channels


def pcm_to_frame(pcm: BytesLike, sample_rate: int, layout: str = "mono") -> AudioFrame:
    """Wrap whole samples of packed s16 PCM in an `av.AudioFrame`."""
    samples = len(pcm) // (2 * channels_of(layout))
    frame = AudioFrame(format="s16", layout=layout, samples=samples)
    # The stub says bytes; `Buffer.update` takes any buffer-protocol object (no copy of a memoryview).
    frame.planes[0].update(cast(bytes, pcm))
    frame.sample_rate = sample_rate
    return frame


def frame_pcm(frame: AudioFrame) -> memoryview:
    """The samples of a packed frame (the plane may carry alignment padding past them)."""
    nbytes = frame.samples * frame.format.bytes * frame.layout.nb_channels
    return memoryview(frame.planes[0])[:nbytes]


class PcmResampler:
    """Packed s16 PCM from one rate/layout to another, keeping filter state across calls.

    Chunk boundaries are invisible in the output: pushing one buffer or the same buffer in pieces yields the
    same samples. The filter delays a few samples; `flush()` drains them and resets the resampler so it can
    start a new stream. Equal rates and layouts skip FFmpeg entirely.
    """

    def __init__(
        self, in_rate: int, out_rate: int, *, in_layout: str = "mono", out_layout: str = "mono"
    ) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.in_layout = in_layout
        self.out_layout = out_layout
        self._in_sample_bytes = 2 * channels_of(in_layout)
        self._passthrough = in_rate == out_rate and in_layout == out_layout
        self._resampler: av.AudioResampler | None = None
        self._template: tuple[str, str, int] | None = None
        self._pcm_key = ("s16", av.AudioLayout(in_layout).name, in_rate)

    def _check_input(self, key: tuple[str, str, int], out: bytearray) -> None:
        """A new input format/layout/rate: drain the filter built for the old one (FFmpeg cannot switch)."""
        if self._template is not None and key != self._template:
            out += self.flush()
        self._template = key

    def _pull(self, frame: AudioFrame | None, out: bytearray) -> None:
        if self._resampler is None:
            if frame is None:
                return
            self._resampler = av.AudioResampler(format="s16", layout=self.out_layout, rate=self.out_rate)
        for result in self._resampler.resample(frame):
            out += frame_pcm(result)

    def push(self, pcm: BytesLike) -> bytes:
        """Resample whole samples of s16 PCM in `in_rate`/`in_layout`; returns what the filter released."""
        if len(pcm) % self._in_sample_bytes:
            raise ValueError(
                f"{len(pcm)} bytes is not a whole number of {self._in_sample_bytes}-byte samples"
            )
        if self._passthrough:
            return bytes(pcm)
        out = bytearray()
        self._check_input(self._pcm_key, out)
        view = memoryview(pcm)
        step = MAX_FRAME_SAMPLES * self._in_sample_bytes
        for start in range(0, len(view), step):
            self._pull(pcm_to_frame(view[start : start + step], self.in_rate, self.in_layout), out)
        return bytes(out)

    def push_frame(self, frame: AudioFrame) -> bytes:
        """Resample a PyAV frame of any sample format, layout and rate.

        A frame whose format, layout or rate differ from the previous ones drains the old filter first.
        """
        out = bytearray()
        self._check_input((frame.format.name, frame.layout.name, frame.sample_rate), out)
        if frame.samples:
            self._pull(frame, out)
        return bytes(out)

    def flush(self) -> bytes:
        """Drain the filter's delayed samples and reset to a fresh stream."""
        out = bytearray()
        self._pull(None, out)
        self._resampler = None
        self._template = None
        return bytes(out)


def mono_to_stereo(pcm: BytesLike) -> bytes:
    """Duplicate each s16 sample into both channels at full level (swresample's upmix is 3 dB down)."""
    src = bytes(pcm)
    out = bytearray(len(src) * 2)
    out[0::4] = out[2::4] = src[0::2]
    out[1::4] = out[3::4] = src[1::2]
    return bytes(out)


class G711Decoder:
    """G.711 bytes (`pcm_mulaw` / `pcm_alaw`, 8 kHz mono) → s16 `AudioFrame`s, via FFmpeg's decoders."""

    def __init__(self, codec: str, sample_rate: int = 8_000) -> None:
        ctx = av.CodecContext.create(codec, "r")
        assert isinstance(ctx, AudioCodecContext)
        ctx.sample_rate = sample_rate
        ctx.layout = "mono"
        self._ctx = ctx

    def decode(self, data: BytesLike) -> list[AudioFrame]:
        if not data:  # an empty packet would mean end-of-stream to FFmpeg
            return []
        return self._ctx.decode(av.Packet(bytes(data)))


class G711Encoder:
    """s16 mono PCM at 8 kHz → G.711 bytes, via FFmpeg's `pcm_mulaw` / `pcm_alaw` encoders."""

    def __init__(self, codec: str, sample_rate: int = 8_000) -> None:
        ctx = av.CodecContext.create(codec, "w")
        assert isinstance(ctx, AudioCodecContext)
        ctx.sample_rate = sample_rate
        ctx.layout = "mono"
        ctx.format = "s16"
        self._ctx = ctx
        self._rate = sample_rate

    def encode(self, pcm: BytesLike) -> bytes:
        if len(pcm) < 2:
            return b""
        packets = self._ctx.encode(pcm_to_frame(pcm, self._rate))
        return b"".join(bytes(packet) for packet in packets)


class Framer:
    """Cuts a byte stream into fixed-size frames, keeping the remainder for the next push."""

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered towards the next frame."""
        return len(self._buf)

    def push(self, data: BytesLike) -> list[bytes]:
        self._buf += data
        size = self.frame_bytes
        whole = len(self._buf) - len(self._buf) % size
        if not whole:
            return []
        with memoryview(self._buf) as view:
            frames = [view[i : i + size].tobytes() for i in range(0, whole, size)]
        del self._buf[:whole]
        return frames

    def flush(self) -> list[bytes]:
        """The last partial frame padded with zeros (silence), if any."""
        if not self._buf:
            return []
        frame = bytes(self._buf) + bytes(self.frame_bytes - len(self._buf))
        self._buf.clear()
        return [frame]

    def clear(self) -> None:
        self._buf.clear()
