"""The input documents of the three decision points (``input`` in the Rego policy).

They are plain JSON objects; these TypedDicts document their shape for callers and type-checkers. The
policy itself validates every field (a missing field or a wrong type is a deny with a reason, never an
error), so an engine accepts any ``Mapping[str, Any]``.

Inputs never carry secrets: keys and client secrets appear by id only.

``mint`` (``POST /v1/realtime/client_secrets``)::

    {"key": KeyInfo, "request": {"ttl_seconds": int, "session": SessionSummary}, "usage": MintUsage}

``session_update`` (a client's ``session.update`` on a live session)::

    {"key": KeyInfo, "session": {"id": str, "type": str},
     "current": SessionSummary, "requested": SessionSummary}

``requested`` is the complete configuration the session would have after the update (the current one
with the update merged in), not the partial update.

``connect`` (a WebSocket or WebRTC connection, or a phone call, opening a session)::

    {"key": KeyInfo, "secret": SecretInfo | None,
     "transport": "websocket" | "webrtc" | "twilio" | "sip",
     "usage": {"concurrent_sessions": int}, "call": CallInfo | None}

``secret`` is ``None`` when the caller authenticated with the API key itself; ``key`` is then that key,
otherwise the key that minted the client secret.

``call`` carries the facts of a phone call: it is required (an object) for the phone transports
``"twilio"`` and ``"sip"``, and must be absent or ``None`` for ``"websocket"`` and ``"webrtc"``; anything
else is a deny. The policy decides the call on them against the ``calls`` lists of the key's scope
(``data.ovos_gateway.config.scopes[<scope>].calls``) and of the key (``...keys[<key id>].calls``, list by
list over the scope's): ``{"sources": [CIDR], "callers": [pattern], "called": [pattern]}``, each list
optional (absent: anything is allowed; present: the call's field must match one entry). ``sources`` take
the source address by range (an IPv4-mapped IPv6 address counts as IPv4, and only IPv4 ranges match it);
``callers`` and ``called`` patterns are literal but for ``*`` (any run of characters, none included). See
the METADATA block of ``rego/realtime.rego`` for the details and the reasons.

Usage counts are read from the database, so they cover every gateway process sharing it, but without a
lock: the decision returns the limits it applied (``limits`` in the decision document, see
:mod:`media_gateway.policy.engine`) and the gateway enforces them again atomically with its write.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = [
    "CallInfo",
    "ConnectInput",
    "ConnectUsage",
    "KeyInfo",
    "LiveSessionInfo",
    "MintInput",
    "MintRequest",
    "MintUsage",
    "SecretInfo",
    "SessionSummary",
    "SessionUpdateInput",
]


class KeyInfo(TypedDict):
    """The API key a request is made with (by id; never its value or hash)."""

    id: str
    #: Scope names. Limits come from the most privileged scope the data document knows
    #: (``scope_precedence``: admin, realtime, restricted); a key with none of them is denied.
    scopes: list[str]
    revoked: bool


class SessionSummary(TypedDict):
    """What the policy looks at in a realtime session configuration.

    Optional fields may be absent or ``None`` (the gateway's defaults apply).
    """

    type: Literal["realtime", "transcription"]
    #: A realtime model for ``type == "realtime"``, a transcription model for ``"transcription"``.
    model: str
    voice: NotRequired[str | None]
    output_modalities: NotRequired[list[Literal["audio", "text"]] | None]
    #: A positive integer or ``"inf"``.
    max_output_tokens: NotRequired[int | Literal["inf"] | None]
    tools_count: NotRequired[int | None]
    #: Length in characters of ``instructions``.
    instructions_length: NotRequired[int | None]


class MintRequest(TypedDict):
    #: Lifetime of the client secret to mint (``expires_after.seconds``, default applied by the caller).
    ttl_seconds: int
    session: SessionSummary


class MintUsage(TypedDict):
    """The key's usage *before* this mint."""

    mints_last_minute: int
    concurrent_sessions: int
    #: Seconds until the mint rate window frees a slot, when known; it becomes ``retry_after_seconds``.
    mint_window_resets_in_seconds: NotRequired[float | None]


class MintInput(TypedDict):
    key: KeyInfo
    request: MintRequest
    usage: MintUsage


class LiveSessionInfo(TypedDict):
    id: str
    type: Literal["realtime", "transcription"]


class SessionUpdateInput(TypedDict):
    key: KeyInfo
    session: LiveSessionInfo
    current: SessionSummary
    requested: SessionSummary


class SecretInfo(TypedDict):
    """The ephemeral client secret a connection presents (by id; never its value)."""

    id: str
    expired: bool
    revoked: bool
    #: Connections open with this secret now (on any gateway), and how many it allows (usually 1). A secret
    #: opens its one session, which has one primary connection, so the gateway refuses a second one with
    #: 409 before asking: the policy sees 0 here.
    live_connections: int
    max_live_connections: int


class ConnectUsage(TypedDict):
    #: The key's live sessions now (connected on a live gateway, or hydrated with an unexpired secret),
    #: not counting the one being opened.
    concurrent_sessions: int


# The facts of a phone call (transports ``twilio`` and ``sip``) the policy decides on. Functional syntax,
# since ``from`` is a Python keyword:
#
# * ``from``: the caller: the user part of the SIP From URI as it appears in the URI (escapes kept), or an
#   E.164 number (``"+15551234567"``); ``""`` when the caller is withheld or unknown. Policy patterns match
#   it case-sensitively.
# * ``to``: the called number or user (the user part of the SIP request URI, or the E.164 number dialled);
#   ``""`` when unknown.
# * ``source``: the IP address the call came from (the peer of the SIP or Media Streams connection), an
#   IPv4 or IPv6 address without port, brackets or zone (``"192.0.2.10"``, ``"2001:db8::1"``); an
#   IPv4-mapped IPv6 address (``"::ffff:192.0.2.10"``) counts as IPv4.
CallInfo = TypedDict("CallInfo", {"from": str, "to": str, "source": str})


class ConnectInput(TypedDict):
    key: KeyInfo
    secret: SecretInfo | None
    transport: Literal["websocket", "webrtc", "twilio", "sip"]
    usage: ConnectUsage
    #: Required for ``twilio`` and ``sip``; absent or ``None`` for ``websocket`` and ``webrtc``.
    call: NotRequired[CallInfo | None]
