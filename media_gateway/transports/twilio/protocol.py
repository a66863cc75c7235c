"""Twilio Media Streams' wire format (bidirectional streams, `<Connect><Stream url="wss://…">`): JSON text
frames, audio as base64 8 kHz μ-law. Parsing and building only; the stream's behaviour is in `stream.py`.

Twilio → gateway: `connected`, `start` (stream and call ids, `customParameters` from the TwiML's
`<Parameter>`s, the media format), `media` (20 ms of the caller's audio), `dtmf`, `mark` (a mark the
gateway sent has played, or a `clear` dropped it), `stop`. Gateway → Twilio: `media`, `mark`, `clear`.
Telnyx, Exotel and others send the same shape.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Final

# A Twilio frame carries 20 ms of μ-law (about 300 bytes of JSON); anything near this size is not one.
MAX_FRAME_BYTES: Final = 64 * 1024
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
MULAW_8K: Final = ("audio/x-mulaw", 8000, 1)


class ProtocolError(ValueError):
    """A frame that is not a Twilio Media Streams message (the reason is safe to log)."""


class UnsupportedFormat(ProtocolError):
    """A stream whose audio is not 8 kHz mono μ-law (Twilio's only format)."""


@dataclass(frozen=True)
class Connected:
    protocol: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    payload: bytes  # μ-law, 8 kHz
    track: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Stop:
    pass


Message = Connected | Start | Media | Mark | Dtmf | Stop


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise ProtocolError(f"'{body.get('event')}' has no '{name}' object")
    return value


def _text(obj: dict[str, Any], name: str, *, limit: int = 128) -> str:
    value = obj.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"'{name}' must be a string of at most {limit} characters")
    return value


def parse(frame: str) -> Message | None:
    """One text frame; None for an event this gateway does not act on."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} characters (a Twilio frame is far smaller)")
    try:
        body = json.loads(frame)
    except ValueError:
        raise ProtocolError("not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise ProtocolError("not an object with an 'event'")
    event = body["event"]
    if event == "media":
        media = _object(body, "media")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError("'media' has no base64 'payload'")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("'media.payload' is not base64") from None
        return Media(audio, _text(media, "track") or "inbound")
    if event == "mark":
        return Mark(_text(_object(body, "mark"), "name"))
    if event == "dtmf":
        digit = _text(_object(body, "dtmf"), "digit", limit=1)
        if digit not in DTMF_DIGITS:
            raise ProtocolError("'dtmf.digit' is not a keypad digit")
        return Dtmf(digit)
    if event == "start":
        start = _object(body, "start")
        parameters = start.get("customParameters") or {}
        if not isinstance(parameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= 4096 for k, v in parameters.items()
        ):
            raise ProtocolError("'start.customParameters' must map names to strings")
        media_format = start.get("mediaFormat")
        if media_format is not None:
            if not isinstance(media_format, dict):
                raise ProtocolError("'start.mediaFormat' must be an object")
            shape = (
                media_format.get("encoding"),
                media_format.get("sampleRate"),
                media_format.get("channels"),
            )
            if shape != MULAW_8K:
                raise UnsupportedFormat(f"unsupported media format {shape!r}: only 8 kHz mono audio/x-mulaw")
        return Start(
            stream_sid=_text(body, "streamSid") or _text(start, "streamSid"),
            call_sid=_text(start, "callSid"),
            account_sid=_text(start, "accountSid"),
            custom_parameters=dict(parameters),
        )
    if event == "connected":
        return Connected(_text(body, "protocol"))
    if event == "stop":
        return Stop()
    return None


def _frame(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def media_frame(stream_sid: str, mulaw: bytes) -> str:
    return _frame(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": base64.b64encode(mulaw).decode()}}
    )


def mark_frame(stream_sid: str, name: str) -> str:
    return _frame({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_frame(stream_sid: str) -> str:
    return _frame({"event": "clear", "streamSid": stream_sid})
