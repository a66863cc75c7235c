"""Per-session audio conversion between the Realtime API wire formats and the speech pipeline.

* `InputAudioDecoder`: `input_audio_buffer.append` payloads (after base64) → 16 kHz mono s16le 20 ms frames.
* `OutputAudioEncoder`: pipeline/TTS PCM at any rate → the session's output format, for
  `response.output_audio.delta` (chunk it with `chunk_audio`).

Both are stateful (resampler filter state, partial frames) and not thread-safe: one per session or response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from media_gateway.codecs.formats import AudioFormat, AudioFormatError, chunk_audio
from media_gateway.codecs.resample import BytesLike, Framer, G711Decoder, G711Encoder, PcmResampler
from media_gateway.pipeline.messages import FRAME_BYTES, PIPELINE_SAMPLE_RATE

FormatSpec = AudioFormat | Mapping[str, Any] | str


class InputAudioDecoder:
    """Wire input audio → complete 16 kHz mono s16le 20 ms frames (640 bytes), one instance per session."""

    def __init__(self, fmt: FormatSpec) -> None:
        self.format = AudioFormat.from_session_format(fmt)
        self._g711 = G711Decoder(self.format.codec, self.format.sample_rate) if self.format.codec else None
        self._resampler = PcmResampler(self.format.sample_rate, PIPELINE_SAMPLE_RATE)
        self._framer = Framer(FRAME_BYTES)
        self._input_bytes = 0

    @property
    def input_ms(self) -> float:
        """Duration of all input accepted since construction (not reset by `flush`/`reset`)."""
        return self.format.duration_ms(self._input_bytes)

    @property
    def pending_ms(self) -> float:
        """Converted audio held back towards the next frame (excluding the few samples in the filter)."""
        return self._framer.pending * 1000.0 / (PIPELINE_SAMPLE_RATE * 2)

    def decode(self, data: BytesLike) -> list[bytes]:
        """Accept one append's audio; return the frames it completes (possibly none).

        Raises `AudioFormatError` for PCM that is not whole samples, leaving the decoder as it was.
        """
        self.format.check_aligned(data)
        if not data:
            return []
        if self._g711 is not None:
            pcm = bytearray()
            for frame in self._g711.decode(data):
                pcm += self._resampler.push_frame(frame)
        else:
            pcm = bytearray(self._resampler.push(data))
        self._input_bytes += len(data)
        return self._framer.push(pcm)

    def flush(self) -> list[bytes]:
        """End of an utterance: drain the filter, pad the last partial frame with silence, start afresh."""
        frames = self._framer.push(self._resampler.flush())
        return frames + self._framer.flush()

    def reset(self) -> None:
        """Drop buffered audio and filter state (`input_audio_buffer.clear`)."""
        self._resampler.flush()
        self._framer.clear()


class OutputAudioEncoder:
    """Mono s16le PCM at any rate → the session's output format, one instance per response or session.

    A change of input rate between calls drains the old filter first, so nothing is lost.
    """

    def __init__(self, fmt: FormatSpec) -> None:
        self.format = AudioFormat.from_session_format(fmt)
        self._g711 = G711Encoder(self.format.codec, self.format.sample_rate) if self.format.codec else None
        self._resampler: PcmResampler | None = None
        self._output_bytes = 0

    @property
    def output_ms(self) -> float:
        """Duration of all encoded output returned so far."""
        return self.format.duration_ms(self._output_bytes)

    def duration_ms(self, encoded: BytesLike | int) -> float:
        """Duration of encoded output (bytes or a byte count) in this format, in milliseconds."""
        return self.format.duration_ms(encoded)

    def chunks(self, encoded: bytes, max_ms: float = 200) -> list[bytes]:
        """`encoded` split into pieces of at most `max_ms`, on sample boundaries."""
        return chunk_audio(encoded, self.format, max_ms)

    def encode(self, pcm: BytesLike, sample_rate: int) -> bytes:
        """Convert mono s16le PCM at `sample_rate`; returns what is ready (the filter holds a few samples)."""
        if len(pcm) % 2:
            raise AudioFormatError(
                f"Invalid PCM from the pipeline: {len(pcm)} bytes is not whole s16 samples."
            )
        if sample_rate <= 0:
            raise AudioFormatError(f"Invalid sample rate {sample_rate}.")
        out = b""
        if self._resampler is not None and self._resampler.in_rate != sample_rate:
            out = self._encode(self._resampler.flush())
        if self._resampler is None or self._resampler.in_rate != sample_rate:
            self._resampler = PcmResampler(sample_rate, self.format.sample_rate)
        return out + self._encode(self._resampler.push(pcm))

    def flush(self) -> bytes:
        """End of the audio: everything still held in the filter, encoded. The encoder can be reused."""
        if self._resampler is None:
            return b""
        return self._encode(self._resampler.flush())

    def _encode(self, pcm: bytes) -> bytes:
        encoded = self._g711.encode(pcm) if self._g711 is not None else pcm
        self._output_bytes += len(encoded)
        return encoded
