"""Session defaults, ``session.update`` merging, and restoring a stored configuration.

Defaults (what ``session.created`` shows for an empty config) follow the SDK docstrings and the
live GA trace: PCM 24 kHz in and out, ``server_vad`` (threshold 0.5, prefix 300 ms, silence 500 ms,
``idle_timeout_ms`` null, create/interrupt response true), voice ``alloy`` at speed 1.0,
``output_modalities ["audio"]``, no tools, ``tool_choice "auto"``, ``max_output_tokens "inf"``,
``truncation "auto"``, ``tracing`` null, ``prompt`` null, no input transcription, no noise
reduction. Transcription sessions default to ``{"model": DEFAULT_TRANSCRIPTION_MODEL}``.

``session.update`` semantics: top-level fields present in the patch replace the current ones; the
containers ``audio``, ``audio.input``, ``audio.output``, ``audio.input.noise_reduction`` and
``audio.input.transcription`` are merged key by key ("Only the fields that are present in the
session.update are updated", SDK ``SessionUpdateEvent``); ``audio.input.turn_detection`` merges
when the ``type`` is unchanged and is replaced otherwise; ``null`` clears a nullable field; lists
(``tools``, ``output_modalities``, ``include``) and the other objects (``format``, ``prompt``,
``tracing``, ``tool_choice``, ``truncation``) are replaced whole.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from .session_rules import FREE_FORM, NULLABLE, SessionType

__all__ = [
    "DEFAULT_TRANSCRIPTION_MODEL",
    "DEFAULT_VOICE",
    "default_session",
    "fill_defaults",
    "merge_update",
    "restore_stored",
]

DEFAULT_VOICE: Final = "alloy"
DEFAULT_TRANSCRIPTION_MODEL: Final = "gpt-4o-transcribe"
_PCM24K: Final[dict[str, Any]] = {"type": "audio/pcm", "rate": 24000}
_SERVER_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
# Transcription sessions have no responses: only the VAD knobs get defaults (the response model's
# RealtimeTranscriptionSessionTurnDetection declares just type/threshold/prefix/silence; openai 3.60.0,
# openai/types/realtime/realtime_transcription_session_turn_detection.py).
_TRANSCRIPTION_SERVER_VAD_DEFAULTS: Final[dict[str, Any]] = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
_TRANSCRIPTION_SEMANTIC_VAD_DEFAULTS: Final[dict[str, Any]] = {}
_MERGED_CONTAINERS: Final = frozenset(
    {
        ("audio",),
        ("audio", "input"),
        ("audio", "output"),
        ("audio", "input", "noise_reduction"),
        ("audio", "input", "transcription"),
    }
)
_MERGED_IF_SAME_TYPE: Final = frozenset({("audio", "input", "turn_detection")})
# Nullable fields an effective configuration always holds, `null` meaning "off".
_ALWAYS_PRESENT: Final[dict[SessionType, tuple[str, ...]]] = {
    "realtime": ("tracing", "prompt"),
    "transcription": (),
}
_ALWAYS_PRESENT_INPUT: Final = ("noise_reduction", "transcription", "turn_detection")
# A null `idle_timeout_ms` is a dump artefact unless it is the realtime server_vad default, which
# restore_stored puts back.
_KEPT_NULLS: Final = NULLABLE - {"audio.input.turn_detection.idle_timeout_ms"}


def default_session(session_type: SessionType, *, model: str, instructions: str) -> dict[str, Any]:
    """The configuration of a session nobody configured (before :func:`fill_defaults`)."""
    if session_type == "transcription":
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": dict(_PCM24K),
                    "noise_reduction": None,
                    "transcription": {"model": DEFAULT_TRANSCRIPTION_MODEL},
                    "turn_detection": {"type": "server_vad"},
                }
            },
        }
    return {
        "type": "realtime",
        "model": model,
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": dict(_PCM24K),
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": {"type": "server_vad"},
            },
            "output": {"format": dict(_PCM24K), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
    }


def merge_update(base: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``patch`` applied to ``base`` with the ``session.update`` semantics (module docstring)."""
    out = dict(base)
    for key, value in patch.items():
        here = (*path, key)
        current = out.get(key)
        mergeable = here in _MERGED_CONTAINERS or (
            here in _MERGED_IF_SAME_TYPE
            and isinstance(current, dict)
            and isinstance(value, dict)
            and current.get("type") == value.get("type")
        )
        if mergeable and isinstance(current, dict) and isinstance(value, dict):
            out[key] = merge_update(current, value, here)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on what the client chose (VAD kind, noise reduction)."""
    audio_input = (data.get("audio") or {}).get("input") or {}
    realtime = data.get("type") == "realtime"
    turn_detection = audio_input.get("turn_detection")
    if isinstance(turn_detection, dict):
        if turn_detection.get("type") == "server_vad":
            defaults = _SERVER_VAD_DEFAULTS if realtime else _TRANSCRIPTION_SERVER_VAD_DEFAULTS
        else:
            defaults = _SEMANTIC_VAD_DEFAULTS if realtime else _TRANSCRIPTION_SEMANTIC_VAD_DEFAULTS
        audio_input["turn_detection"] = {
            **turn_detection,
            **{k: v for k, v in defaults.items() if k not in turn_detection},
        }
    noise_reduction = audio_input.get("noise_reduction")
    if isinstance(noise_reduction, dict) and "strength" not in noise_reduction:
        noise_reduction["strength"] = 1.0  # SDK: "Defaults to 1 when noise reduction is first enabled."
    return data


def _drop_nulls(value: Any, pattern: str) -> Any:
    """``value`` without the nulls of fields that are not nullable (free-form JSON left alone)."""
    if pattern in FREE_FORM:
        return value
    if isinstance(value, dict):
        return {
            key: _drop_nulls(item, f"{pattern}.{key}" if pattern else key)
            for key, item in value.items()
            if item is not None or (f"{pattern}.{key}" if pattern else key) in _KEPT_NULLS
        }
    if isinstance(value, list):
        return [_drop_nulls(item, f"{pattern}[]") for item in value]
    return value


def restore_stored(data: dict[str, Any]) -> dict[str, Any]:
    """Undo ``model_dump()`` artefacts of a stored effective config.

    Drops ``null`` where the field is not nullable (full dumps write every unset field as null) and
    puts back the "off" nulls that ``exclude_none`` dumps leave out.
    """
    out: dict[str, Any] = _drop_nulls(data, "")
    session_type = out.get("type")
    if session_type not in ("realtime", "transcription"):
        return out
    for key in _ALWAYS_PRESENT[session_type]:
        out.setdefault(key, None)
    audio_input = (out.get("audio") or {}).get("input")
    if isinstance(audio_input, dict):
        for key in _ALWAYS_PRESENT_INPUT:
            audio_input.setdefault(key, None)
        turn_detection = audio_input.get("turn_detection")
        if (
            session_type == "realtime"
            and isinstance(turn_detection, dict)
            and turn_detection.get("type") == "server_vad"
        ):
            turn_detection.setdefault("idle_timeout_ms", None)
    return out
