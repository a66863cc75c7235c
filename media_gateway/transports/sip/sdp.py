"""SDP offer/answer for a SIP call's audio (RFC 4566, RFC 3264): read the caller's offer, choose one codec
and telephone-events, write the answer.

The gateway speaks plain RTP (`RTP/AVP`) with PCMU, PCMA or Opus and RFC 4733 telephone-events. It takes
the first codec of the offer's order that it supports (the offerer lists its preference first), the same
codec both ways. Other media lines (video, a second audio stream) are declined with port 0, as RFC 3264 §6
requires instead of dropping them. An offer with nothing usable is refused with 488.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Final, Literal

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION: Final[dict[str, Direction]] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# Static payload types of RFC 3551 that the gateway knows without an rtpmap.
_STATIC: Final = {0: ("pcmu", 8000, 1), 8: ("pcma", 8000, 1)}
SUPPORTED_CODECS: Final = ("opus", "pcmu", "pcma")
_UNSPECIFIED: Final = ("0.0.0.0", "::")  # noqa: S104 - a connection address meaning "on hold", not a bind
MAX_SDP_BYTES: Final = 16_384


class SdpError(ValueError):
    """An offer the gateway cannot answer; `status` is the SIP response that says so."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Codec:
    name: str  # "pcmu", "pcma", "opus" (lower case)
    payload_type: int
    clock_rate: int
    channels: int = 1

    @property
    def rtpmap(self) -> str:
        wire = {"pcmu": "PCMU", "pcma": "PCMA"}.get(self.name, self.name)
        suffix = f"/{self.channels}" if self.channels > 1 else ""
        return f"{wire}/{self.clock_rate}{suffix}"


@dataclass
class MediaLine:
    kind: str
    port: int
    proto: str
    formats: list[str]
    rtpmaps: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtps: dict[int, str] = field(default_factory=dict)
    address: str | None = None
    direction: Direction | None = None


@dataclass(frozen=True)
class Negotiated:
    """What the answer agreed: where to send, which codec, which payload type carries digits."""

    remote_address: str
    remote_port: int
    codec: Codec
    dtmf_payload_type: int | None
    direction: Direction  # the direction of the *answer* (what the gateway does)
    media_index: int  # which m= line is the call's audio
    #: Every offered m= line as (media, proto, first format): the answer declines the others in kind.
    offered: tuple[tuple[str, str, str], ...] = ()

    @property
    def on_hold(self) -> bool:
        """The caller stopped listening (RFC 3264 §8.4: sendonly/inactive, or the RFC 2543 0.0.0.0)."""
        return self.direction in ("recvonly", "inactive") or self.remote_address in _UNSPECIFIED


def _media_lines(text: str) -> tuple[list[MediaLine], Direction | None]:
    session_address: str | None = None
    session_direction: Direction | None = None
    lines: list[MediaLine] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"bad media line: {line[:60]!r}", 400)
            try:
                port = int(parts[1].split("/")[0])
            except ValueError:
                raise SdpError(f"bad media port: {parts[1][:20]!r}", 400) from None
            if not 0 <= port <= 65535:
                raise SdpError(f"bad media port: {port}", 400)
            lines.append(MediaLine(parts[0], port, parts[2], parts[3:]))
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError(f"bad connection line: {line[:60]!r}", 400)
            address = parts[2].split("/")[0]
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise SdpError(f"connection address is not an IP address: {address[:60]!r}", 488) from None
            if lines:
                lines[-1].address = address
            else:
                session_address = address
        elif kind == "a" and lines:
            _attribute(lines[-1], value)
        elif kind == "a" and value in _DIRECTIONS:
            session_direction = value  # type: ignore[assignment]
    for media in lines:
        media.address = media.address or session_address
    return lines, session_direction


def _attribute(media: MediaLine, value: str) -> None:
    name, _, rest = value.partition(":")
    if value in _DIRECTIONS:
        media.direction = value  # type: ignore[assignment]
    elif name == "rtpmap":
        pt_text, _, encoding = rest.partition(" ")
        parts = encoding.strip().split("/")
        try:
            pt, rate = int(pt_text), int(parts[1])
            channels = int(parts[2]) if len(parts) > 2 else 1
        except (ValueError, IndexError):
            return  # an rtpmap we cannot read: its payload type stays unknown
        media.rtpmaps[pt] = (parts[0].lower(), rate, channels)
    elif name == "fmtp":
        pt_text, _, params = rest.partition(" ")
        if pt_text.isdigit():
            media.fmtps[int(pt_text)] = params.strip()


def negotiate(offer: bytes, codecs: tuple[str, ...] = SUPPORTED_CODECS) -> Negotiated:
    """Choose the call's audio from an SDP offer; `SdpError` (488, or 400 when malformed) otherwise."""
    if len(offer) > MAX_SDP_BYTES:
        raise SdpError("SDP offer too large", 413)
    try:
        text = offer.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8", 400) from None
    if not text.lstrip().startswith("v=0"):
        raise SdpError("not an SDP body (no v=0)", 400)
    lines, session_direction = _media_lines(text)
    reasons: list[str] = []
    for index, media in enumerate(lines):
        if media.kind != "audio" or media.port == 0:
            continue
        if media.proto != "RTP/AVP":
            reasons.append(f"transport {media.proto} (only RTP/AVP)")
            continue
        if media.address is None:
            raise SdpError("no connection address for the audio", 400)
        codec, dtmf = _choose(media, codecs)
        if codec is None:
            reasons.append("codecs " + " ".join(_describe(media, fmt) for fmt in media.formats))
            continue
        direction = media.direction or session_direction or "sendrecv"
        return Negotiated(
            remote_address=media.address,
            remote_port=media.port,
            codec=codec,
            dtmf_payload_type=dtmf,
            direction=_ANSWER_DIRECTION[direction],
            media_index=index,
            offered=tuple((m.kind, m.proto, (m.formats or ["0"])[0]) for m in lines),
        )
    if not reasons:
        raise SdpError("no audio stream offered")
    raise SdpError("no supported audio: offered " + "; ".join(reasons) + " (supported: PCMU, PCMA, opus)")


def _describe(media: MediaLine, fmt: str) -> str:
    if fmt.isdigit() and int(fmt) in media.rtpmaps:
        return media.rtpmaps[int(fmt)][0]
    return fmt


def _choose(media: MediaLine, codecs: tuple[str, ...]) -> tuple[Codec | None, int | None]:
    chosen: Codec | None = None
    dtmf: int | None = None
    for fmt in media.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        name, rate, channels = media.rtpmaps.get(pt) or _STATIC.get(pt, ("", 0, 0))
        if name == "telephone-event" and rate == 8000 and dtmf is None:
            dtmf = pt
        elif chosen is None and name in codecs and rate == (48000 if name == "opus" else 8000):
            chosen = Codec(name, pt, rate, channels if name == "opus" else 1)
    return chosen, dtmf


def answer(negotiated: Negotiated, address: str, port: int, *, version: int = 0) -> bytes:
    """The SDP answer: one audio line at `address:port` (other offered lines declined with port 0)."""
    family = "IP6" if ":" in address else "IP4"
    codec = negotiated.codec
    formats = [str(codec.payload_type)]
    attributes = [f"a=rtpmap:{codec.payload_type} {codec.rtpmap}"]
    if codec.name == "opus":
        attributes.append(f"a=fmtp:{codec.payload_type} minptime=10;useinbandfec=1")
    if negotiated.dtmf_payload_type is not None:
        pt = negotiated.dtmf_payload_type
        formats.append(str(pt))
        attributes += [f"a=rtpmap:{pt} telephone-event/8000", f"a=fmtp:{pt} 0-16"]
    attributes += ["a=ptime:20", f"a={negotiated.direction}"]
    session_id = int.from_bytes(secrets.token_bytes(4), "big")
    lines = [
        "v=0",
        f"o=- {session_id} {version} IN {family} {address}",
        "s=ovos-media-gateway",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for index, (kind, proto, first) in enumerate(negotiated.offered):
        if index == negotiated.media_index:
            lines.append(f"m=audio {port} RTP/AVP {' '.join(formats)}")
            lines += attributes
        else:
            lines.append(f"m={kind} 0 {proto} {first}")  # declined (RFC 3264 §6)
    return ("\r\n".join(lines) + "\r\n").encode()
