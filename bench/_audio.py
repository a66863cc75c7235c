"""Audio for `bench.ws_sessions`: espeak-ng sentences between stretches of quiet noise, as 24 kHz PCM cut into
20 ms `input_audio_buffer.append` events. `read_wav` and `noise` also serve `bench.stt_models` at 16 kHz."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media_gateway.codecs.resample import PcmResampler

RATE = 24_000
CHUNK = 960  # 20 ms of 24 kHz s16le
FORMAT = {"type": "audio/pcm", "rate": RATE}
SENTENCES = (
    "what time is it",
    "please turn on the kitchen lights",
    "the weather is nice today",
    "how are you doing this morning",
    "set a timer for ten minutes",
)
GAPS_MS = (1800, 2400, 2000, 2600, 2200)  # quiet noise before each sentence
LATENCY_TEXT = "what time is it"


def espeak(text: str, workdir: Path) -> bytes:
    """`text` spoken by espeak-ng, as 24 kHz mono s16le."""
    path = workdir / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return read_wav(path)


def read_wav(path: Path, rate: int = RATE) -> bytes:
    """The s16le samples of the WAV file at `path` (mono, as espeak-ng and flite write it), at `rate`."""
    with wave.open(str(path)) as wav:
        source_rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    resampler = PcmResampler(source_rate, rate)
    return resampler.push(pcm) + resampler.flush()


def noise(ms: int, seed: int, level: float = 30.0, rate: int = RATE) -> bytes:
    """Quiet white noise at `rate` (`level` is the RMS in 16-bit units; 30 is about -61 dBFS)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(rate * ms // 1000) * level).astype(np.int16).tobytes()


def loud_span(pcm: bytes, floor_db: float = -35.0) -> tuple[int, int]:
    """(first, last+1) sample of the span whose 10 ms RMS is within `floor_db` of the loudest 10 ms."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    step = RATE // 100
    blocks = samples[: len(samples) - len(samples) % step].reshape(-1, step)
    rms = np.sqrt((blocks**2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return int(loud[0]) * step, (int(loud[-1]) + 1) * step


def whole_chunks(pcm: bytes) -> bytes:
    return pcm[: len(pcm) - len(pcm) % CHUNK]


def chunked(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + CHUNK] for i in range(0, len(pcm) - CHUNK + 1, CHUNK)]


def append_json(chunk: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()},
        separators=(",", ":"),
    )


@dataclass
class Audio:
    loop: bytes  # the capacity loop, 24 kHz
    speech_ms: float  # loud (speech) time in the loop
    latency_speech: bytes  # LATENCY_TEXT, whole chunks
    latency_last_chunk: int  # index of the chunk holding the end of that speech

    @property
    def chunks(self) -> list[bytes]:
        return chunked(self.loop)

    @property
    def loop_ms(self) -> float:
        return len(self.loop) / 2 / RATE * 1000


def build_audio() -> Audio:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is missing: run scripts/install-system-packages.sh")
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        spoken = {text: espeak(text, Path(tmp)) for text in SENTENCES}
    parts, speech_samples = [], 0
    for seed, (text, gap) in enumerate(zip(SENTENCES, GAPS_MS, strict=True)):
        start, end = loud_span(spoken[text])
        speech_samples += end - start
        parts += [noise(gap, seed), spoken[text]]
    loop = whole_chunks(b"".join(parts))
    speech = spoken[LATENCY_TEXT]
    _, end = loud_span(speech)
    return Audio(
        loop, speech_samples / RATE * 1000, whole_chunks(speech + noise(40, 99)), (end * 2 - 1) // CHUNK
    )
