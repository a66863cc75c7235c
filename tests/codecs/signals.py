"""Test signals and measures in plain Python (no numpy in the runtime dependencies)."""

from __future__ import annotations

import array
import math

AMP = 10_000.0


def sine(rate: int, seconds: float, freq: float = 440.0, amp: float = AMP, channels: int = 1) -> bytes:
    """s16le sine, interleaved over `channels` (every channel the same)."""
    n = round(rate * seconds)
    step = 2 * math.pi * freq / rate
    samples = array.array("h", (round(amp * math.sin(step * i)) for i in range(n) for _ in range(channels)))
    return samples.tobytes()


def chirp(rate: int, seconds: float, f0: float = 100.0, f1: float = 3_000.0, amp: float = AMP) -> bytes:
    """Linear sweep from f0 to f1, kept below the 4 kHz Nyquist of 8 kHz audio."""
    n = round(rate * seconds)
    k = (f1 - f0) / seconds
    return array.array(
        "h",
        (round(amp * math.sin(2 * math.pi * (f0 * t + k * t * t / 2))) for t in (i / rate for i in range(n))),
    ).tobytes()


def samples(pcm: bytes) -> array.array[int]:
    return array.array("h", pcm)


def snr_db(pcm: bytes, rate: int, freq: float = 440.0, amp: float = AMP, skip_ms: float = 20.0) -> float:
    """SNR of `pcm` against the ideal sine at `rate`, ignoring `skip_ms` at each end (filter transients)."""
    y = samples(pcm)
    skip = round(rate * skip_ms / 1000)
    step = 2 * math.pi * freq / rate
    signal = noise = 0.0
    for i in range(skip, len(y) - skip):
        ref = amp * math.sin(step * i)
        signal += ref * ref
        noise += (y[i] - ref) ** 2
    return 10 * math.log10(signal / max(noise, 1e-9))


def max_abs_diff(a: bytes, b: bytes) -> int:
    x, y = samples(a), samples(b)
    assert len(x) == len(y), (len(x), len(y))
    return max((abs(p - q) for p, q in zip(x, y, strict=True)), default=0)


def peak(pcm: bytes, skip: int = 0) -> int:
    y = samples(pcm)
    return max((abs(v) for v in y[skip : len(y) - skip]), default=0)
