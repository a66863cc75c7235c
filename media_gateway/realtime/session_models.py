"""Pydantic models of the GA Realtime session configuration a client may send.

They mirror the installed ``openai`` SDK types (``openai/types/realtime/``) field for field:
``RealtimeSessionCreateRequest`` (``type: "realtime"``) and
``RealtimeTranscriptionSessionCreateRequest`` (``type: "transcription"``), as used by
``POST /v1/realtime/client_secrets``, ``session.update``, ``POST /v1/realtime/calls`` (``session``
part) and ``POST /v1/realtime/calls/{id}/accept``.

Differences from the SDK, all deliberate (upstream behaviour or gateway limits):

* ``extra="forbid"`` everywhere: unknown and beta-shaped fields are ``unknown_parameter``.
* ``strict=True``: no coercion (``"5"`` is not an integer, ``1`` is not a boolean).
* Fields are optional as in the SDK, but ``null`` is only accepted where OpenAI documents the field
  as nullable ("set to null to turn off"): ``audio.input.turn_detection``, ``.noise_reduction``,
  ``.transcription``, ``turn_detection.idle_timeout_ms``, ``tracing``, ``prompt`` (and its
  ``variables``/``version``), MCP ``allowed_tools``/``require_approval``. Elsewhere ``null`` is
  ``invalid_type`` ("expected boolean, got null"), as observed upstream.
* Discriminators are required: ``format.type``, ``turn_detection.type``, ``tools[].type``
  (optional in the SDK models, always sent by the official clients).
* ``audio/pcm`` requires ``rate`` (upstream rejects it without, although the SDK marks it optional).
* Tool ``name`` is required and must match ``^[a-zA-Z0-9_-]{1,64}$``; MCP tools need one of
  ``server_url``/``connector_id``/``tunnel_id`` (SDK docstring).
* Size caps (gateway): strings, lists, free-form JSON depth/size, 128 tools. See the ``MAX_*``
  constants.

Accepted although the gateway cannot honour them (kept in the config and echoed back, so clients
see what they sent): MCP tools and ``tool_choice {type:"mcp"}``, ``prompt`` templates, ``tracing``,
``truncation``, ``reasoning``, ``parallel_tool_calls``, ``include`` logprobs, transcription
``delay``/``keywords``/``languages``, custom voices ``{id}`` (echoed as the id string), any
``model`` string.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from .session_validation import bounded_json, kind_discriminator, not_null

__all__ = [
    "MAX_ID_CHARS",
    "MAX_INSTRUCTIONS_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TOOLS",
    "AudioFormat",
    "AudioPCM",
    "AudioPCMA",
    "AudioPCMU",
    "AudioTranscription",
    "FunctionTool",
    "InputAudioConfig",
    "McpTool",
    "NoiseReduction",
    "OutputAudioConfig",
    "Prompt",
    "RealtimeAudioConfig",
    "RealtimeSessionParams",
    "Reasoning",
    "RetentionRatioTruncation",
    "SemanticVad",
    "ServerVad",
    "SessionParams",
    "Tool",
    "ToolChoice",
    "ToolChoiceFunction",
    "ToolChoiceMcp",
    "TracingConfiguration",
    "TranscriptionAudioConfig",
    "TranscriptionInputAudioConfig",
    "TranscriptionSessionParams",
    "TurnDetection",
    "VoiceId",
]

MAX_INSTRUCTIONS_CHARS: Final = 65_536
"""``instructions`` cap (64 Ki characters)."""
MAX_TEXT_CHARS: Final = 65_536
"""Cap for other prose: tool/server descriptions, transcription prompt."""
MAX_ID_CHARS: Final = 256
"""Cap for identifiers and labels: model, voice, language, tool and server names, ids."""
MAX_TOOLS: Final = 128
MAX_LIST_ITEMS: Final = 256
MAX_MS: Final = 600_000
"""Sanity cap on ``*_ms`` turn-detection fields (OpenAI documents no bound)."""

_TOOL_NAME_PATTERN: Final = r"^[a-zA-Z0-9_-]{1,64}$"

IdStr = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
TextStr = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
JsonObject = Annotated[dict[str, Any], bounded_json()]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- audio formats (realtime_audio_formats.py) ------------------------------------------------


class AudioPCM(_Strict):
    """16-bit little-endian PCM, 24 kHz mono (the only PCM rate OpenAI supports)."""

    type: Literal["audio/pcm"]
    rate: Literal[24000]


class AudioPCMU(_Strict):
    """G.711 mu-law, 8 kHz."""

    type: Literal["audio/pcmu"]


class AudioPCMA(_Strict):
    """G.711 A-law, 8 kHz."""

    type: Literal["audio/pcma"]


AudioFormat: TypeAlias = Annotated[AudioPCM | AudioPCMU | AudioPCMA, Field(discriminator="type")]


# --- audio input (realtime_audio_config_input.py, audio_transcription.py) -------------------


class NoiseReduction(_Strict):
    type: Annotated[Literal["near_field", "far_field"] | None, not_null("string")] = None
    strength: Annotated[Annotated[float, Field(ge=0)] | None, not_null("number")] = None


class AudioTranscription(_Strict):
    model: Annotated[IdStr | None, not_null("string")] = None
    language: Annotated[IdStr | None, not_null("string")] = None
    prompt: Annotated[TextStr | None, not_null("string")] = None
    delay: Annotated[Literal["minimal", "low", "medium", "high", "xhigh"] | None, not_null("string")] = None
    keywords: Annotated[
        Annotated[list[IdStr], Field(max_length=MAX_LIST_ITEMS)] | None, not_null("array")
    ] = None
    languages: Annotated[
        Annotated[list[IdStr], Field(max_length=MAX_LIST_ITEMS)] | None, not_null("array")
    ] = None


Ms = Annotated[int, Field(ge=0, le=MAX_MS)]


class ServerVad(_Strict):
    type: Literal["server_vad"]
    threshold: Annotated[Annotated[float, Field(ge=0.0, le=1.0)] | None, not_null("number")] = None
    prefix_padding_ms: Annotated[Ms | None, not_null("integer")] = None
    silence_duration_ms: Annotated[Ms | None, not_null("integer")] = None
    idle_timeout_ms: Annotated[Ms, Field(ge=1)] | None = None
    create_response: Annotated[bool | None, not_null("boolean")] = None
    interrupt_response: Annotated[bool | None, not_null("boolean")] = None


class SemanticVad(_Strict):
    type: Literal["semantic_vad"]
    eagerness: Annotated[Literal["low", "medium", "high", "auto"] | None, not_null("string")] = None
    create_response: Annotated[bool | None, not_null("boolean")] = None
    interrupt_response: Annotated[bool | None, not_null("boolean")] = None


TurnDetection: TypeAlias = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class InputAudioConfig(_Strict):
    format: Annotated[AudioFormat | None, not_null("object")] = None
    noise_reduction: NoiseReduction | None = None
    transcription: AudioTranscription | None = None
    turn_detection: TurnDetection | None = None


# --- audio output (realtime_audio_config_output.py) --------------------------------------------


class VoiceId(_Strict):
    """Custom voice reference ``{"id": "voice_…"}``."""

    id: IdStr


Voice: TypeAlias = Annotated[
    Annotated[IdStr, Tag("string")] | Annotated[VoiceId, Tag("object")],
    kind_discriminator("string or object", "string", "object"),
]


class OutputAudioConfig(_Strict):
    format: Annotated[AudioFormat | None, not_null("object")] = None
    voice: Annotated[Voice | None, not_null("string or object")] = None
    speed: Annotated[Annotated[float, Field(ge=0.25, le=1.5)] | None, not_null("number")] = None


class RealtimeAudioConfig(_Strict):
    input: Annotated[InputAudioConfig | None, not_null("object")] = None
    output: Annotated[OutputAudioConfig | None, not_null("object")] = None


class TranscriptionInputAudioConfig(_Strict):
    format: Annotated[AudioFormat | None, not_null("object")] = None
    noise_reduction: NoiseReduction | None = None
    transcription: AudioTranscription | None = None
    turn_detection: TurnDetection | None = None


class TranscriptionAudioConfig(_Strict):
    input: Annotated[TranscriptionInputAudioConfig | None, not_null("object")] = None


# --- tools (realtime_function_tool.py, realtime_tools_config_union.py) --------------------------


class FunctionTool(_Strict):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=_TOOL_NAME_PATTERN)]
    description: Annotated[TextStr | None, not_null("string")] = None
    parameters: Annotated[JsonObject | None, not_null("object")] = None


class McpToolFilter(_Strict):
    read_only: Annotated[bool | None, not_null("boolean")] = None
    tool_names: Annotated[
        Annotated[list[IdStr], Field(max_length=MAX_LIST_ITEMS)] | None, not_null("array")
    ] = None


class McpApprovalFilter(_Strict):
    always: Annotated[McpToolFilter | None, not_null("object")] = None
    never: Annotated[McpToolFilter | None, not_null("object")] = None


_NameList = Annotated[list[IdStr], Field(max_length=MAX_LIST_ITEMS)]
McpAllowedTools: TypeAlias = Annotated[
    Annotated[_NameList, Tag("array")] | Annotated[McpToolFilter, Tag("object")],
    kind_discriminator("array or object", "array", "object"),
]
McpRequireApproval: TypeAlias = Annotated[
    Annotated[Literal["always", "never"], Tag("string")] | Annotated[McpApprovalFilter, Tag("object")],
    kind_discriminator("string or object", "string", "object"),
]
McpConnectorId: TypeAlias = Literal[
    "connector_dropbox",
    "connector_gmail",
    "connector_googlecalendar",
    "connector_googledrive",
    "connector_microsoftteams",
    "connector_outlookcalendar",
    "connector_outlookemail",
    "connector_sharepoint",
]


class McpTool(_Strict):
    """Remote MCP server tool. Accepted and echoed; the gateway does not call MCP servers."""

    type: Literal["mcp"]
    server_label: IdStr
    allowed_callers: Annotated[list[Literal["direct", "programmatic"]] | None, not_null("array")] = None
    allowed_tools: McpAllowedTools | None = None
    authorization: Annotated[Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None, not_null("string")] = (
        None
    )
    connector_id: Annotated[McpConnectorId | None, not_null("string")] = None
    defer_loading: Annotated[bool | None, not_null("boolean")] = None
    headers: Annotated[
        Annotated[dict[str, Annotated[str, Field(max_length=MAX_TEXT_CHARS)]], Field(max_length=64)] | None,
        not_null("object"),
    ] = None
    require_approval: McpRequireApproval | None = None
    server_description: Annotated[TextStr | None, not_null("string")] = None
    server_url: Annotated[Annotated[str, Field(min_length=1, max_length=2048)] | None, not_null("string")] = (
        None
    )
    tunnel_id: Annotated[IdStr | None, not_null("string")] = None

    @model_validator(mode="after")
    def _needs_a_server(self) -> McpTool:
        if self.server_url is None and self.connector_id is None and self.tunnel_id is None:
            raise PydanticCustomError(
                "missing_required_parameter",
                "one of server_url, connector_id or tunnel_id is required",
                {"subpath": ["server_url"]},
            )
        return self


Tool: TypeAlias = Annotated[FunctionTool | McpTool, Field(discriminator="type")]


# --- tool choice (realtime_tool_choice_config.py) ----------------------------------------------


class ToolChoiceFunction(_Strict):
    type: Literal["function"]
    name: IdStr


class ToolChoiceMcp(_Strict):
    type: Literal["mcp"]
    server_label: IdStr
    name: Annotated[IdStr | None, not_null("string")] = None


_ToolChoiceObject = Annotated[ToolChoiceFunction | ToolChoiceMcp, Field(discriminator="type")]
_ToolChoiceMode = Literal["none", "auto", "required"]
ToolChoice: TypeAlias = Annotated[
    Annotated[_ToolChoiceMode, Tag("string")] | Annotated[_ToolChoiceObject, Tag("object")],
    kind_discriminator("string or object", "string", "object"),
]


# --- misc (tracing, truncation, prompt, reasoning) ---------------------------------------------


class TracingConfiguration(_Strict):
    workflow_name: Annotated[IdStr | None, not_null("string")] = None
    group_id: Annotated[IdStr | None, not_null("string")] = None
    metadata: Annotated[JsonObject | None, not_null("object")] = None


Tracing: TypeAlias = Annotated[
    Annotated[Literal["auto"], Tag("string")] | Annotated[TracingConfiguration, Tag("object")],
    kind_discriminator("'auto', object or null", "string", "object"),
]


class TokenLimits(_Strict):
    post_instructions: Annotated[Annotated[int, Field(ge=1)] | None, not_null("integer")] = None


class RetentionRatioTruncation(_Strict):
    type: Literal["retention_ratio"]
    retention_ratio: Annotated[float, Field(ge=0.0, le=1.0)]
    token_limits: Annotated[TokenLimits | None, not_null("object")] = None


_TruncationMode = Literal["auto", "disabled"]
Truncation: TypeAlias = Annotated[
    Annotated[_TruncationMode, Tag("string")] | Annotated[RetentionRatioTruncation, Tag("object")],
    kind_discriminator("string or object", "string", "object"),
]

_LongStr = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
PromptVariable: TypeAlias = Annotated[
    Annotated[_LongStr, Tag("string")] | Annotated[JsonObject, Tag("object")],
    kind_discriminator("string or object", "string", "object"),
]


class Prompt(_Strict):
    """Prompt template reference (``responses/response_prompt.py``); variables are kept loosely."""

    id: IdStr
    variables: Annotated[dict[str, PromptVariable], Field(max_length=MAX_LIST_ITEMS)] | None = None
    version: IdStr | None = None


class Reasoning(_Strict):
    effort: Annotated[Literal["minimal", "low", "medium", "high", "xhigh"] | None, not_null("string")] = None


_TokenCount = Annotated[int, Field(ge=1, le=4096)]
MaxOutputTokens: TypeAlias = Annotated[
    Annotated[_TokenCount, Tag("integer")] | Annotated[Literal["inf"], Tag("string")],
    kind_discriminator("integer or 'inf'", "integer", "string"),
]
Include: TypeAlias = Annotated[
    list[Literal["item.input_audio_transcription.logprobs"]], Field(max_length=MAX_LIST_ITEMS)
]


# --- sessions ------------------------------------------------------------------------------------


def _one_modality(value: list[str]) -> list[str]:
    unique = list(dict.fromkeys(value))
    if len(unique) > 1:
        raise PydanticCustomError(
            "invalid_value",
            "{detail}",
            {"detail": "it is not possible to request both 'text' and 'audio'. Use ['audio'] or ['text']."},
        )
    return unique


def _unique_tool_names(tools: list[FunctionTool | McpTool]) -> list[FunctionTool | McpTool]:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        key = tool.name if isinstance(tool, FunctionTool) else f"mcp:{tool.server_label}"
        if key in seen:
            field = "name" if isinstance(tool, FunctionTool) else "server_label"
            raise PydanticCustomError(
                "invalid_value",
                "{detail}",
                {
                    "detail": f"duplicate tool {field} '{key.removeprefix('mcp:')}'.",
                    "subpath": [index, field],
                },
            )
        seen.add(key)
    return tools


class RealtimeSessionParams(_Strict):
    """``RealtimeSessionCreateRequest``: a realtime (speech-to-speech) session."""

    type: Literal["realtime"]
    model: Annotated[IdStr | None, not_null("string")] = None
    instructions: Annotated[
        Annotated[str, Field(max_length=MAX_INSTRUCTIONS_CHARS)] | None, not_null("string")
    ] = None
    audio: Annotated[RealtimeAudioConfig | None, not_null("object")] = None
    include: Annotated[Include | None, not_null("array")] = None
    max_output_tokens: Annotated[MaxOutputTokens | None, not_null("integer or 'inf'")] = None
    output_modalities: Annotated[
        Annotated[
            list[Literal["text", "audio"]], Field(min_length=1, max_length=2), AfterValidator(_one_modality)
        ]
        | None,
        not_null("array"),
    ] = None
    parallel_tool_calls: Annotated[bool | None, not_null("boolean")] = None
    prompt: Prompt | None = None
    reasoning: Annotated[Reasoning | None, not_null("object")] = None
    tool_choice: Annotated[ToolChoice | None, not_null("string or object")] = None
    tools: Annotated[
        Annotated[list[Tool], Field(max_length=MAX_TOOLS), AfterValidator(_unique_tool_names)] | None,
        not_null("array"),
    ] = None
    tracing: Tracing | None = None
    truncation: Annotated[Truncation | None, not_null("string or object")] = None


class TranscriptionSessionParams(_Strict):
    """``RealtimeTranscriptionSessionCreateRequest``: a transcription-only session."""

    type: Literal["transcription"]
    audio: Annotated[TranscriptionAudioConfig | None, not_null("object")] = None
    include: Annotated[Include | None, not_null("array")] = None


SessionParams: TypeAlias = RealtimeSessionParams | TranscriptionSessionParams
