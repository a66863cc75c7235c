"""WhisperRecognizer (bundled tiny.en) on real speech."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from media_gateway.speech.stt import WhisperRecognizer, load_recognizer
from tests.speech.audio import SENTENCES, noise, padded, spoken, word_errors, words


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return load_recognizer()


def test_word_error_rate(recognizer: WhisperRecognizer) -> None:
    errors = total = 0
    for sentence in SENTENCES:
        pcm = padded(spoken(sentence), before_ms=300, after_ms=500)
        started = time.perf_counter()
        transcript = recognizer.transcribe(pcm, "en")
        elapsed = time.perf_counter() - started
        errors += word_errors(sentence, transcript.text)
        total += len(words(sentence))
        assert transcript.audio_seconds == pytest.approx(len(pcm) / 32_000)
        print(f"{sentence!r} -> {transcript.text!r} ({elapsed:.2f} s for {transcript.audio_seconds:.1f} s)")
    wer = errors / total
    print(f"WER {wer:.1%} ({errors}/{total} words)")
    assert wer <= 0.20


def test_silence_and_tiny_inputs_give_empty_text(recognizer: WhisperRecognizer) -> None:
    assert recognizer.transcribe(b"", "en").text == ""
    assert recognizer.transcribe(b"\x01\x00" * 800, "en").text == ""  # 50 ms
    assert recognizer.transcribe(bytes(32_000), "en").text == ""
    assert recognizer.transcribe(noise(1000, level=20.0), "en").text == ""


def test_concurrent_calls_from_threads(recognizer: WhisperRecognizer) -> None:
    audio = [padded(spoken(sentence), before_ms=300, after_ms=500) for sentence in SENTENCES]
    sequential = [recognizer.transcribe(pcm, "en") for pcm in audio]
    with ThreadPoolExecutor(len(audio)) as pool:
        concurrent = list(pool.map(lambda pcm: recognizer.transcribe(pcm, "en-US"), audio))
    assert concurrent == sequential


def test_loaded_once() -> None:
    assert load_recognizer() is load_recognizer()
