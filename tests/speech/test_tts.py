"""FliteSynthesizer and sentence splitting; round trip through the recognizer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from media_gateway.speech.stt import load_recognizer
from media_gateway.speech.tts import FliteSynthesizer, SynthesisError, split_sentences
from tests.speech.audio import word_errors, words


@pytest.fixture(scope="module")
def synthesizer() -> FliteSynthesizer:
    return FliteSynthesizer()


def test_speaks_at_pipeline_rate(synthesizer: FliteSynthesizer) -> None:
    started = time.perf_counter()
    pcm = synthesizer.synthesize("It's four oh five p.m.")
    elapsed = time.perf_counter() - started
    print(f"flite: {elapsed * 1000:.0f} ms for {len(pcm) / 32_000:.2f} s of audio")
    assert synthesizer.sample_rate == 16_000
    assert len(pcm) % 2 == 0
    assert len(pcm) > 16_000
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    assert np.sqrt((samples**2).mean()) > 300  # not silence
    assert synthesizer.synthesize("   ") == b""


@pytest.mark.parametrize(
    "text",
    ["What time is it?", "Please turn on the kitchen lights.", "Hello! How can I help you?"],
)
def test_round_trip_through_recognizer(synthesizer: FliteSynthesizer, text: str) -> None:
    transcript = load_recognizer().transcribe(synthesizer.synthesize(text), "en")
    print(f"{text!r} -> {transcript.text!r}")
    assert word_errors(text, transcript.text) == 0, transcript.text


def test_text_is_one_argument(synthesizer: FliteSynthesizer) -> None:
    # Text that looks like options or shell syntax is spoken, not interpreted.
    assert len(synthesizer.synthesize("-o /tmp/x; rm -rf $HOME")) > 0


def test_unknown_executable() -> None:
    with pytest.raises(SynthesisError, match="not found"):
        FliteSynthesizer(executable="no-such-flite")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello there! It is 3 p.m. today. How are you?",
            ["Hello there!", "It is 3 p.m. today.", "How are you?"],
        ),
        ("One.\n\nTwo", ["One.", "Two"]),
        ("  spaced   out  ", ["spaced out"]),
        ("", []),
        ('He said "Yes." Then left.', ['He said "Yes."', "Then left."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentences_are_cut() -> None:
    text = ", ".join(["a fairly long clause of words"] * 20) + "."
    pieces = split_sentences(text, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert words(" ".join(pieces)) == words(text)
