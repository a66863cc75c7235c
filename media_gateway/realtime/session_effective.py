"""``SessionConfig``: the effective configuration of one session, as the SDK's own models.

It wraps a validated ``RealtimeSessionCreateRequest`` or ``RealtimeTranscriptionSessionCreateRequest``
with every default filled in (``session_requests`` builds it) and offers the typed views the engine
and signaling code read (``voice``, ``turn_detection``, ``transcription``, ``policy_summary()``…).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from openai.types.realtime import (
    AudioTranscription,
    RealtimeAudioConfigInput,
    RealtimeFunctionTool,
    RealtimeSessionCreateRequest,
    RealtimeTranscriptionSessionAudioInput,
    RealtimeTranscriptionSessionCreateRequest,
)
from openai.types.realtime import realtime_audio_input_turn_detection as realtime_vad
from openai.types.realtime import (
    realtime_transcription_session_audio_input_turn_detection as transcription_vad,
)
from openai.types.realtime.realtime_audio_config_output import VoiceID
from openai.types.realtime.realtime_tools_config_union import Mcp
from pydantic import ConfigDict, Field, RootModel, model_validator

from .session_defaults import restore_stored
from .session_rules import SessionParams, SessionType

__all__ = ["SessionConfig", "Tool", "TurnDetection"]

Tool: TypeAlias = RealtimeFunctionTool | Mcp
# Realtime and transcription sessions each have their own (identical) SDK classes for VAD settings.
TurnDetection: TypeAlias = (
    realtime_vad.ServerVad
    | realtime_vad.SemanticVad
    | transcription_vad.ServerVad
    | transcription_vad.SemanticVad
)
_EffectiveParams = Annotated[
    RealtimeSessionCreateRequest | RealtimeTranscriptionSessionCreateRequest, Field(discriminator="type")
]


class SessionConfig(RootModel[_EffectiveParams]):
    """The effective configuration of one session: every default filled in, already validated.

    ``model_dump()`` gives the flat session dict (``{"type": "realtime", "model": …}``), and
    ``SessionConfig.model_validate(stored)`` restores a dumped config, with or without
    ``exclude_none``/``exclude_unset`` (the nulls that mean "off" are put back). Prefer
    :meth:`to_dict` for storage. Immutable by convention: ``parse_session_update`` returns a new
    instance.
    """

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _restore_stored(cls, data: Any) -> Any:
        return restore_stored(data) if isinstance(data, dict) else data

    @property
    def params(self) -> SessionParams:
        """The typed configuration (``RealtimeSessionCreateRequest`` or the transcription one)."""
        return self.root

    @property
    def type(self) -> SessionType:
        return self.params.type

    @property
    def is_realtime(self) -> bool:
        return isinstance(self.params, RealtimeSessionCreateRequest)

    @property
    def _audio_input(self) -> RealtimeAudioConfigInput | RealtimeTranscriptionSessionAudioInput | None:
        audio = self.params.audio
        return audio.input if audio else None

    @property
    def model(self) -> str:
        """Realtime model; for transcription sessions the transcription model ("" if off)."""
        if isinstance(self.params, RealtimeSessionCreateRequest):
            return self.params.model or ""
        transcription = self.transcription
        return (transcription.model or "") if transcription else ""

    @property
    def instructions(self) -> str:
        if isinstance(self.params, RealtimeSessionCreateRequest):
            return self.params.instructions or ""
        return ""

    @property
    def output_modalities(self) -> list[Literal["text", "audio"]]:
        if isinstance(self.params, RealtimeSessionCreateRequest):
            return list(self.params.output_modalities or ["audio"])
        return []

    @property
    def voice(self) -> str | VoiceID | None:
        """A voice name, or a custom voice ``{"id": …}``; None for transcription sessions."""
        if isinstance(self.params, RealtimeSessionCreateRequest) and self.params.audio:
            output = self.params.audio.output
            return output.voice if output else None
        return None

    @property
    def speed(self) -> float:
        if isinstance(self.params, RealtimeSessionCreateRequest) and self.params.audio:
            output = self.params.audio.output
            return (output.speed or 1.0) if output else 1.0
        return 1.0

    @property
    def max_output_tokens(self) -> int | Literal["inf"]:
        if (
            isinstance(self.params, RealtimeSessionCreateRequest)
            and self.params.max_output_tokens is not None
        ):
            return self.params.max_output_tokens
        return "inf"

    @property
    def tools(self) -> list[Tool]:
        return list(self.params.tools or []) if isinstance(self.params, RealtimeSessionCreateRequest) else []

    @property
    def turn_detection(self) -> TurnDetection | None:
        audio_input = self._audio_input
        return audio_input.turn_detection if audio_input else None

    @property
    def transcription(self) -> AudioTranscription | None:
        audio_input = self._audio_input
        return audio_input.transcription if audio_input else None

    @property
    def input_format(self) -> str:
        """``audio/pcm`` (24 kHz), ``audio/pcmu`` or ``audio/pcma``."""
        audio_input = self._audio_input
        fmt = audio_input.format if audio_input else None
        return (fmt.type if fmt else None) or "audio/pcm"

    @property
    def output_format(self) -> str | None:
        """Output audio format type; ``None`` for transcription sessions."""
        if isinstance(self.params, RealtimeSessionCreateRequest):
            output = self.params.audio.output if self.params.audio else None
            fmt = output.format if output else None
            return (fmt.type if fmt else None) or "audio/pcm"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as JSON-ready data (no id/object, nothing redacted)."""
        return self.params.model_dump(mode="json", exclude_unset=True)

    def policy_summary(self) -> dict[str, Any]:
        """Flat, JSON-ready facts for the policy engine (no free text, no secrets)."""
        voice = self.voice
        tools = self.tools
        turn_detection = self.turn_detection
        transcription = self.transcription
        return {
            "type": self.type,
            "model": self.model,
            "voice": voice.id if isinstance(voice, VoiceID) else voice,
            "custom_voice": isinstance(voice, VoiceID),
            "output_modalities": self.output_modalities,
            "max_output_tokens": self.max_output_tokens,
            "tools_count": len(tools),
            "function_tools_count": sum(isinstance(t, RealtimeFunctionTool) for t in tools),
            "mcp_tools_count": sum(isinstance(t, Mcp) for t in tools),
            "instructions_length": len(self.instructions),
            "input_format": self.input_format,
            "output_format": self.output_format,
            "turn_detection": turn_detection.type if turn_detection else None,
            "transcription_model": transcription.model if transcription else None,
        }
