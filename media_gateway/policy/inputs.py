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

``connect`` (a WebSocket or WebRTC connection opening a session)::

    {"key": KeyInfo, "secret": SecretInfo | None, "transport": "websocket" | "webrtc" | "twilio",
     "usage": {"concurrent_sessions": int}}

``secret`` is ``None`` when the caller authenticated with the API key itself; ``key`` is then that key,
otherwise the key that minted the client secret.

Usage counts are read from the database, so they cover every gateway process sharing it, but without a
lock: the decision returns the limits it applied (``limits`` in the decision document, see
:mod:`media_gateway.policy.engine`) and the gateway enforces them again atomically with its write.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = [
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


class ConnectInput(TypedDict):
    key: KeyInfo
    secret: SecretInfo | None
    transport: Literal["websocket", "webrtc", "twilio"]
    usage: ConnectUsage
