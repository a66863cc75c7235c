"""Wire audio formats of the Realtime API (GA `audio.input.format`/`audio.output.format`) and their byte math.

`audio/pcm` is s16le mono at 24 kHz; `audio/pcmu` and `audio/pcma` are G.711 μ-law / A-law at 8 kHz, one byte
per sample. The beta names (`pcm16`, `g711_ulaw`, `g711_alaw`) map onto the same three formats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class AudioFormatError(ValueError):
    """Audio the gateway cannot accept; `code`/`message` are ready for an OpenAI-shaped `error` event."""

    def __init__(self, message: str, *, code: str = "invalid_audio", param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """One wire audio format. `codec` is the FFmpeg codec name, or None for raw s16le PCM."""

    name: str
    sample_rate: int
    bytes_per_sample: int
    codec: str | None
    beta_name: str

    @classmethod
    def from_session_format(cls, value: Mapping[str, Any] | str | AudioFormat) -> AudioFormat:
        """Parse a GA format dict (`{"type": "audio/pcm", "rate": 24000}`), a GA type name or a beta name."""
        if isinstance(value, AudioFormat):
            return value
        if isinstance(value, str):
            fmt = _BY_NAME.get(value)
            if fmt is None:
                raise AudioFormatError(f"Unsupported audio format: {value!r}.", code="invalid_value")
            return fmt
        kind = value.get("type")
        fmt = _BY_NAME.get(kind) if isinstance(kind, str) and kind.startswith("audio/") else None
        if fmt is None:
            raise AudioFormatError(
                f"Unsupported audio format type: {kind!r}. "
                "Expected 'audio/pcm', 'audio/pcmu' or 'audio/pcma'.",
                code="invalid_value",
                param="format.type",
            )
        rate = value.get("rate", fmt.sample_rate if fmt.codec is None else None)
        if rate is not None and rate != fmt.sample_rate:
            raise AudioFormatError(
                f"Unsupported sample rate {rate!r} for {fmt.name}: only {fmt.sample_rate} is supported.",
                code="invalid_value",
                param="format.rate",
            )
        return fmt

    def to_session_format(self) -> dict[str, Any]:
        """The GA dict for this format, as echoed in `session.created` / `session.updated`."""
        if self.codec is None:
            return {"type": self.name, "rate": self.sample_rate}
        return {"type": self.name}

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.bytes_per_sample

    def duration_ms(self, data: bytes | bytearray | memoryview | int) -> float:
        """Duration of `data` (or of that many bytes) in this format, in milliseconds."""
        nbytes = data if isinstance(data, int) else len(data)
        return (nbytes // self.bytes_per_sample) * 1000.0 / self.sample_rate

    def bytes_for_ms(self, ms: float) -> int:
        """The byte length of the first `ms` milliseconds, rounded down to a whole sample."""
        if ms <= 0:
            return 0
        samples = math.floor(ms * self.sample_rate / 1000 + 1e-9)
        return samples * self.bytes_per_sample

    def check_aligned(self, data: bytes | bytearray | memoryview) -> None:
        """Raise `AudioFormatError` unless `data` holds whole samples."""
        if len(data) % self.bytes_per_sample:
            raise AudioFormatError(
                f"Invalid {self.name} audio: {len(data)} bytes is not a whole number of "
                f"{self.bytes_per_sample}-byte samples.",
            )


PCM24 = AudioFormat("audio/pcm", 24_000, 2, None, "pcm16")
PCMU = AudioFormat("audio/pcmu", 8_000, 1, "pcm_mulaw", "g711_ulaw")
PCMA = AudioFormat("audio/pcma", 8_000, 1, "pcm_alaw", "g711_alaw")

_BY_NAME: dict[str, AudioFormat] = {
    key: fmt for fmt in (PCM24, PCMU, PCMA) for key in (fmt.name, fmt.beta_name)
}


def chunk_audio(data: bytes, fmt: AudioFormat, max_ms: float = 200) -> list[bytes]:
    """Split encoded audio into pieces of at most `max_ms` each, cut on sample boundaries.

    For `response.output_audio.delta`: every piece but the last has exactly the maximal whole number of
    samples; `sum(fmt.duration_ms(piece))` equals `fmt.duration_ms(data)`.
    """
    fmt.check_aligned(data)
    step = fmt.bytes_for_ms(max_ms)
    if step <= 0:
        raise ValueError(f"max_ms={max_ms} is shorter than one sample of {fmt.name}")
    view = memoryview(data)
    return [view[i : i + step].tobytes() for i in range(0, len(data), step)]
