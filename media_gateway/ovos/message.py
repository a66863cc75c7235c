"""The OVOS messagebus wire format: one JSON text frame per message, `{"type", "data", "context"}`.

Routing uses the context: `source`/`destination` say who sent a message and for whom (`message.reply()`
swaps them), `session` carries the whole OVOS session dict (its `session_id` names the realtime session).
The gateway's own messages use the source `gateway:<session id>` and the destination `["skills"]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

SOURCE_PREFIX: Final = "gateway:"
# The bus refuses frames over its `max_msg_size` (25 MB by default); nothing the gateway receives legitimately
# comes close. Larger frames are dropped by the client before parsing.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


class BadMessage(ValueError):
    pass


@dataclass(frozen=True)
class OvosMessage:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def session_id(self) -> str | None:
        session = self.context.get("session")
        if isinstance(session, dict):
            value = session.get("session_id")
            return value if isinstance(value, str) else None
        return None

    @property
    def session(self) -> dict[str, Any] | None:
        session = self.context.get("session")
        return session if isinstance(session, dict) else None

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type, "data": self.data, "context": self.context}, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> OvosMessage:
        try:
            body = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadMessage(f"not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise BadMessage("not an object with a string type")
        data = body.get("data")
        context = body.get("context")
        return cls(
            body["type"],
            data if isinstance(data, dict) else {},
            context if isinstance(context, dict) else {},
        )


def gateway_source(session_id: str) -> str:
    return SOURCE_PREFIX + session_id


def for_session(
    message_type: str, session: dict[str, Any], data: dict[str, Any] | None = None
) -> OvosMessage:
    """A message from the gateway about one session, addressed to the skills."""
    return OvosMessage(
        message_type,
        data or {},
        {
            "source": gateway_source(str(session["session_id"])),
            "destination": ["skills"],
            "session": session,
        },
    )


def utterance(text: str, lang: str, session: dict[str, Any]) -> OvosMessage:
    """What a transcript becomes: `recognizer_loop:utterance`, as a voice satellite sends it."""
    return for_session("recognizer_loop:utterance", session, {"utterances": [text], "lang": lang})


def is_echo(message: OvosMessage, session_id: str) -> bool:
    """The bus sends every client its own messages back."""
    return message.context.get("source") == gateway_source(session_id)
