"""SIP messages (RFC 3261 §7): parsing what a trunk or PBX sends, building what the gateway answers.

Only what a user agent server needs: a request or response line, headers (compact forms expanded, names
case-insensitive, repeated headers kept in order), a body sized by `Content-Length`. Anything that cannot be
parsed raises `SipParseError`; the server answers a parseable-enough request with `400 Bad Request` and
drops the rest (RFC 3261 §16.3 / §18.3: a datagram that is not a message is discarded).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Final

MAX_MESSAGE_BYTES: Final = 65_535  # one UDP datagram
# Headers every request must carry (RFC 3261 §8.1.1); a request without one gets 400.
REQUIRED_HEADERS: Final = ("via", "from", "to", "call-id", "cseq")
_COMPACT: Final = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "r": "refer-to",
    "e": "content-encoding",
}
_CANONICAL: Final = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "rseq": "RSeq",
    "rack": "RAck",
}
_REQUEST_LINE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)
_URI_IN = re.compile(r"<([^>]*)>")
_USER = re.compile(r"^(?:sips?|tel):([^@;>]*)", re.IGNORECASE)

REASONS: Final = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
    606: "Not Acceptable",
}


class SipParseError(ValueError):
    """Not a SIP message, or one the gateway cannot read."""


def canonical(name: str) -> str:
    lowered = name.strip().lower()
    lowered = _COMPACT.get(lowered, lowered)
    return _CANONICAL.get(lowered) or "-".join(part.capitalize() for part in lowered.split("-"))


@dataclass
class SipMessage:
    """A request (`method` and `uri` set) or a response (`status` set)."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        wanted = canonical(name)
        for key, value in self.headers:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = canonical(name)
        return [value for key, value in self.headers if key == wanted]

    def set(self, name: str, value: str) -> None:
        wanted = canonical(name)
        self.headers = [(key, v) for key, v in self.headers if key != wanted]
        self.headers.append((wanted, value))

    @property
    def call_id(self) -> str:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("cseq").strip().partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError:
            raise SipParseError(f"bad CSeq: {self.get('cseq')!r}") from None

    @property
    def from_tag(self) -> str:
        return tag_of(self.get("from"))

    @property
    def to_tag(self) -> str:
        return tag_of(self.get("to"))

    @property
    def branch(self) -> str:
        via = self.get("via")
        match = re.search(r";\s*branch=([^;,\s]+)", via, re.IGNORECASE)
        return match.group(1) if match else ""

    def encode(self) -> bytes:
        first = (
            f"{self.method} {self.uri} SIP/2.0"
            if self.is_request
            else f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status, '')}"
        )
        lines = [first]
        lines += [f"{key}: {value}" for key, value in self.headers if key != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def parse(data: bytes) -> SipMessage:
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")  # bare LF line ends (RFC 3261 §7.5 allows them)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    message = SipMessage()
    if match := _REQUEST_LINE.match(first):
        message.method, message.uri = match.group(1).upper(), match.group(2)
    elif match := _STATUS_LINE.match(first):
        message.status, message.reason = int(match.group(1)), match.group(2)
    else:
        raise SipParseError("not a SIP request or status line")
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and message.headers:  # a folded header continues the previous one
            key, value = message.headers[-1]
            message.headers[-1] = (key, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipParseError(f"bad header line: {line[:60]!r}")
        key = canonical(name)
        if key == "Via" and "," in value:  # several Via values in one header line
            message.headers += [(key, part.strip()) for part in value.split(",")]
        else:
            message.headers.append((key, value.strip()))
    length_text = message.get("content-length")
    if length_text:
        try:
            length = int(length_text)
        except ValueError:
            raise SipParseError("bad Content-Length") from None
        if length < 0 or length > len(body):
            raise SipParseError("Content-Length does not match the body")
        body = body[:length]
    message.body = body
    return message


def missing_headers(message: SipMessage) -> list[str]:
    return [name for name in REQUIRED_HEADERS if not message.get(name)]


def tag_of(header: str) -> str:
    match = _TAG.search(header.split(">", 1)[1] if ">" in header else header)
    return match.group(1) if match else ""


def uri_of(header: str) -> str:
    """The URI of a From/To/Contact/Refer-To value (`"Bob" <sip:bob@host>;tag=1` → `sip:bob@host`)."""
    match = _URI_IN.search(header)
    return (match.group(1) if match else header.split(";", 1)[0]).strip()


def user_of(uri_or_header: str) -> str:
    """The user part (a number or name) of a SIP/tel URI or a header carrying one; "" when there is none."""
    match = _USER.match(uri_of(uri_or_header))
    return match.group(1) if match else ""


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def response_to(request: SipMessage, status: int, *, to_tag: str = "", reason: str = "") -> SipMessage:
    """A response to `request` (RFC 3261 §8.2.6): its Via, From, Call-ID and CSeq; To with our tag."""
    response = SipMessage(status=status, reason=reason or REASONS.get(status, ""))
    response.headers += [("Via", via) for via in request.get_all("via")]
    response.headers.append(("From", request.get("from")))
    to = request.get("to")
    if to_tag and not tag_of(to) and status != 100:
        to = f"{to};tag={to_tag}"
    response.headers += [("To", to), ("Call-ID", request.call_id), ("CSeq", request.get("cseq"))]
    return response
