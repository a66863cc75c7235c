"""Speech synthesis: Debian `flite` (BSD-style licence) as one subprocess per sentence, 16 kHz output (the
pipeline rate, so no resampling). `split_sentences` lets the pipeline stream a reply sentence by sentence:
the first sentence is audible after one short flite run (~10-60 ms) instead of after the whole reply.

`SpeechSynthesizer` is the seam for other engines (piper: GPL, 22 050 Hz; not the default).

Threading: `FliteSynthesizer.synthesize` blocks for the length of one flite run; call it from a thread pool.
It keeps no state between calls, so concurrent calls are safe (each is its own process).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from collections.abc import Callable
from typing import Final, Protocol

from media_gateway.speech.voices import VoiceMap

DEFAULT_VOICE: Final = "slt"
_MAX_SENTENCE_CHARS: Final = 120

# A sentence ends at . ! ? followed by a space and a capital or digit ("3 p.m. today" stays whole), or at
# a newline.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


class SpeechSynthesizer(Protocol):
    @property
    def sample_rate(self) -> int:
        """The rate of the PCM `synthesize` returns."""
        ...

    def synthesize(self, text: str) -> bytes:
        """Speak `text`: signed 16-bit little-endian mono PCM at `sample_rate` (blocking)."""
        ...


class SynthesisError(RuntimeError):
    pass


def split_sentences(text: str, max_chars: int = _MAX_SENTENCE_CHARS) -> list[str]:
    """Split text into sentences to synthesize one by one; sentences longer than `max_chars` are cut at
    clause punctuation (then at spaces) so no single synthesis run is long."""
    sentences: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            sentences.append(sentence)
            continue
        sentences.extend(_cut(sentence, max_chars))
    return sentences


def _cut(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for part in _CLAUSE_END.split(sentence):
        for word in part.split(" ") if len(part) > max_chars else [part]:
            candidate = f"{current} {word}".strip()
            if current and len(candidate) > max_chars:
                pieces.append(current)
                candidate = word
            current = candidate
    if current:
        pieces.append(current)
    return pieces


class FliteSynthesizer:
    """`SpeechSynthesizer` on the flite command line (`flite -voice VOICE -t TEXT -o /dev/stdout`).

    Built-in voices: slt (female, default), rms, awb (male), kal16 at 16 kHz; kal at 8 kHz. The constructor
    runs flite once to check it works and to learn the voice's sample rate."""

    def __init__(
        self, voice: str = DEFAULT_VOICE, *, executable: str = "flite", timeout: float = 30.0
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise SynthesisError(f"{executable!r} not found: install the Debian package 'flite'")
        self._argv = [path, "-voice", voice]
        self._timeout = timeout
        self.voice = voice
        self._sample_rate = 0
        self._sample_rate = self._run("ok")[1]

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def synthesize(self, text: str) -> bytes:
        text = " ".join(text.split())
        if not text:
            return b""
        pcm, rate = self._run(text)
        if rate != self._sample_rate:
            raise SynthesisError(f"flite returned {rate} Hz, expected {self._sample_rate} Hz")
        return pcm

    def _run(self, text: str) -> tuple[bytes, int]:
        try:
            result = subprocess.run(  # noqa: S603 - fixed executable, text passed as one argument
                [*self._argv, "-t", text, "-o", "/dev/stdout"],
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SynthesisError(f"flite failed: {exc}") from exc
        if result.returncode != 0 or not result.stdout:
            detail = result.stderr.decode(errors="replace").strip()[-300:]
            raise SynthesisError(f"flite exited with {result.returncode}: {detail}")
        try:
            with wave.open(io.BytesIO(result.stdout)) as wav:
                if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                    raise SynthesisError("flite output is not 16-bit mono")
                return wav.readframes(wav.getnframes()), wav.getframerate()
        except (wave.Error, EOFError) as exc:
            raise SynthesisError(f"flite wrote an unreadable WAV: {exc}") from exc


class Voices:
    """Synthesizers by OpenAI voice name (a session's `voice`): one per engine voice that `voice_map`
    names, made by `make(engine_voice)`. `preload` makes them all at start-up (making one may run the
    engine once); afterwards a lookup never blocks."""

    def __init__(self, voice_map: VoiceMap, make: Callable[[str], SpeechSynthesizer]) -> None:
        self._map = voice_map
        self._make = make
        self._made: dict[str, SpeechSynthesizer] = {}

    def preload(self) -> None:
        for voice in sorted(self._map.installed()):
            self._engine_voice(voice)

    def __call__(self, name: str | None) -> SpeechSynthesizer:
        return self._engine_voice(self._map.resolve(name))

    def _engine_voice(self, voice: str) -> SpeechSynthesizer:
        made = self._made.get(voice)
        if made is None:
            made = self._made[voice] = self._make(voice)
        return made
