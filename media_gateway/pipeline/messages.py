"""The messages that cross the bus between the realtime engine and the speech pipeline.

Every message is keyed by the realtime session id, so one session's messages stay in order (on Kafka: one
partition per session). Two kinds share each topic, told apart by the `kind` header:

* `audio`: the payload is raw PCM, signed 16-bit little-endian, mono. Frames the engine publishes are
  16 kHz, 20 ms (640 bytes); audio the pipeline returns carries its rate in the `sample_rate` header.
* `event`: the payload is one JSON object with a `type`.

Engine → pipeline (`INPUT_TOPIC`, one topic for all gateways). Every message carries the `reply-to`
header, the gateway's own reply topic (`reply_topic(instance_id)`), and the turn events `input.commit` and
`response.create` carry the session's settings in `session` and the pipeline's last `session.state` in
`state`: a worker that takes a session over after a rebalance, without having seen `session.open`, has all
it needs to answer the next turn (and to continue an OVOS dialog).

| type | fields | meaning |
|---|---|---|
| `session.open` / `.update` | `SessionSettings` fields | start or reconfigure a session (language, |
|  |  | time zone, voice, instructions) |
| (audio) | headers `seq` | the next 20 ms of input; frames since the last commit/clear |
| `input.commit` | `item_id` | the frames so far are utterance `item_id`: transcribe them |
| `input.clear` | | drop the frames so far |
| `response.create` | `response_id`, `input_item_id`/`input_text`, `instructions`, | answer that |
|  | `output_modalities` | utterance (after its transcript) or that text |
| `response.cancel` | `response_id` | stop it, then answer `response.done` `cancelled` |
| `input.dtmf` | `digit` | a keypad press on a phone call (0-9, *, #, A-D) |
| `output_audio.played` | `response_id`, `mark`, `interrupted` | the client played the reply up to `mark` |
|  |  | (`interrupted`: its playout was cut there) |
| `session.close` | | forget the session |

Pipeline → engine (the `reply-to` topic of the session's gateway):

| type | fields |
|---|---|
| `transcription.delta` | `item_id`, `delta` |
| `transcription.completed` | `item_id`, `transcript`, `audio_seconds` |
| `transcription.failed` | `item_id`, `message` |
| `response.text.delta` | `response_id`, `delta` |
| (audio) | headers `response_id`, `sample_rate`, `seq` |
| `response.started` | `response_id`: a reply nobody asked for (a timer, a reminder); its text, audio |
|  | and `response.done` follow as for any response |
| `response.mark` | `response_id`, `mark`: the audio so far ends a spoken passage; report it played |
| `response.alive` | `response_id`: the response is still being worked on (every `ALIVE_SECONDS`) |
| `response.done` | `response_id`, `status` (`completed`/`cancelled`/`failed`), `message` |
| `session.state` | `state`: opaque to the gateway; it sends the latest back with every turn event |
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from media_gateway.pipeline.bus import KIND_HEADER, BusMessage

INPUT_TOPIC: Final = "rt.in"
REPLY_TOPIC_PREFIX: Final = "rt.out."
REPLY_TO_HEADER: Final = "reply-to"
TURN_EVENTS: Final = frozenset({"input.commit", "response.create"})
# A worker says a response is alive this often; a gateway that hears nothing of it for
# `pipeline_idle_timeout_seconds` (several periods) fails it.
ALIVE_SECONDS: Final = 1.0


def instance_slug(instance_id: str) -> str:
    """A gateway instance id in the characters Kafka names allow (letters, digits and . _ -; an instance
    id may hold : @ [ ] too)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", instance_id)


def reply_topic(instance_id: str) -> str:
    """The topic a gateway instance receives its sessions' replies on."""
    return REPLY_TOPIC_PREFIX + instance_slug(instance_id)


PIPELINE_SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = PIPELINE_SAMPLE_RATE * FRAME_MS // 1000  # 320
FRAME_BYTES = FRAME_SAMPLES * 2  # 640

KIND_AUDIO = "audio"
KIND_EVENT = "event"


@dataclass(frozen=True)
class PipelineEvent:
    session_id: str
    type: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class PipelineAudio:
    session_id: str
    pcm: bytes
    sample_rate: int
    headers: Mapping[str, str]


def event_payload(event_type: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
    body = {"type": event_type, **fields}
    return json.dumps(body, separators=(",", ":")).encode(), {KIND_HEADER: KIND_EVENT}


def audio_headers(sample_rate: int = PIPELINE_SAMPLE_RATE, **extra: str) -> dict[str, str]:
    return {KIND_HEADER: KIND_AUDIO, "sample_rate": str(sample_rate), **extra}


def decode(message: BusMessage) -> PipelineEvent | PipelineAudio:
    """Turn a bus message into an event or an audio chunk; raise ValueError on anything else."""
    kind = message.headers.get(KIND_HEADER)
    if kind == KIND_AUDIO:
        rate = int(message.headers.get("sample_rate", PIPELINE_SAMPLE_RATE))
        if len(message.payload) % 2:
            raise ValueError("audio payload has an odd number of bytes")
        return PipelineAudio(message.key, message.payload, rate, message.headers)
    if kind == KIND_EVENT:
        body = json.loads(message.payload)
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise ValueError("event payload is not an object with a type")
        event_type = body.pop("type")
        return PipelineEvent(message.key, event_type, body)
    raise ValueError(f"unknown message kind {kind!r}")


@dataclass(frozen=True)
class SessionSettings:
    """What the pipeline needs to know about a session (sent with session.open / session.update)."""

    language: str = "en"
    instructions: str = ""
    voice: str = "alloy"
    output_modalities: tuple[str, ...] = ("audio",)
    transcribe: bool = True
    timezone: str | None = None  # IANA zone for answers about the time; None: the pipeline's default
    # OVOS session fields the key's policy sets (`ovos.sessions.POLICY_FIELDS`: pipeline, system_unit...).
    ovos: Mapping[str, Any] = field(default_factory=dict)

    def as_fields(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "instructions": self.instructions,
            "voice": self.voice,
            "output_modalities": list(self.output_modalities),
            "transcribe": self.transcribe,
            "timezone": self.timezone,
            "ovos": dict(self.ovos),
        }

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> SessionSettings:
        return cls(
            language=str(data.get("language", "en")),
            instructions=str(data.get("instructions", "")),
            voice=str(data.get("voice", "alloy")),
            output_modalities=tuple(data.get("output_modalities", ("audio",))),
            transcribe=bool(data.get("transcribe", True)),
            timezone=str(data["timezone"]) if data.get("timezone") else None,
            ovos=dict(data["ovos"]) if isinstance(data.get("ovos"), Mapping) else {},
        )
