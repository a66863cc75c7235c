"""SIP messages as sipp logs them (`-trace_msg -message_file`), and the result of one sipp run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# RFC 3261 §7.3.3 compact header names (and those of RFC 3515, 3265, 3892).
_COMPACT = {
    "f": "from", "t": "to", "v": "via", "i": "call-id", "m": "contact", "l": "content-length",
    "c": "content-type", "e": "content-encoding", "k": "supported", "s": "subject", "r": "refer-to",
    "o": "event", "b": "referred-by", "u": "allow-events",
}  # fmt: skip


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from sipp's `-trace_msg` log, as sipp sent or received it."""

    direction: Literal["sent", "received"]
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        match = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str:
        """A request's method, or a response's CSeq method."""
        if self.status is None:
            return self.first_line.split(" ", 1)[0]
        return (self.header("CSeq") or " ").split()[-1]

    @property
    def headers(self) -> list[tuple[str, str]]:
        head = self.text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")[1:]
        return [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in head)]

    @property
    def body(self) -> str:
        parts = self.text.replace("\r\n", "\n").split("\n\n", 1)
        return parts[1] if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        """The first value of a header, by its name in any case or its compact form (`f` for From, …)."""
        wanted = _COMPACT.get(name.lower(), name.lower())
        return next((v for k, v in self.headers if _COMPACT.get(k.lower(), k.lower()) == wanted), None)

    def header_values(self, name: str) -> list[str]:
        """Every value of a header (each line; comma-separated values are not split)."""
        wanted = _COMPACT.get(name.lower(), name.lower())
        return [v for k, v in self.headers if _COMPACT.get(k.lower(), k.lower()) == wanted]


_MESSAGE_START = re.compile(r"^-{20,} \S+ \S+\n(UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*\n\n", re.M)


def parse_sipp_messages(log: str) -> list[SipMessage]:
    """The messages of a sipp `-message_file` (written with `-trace_msg`)."""
    starts = list(_MESSAGE_START.finditer(log))
    out: list[SipMessage] = []
    for n, match in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(log)
        direction: Literal["sent", "received"] = "sent" if match.group(2) == "sent" else "received"
        out.append(SipMessage(direction, log[match.end() : end].strip("\n") + "\n"))
    return out


@dataclass
class SippResult:
    """What one sipp run did: its exit code (0 when the scenario completed, 1 when the call failed, e.g. on
    an unexpected message or a timeout), the SIP messages it logged, its errors (stderr and the error log,
    which says what it expected instead) and the end of its statistics screen."""

    exit_code: int
    messages: list[SipMessage]
    errors: str
    screen: str
    duration_s: float

    @property
    def log_tail(self) -> str:
        """For assertion messages: the last lines of its errors, then of its screen."""
        return "\n".join([*self.errors.splitlines()[-30:], *self.screen.splitlines()[-12:]])

    def sent(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "sent" and m.status is None and m.method == method]

    def received(self, method: str) -> list[SipMessage]:
        return [
            m for m in self.messages if m.direction == "received" and m.status is None and m.method == method
        ]

    def responses(self, method: str, direction: Literal["sent", "received"] = "received") -> list[SipMessage]:
        return [
            m
            for m in self.messages
            if m.direction == direction and m.status is not None and m.method == method
        ]

    @property
    def final_status(self) -> int | None:
        """The final response to the INVITE (sent by a caller, received by an answerer), or None."""
        direction: Literal["sent", "received"] = "received" if self.sent("INVITE") else "sent"
        finals = [m.status for m in self.responses("INVITE", direction) if m.status and m.status >= 200]
        return finals[-1] if finals else None

    @property
    def refer_to(self) -> str | None:
        """The Refer-To header of the REFER received, if any."""
        refers = self.received("REFER")
        return refers[0].header("Refer-To") if refers else None
