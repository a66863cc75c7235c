"""Real speech for tests: sentences spoken by Debian espeak-ng, resampled to 16 kHz with PyAV (through
faster-whisper's decoder), padded with quiet noise. Generated once per process into a temporary directory."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench._stt_text import number_words

RATE = 16_000


def spoken_clock(text: str) -> tuple[int, int] | None:
    """The hour (1-12) and minute of a spoken time as OVOS's date-time skill says it ("It is ten oh one",
    "It's seven forty-five", "twelve o'clock", "quarter past eight", "ten to nine", "It's noon"), or None."""
    values = {number_words(n): n for n in (*range(20), 20, 30, 40, 50)} | {
        "oh": 0,
        "quarter": 15,
        "half": 30,
        "noon": 12,  # OVOS says "It's noon" at 12:00 (a test at 03:00 UTC asking for Tokyo's time met it)
        "midnight": 12,
    }
    words = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    for relation in ("past", "to"):
        if relation in words:  # "<minutes> past/to <hour>"
            at = words.index(relation)
            minutes = sum(values[w] for w in words[:at] if w in values)
            hours = [values[w] for w in words[at + 1 :] if w in values]
            if not hours or not 1 <= hours[0] <= 12 or not 0 < minutes < 60:
                return None
            if relation == "past":
                return hours[0], minutes
            return (hours[0] - 2) % 12 + 1, 60 - minutes
    numbers = [values[word] for word in words if word in values and word not in ("quarter", "half")]
    if not numbers or not 1 <= numbers[0] <= 12 or sum(numbers[1:]) >= 60:
        return None
    return numbers[0], sum(numbers[1:])


FRAME_BYTES = 640
SENTENCES = (
    "what time is it",
    "please turn on the kitchen lights",
    "the weather is nice today",
    "how are you doing this morning",
    "set a timer for ten minutes",
)


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="speech-tests-"))


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError("espeak-ng is missing: run scripts/install-system-packages.sh")
    return path


@functools.cache
def spoken(text: str, voice: str = "en-us") -> bytes:
    """`text` spoken by espeak-ng: 16 kHz mono s16le PCM, no padding."""
    from faster_whisper.audio import decode_audio

    name = re.sub(r"\W+", "_", f"{voice}_{text}")[:80]
    wav = _workdir() / f"{name}.wav"
    subprocess.run([_espeak(), "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
    samples = decode_audio(str(wav), sampling_rate=RATE)
    pcm: bytes = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    return pcm


def noise(ms: int, level: float = 30.0, seed: int = 0) -> bytes:
    """Quiet white noise (`level` is the RMS in 16-bit units; 30 ≈ -61 dBFS)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(RATE * ms // 1000) * level).astype(np.int16).tobytes()


def padded(pcm: bytes, before_ms: int = 1000, after_ms: int = 1500) -> bytes:
    """`pcm` between stretches of quiet noise, trimmed to whole 20 ms frames."""
    audio = noise(before_ms, seed=1) + pcm + noise(after_ms, seed=2)
    return audio[: len(audio) - len(audio) % FRAME_BYTES]


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def energy_bounds(pcm: bytes, floor_db: float = -35.0) -> tuple[int, int]:
    """(start_ms, end_ms) of the span whose 10 ms RMS is within `floor_db` of the loudest 10 ms."""
    samples: NDArray[np.float64] = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    step = RATE // 100
    blocks = samples[: len(samples) - len(samples) % step].reshape(-1, step)
    rms = np.sqrt((blocks**2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return int(loud[0]) * 10, (int(loud[-1]) + 1) * 10


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers spelled out ("10" → "ten")."""
    tokens = re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()
    return [number_words(int(token)) if token.isdigit() else token for token in tokens]


def word_errors(reference: str, hypothesis: str) -> int:
    """Levenshtein distance between the word sequences."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]
