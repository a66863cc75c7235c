"""The decision table: inputs for every decision point and the decision each must produce.

Expected reasons are written out by hand (sorted, as the policy returns them); both engines must produce
exactly these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from media_gateway.policy import DEFAULT_POLICY_DIR, DecisionPoint

DROP: Any = object()  # marks a field to remove from a default document


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in overrides.items():
        if value is DROP:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def key(scopes: Any = ("realtime",), **overrides: Any) -> dict[str, Any]:
    scope_list = list(scopes) if isinstance(scopes, tuple | list) else scopes
    return _merge({"id": "key_01", "scopes": scope_list, "revoked": False}, overrides)


def session(**overrides: Any) -> dict[str, Any]:
    return _merge(
        {
            "type": "realtime",
            "model": "gpt-realtime",
            "voice": "marin",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "tools_count": 2,
            "instructions_length": 480,
        },
        overrides,
    )


def mint(
    *, key_doc: Any = None, ttl: Any = 600, session_doc: Any = None, usage: Any = None, **top: Any
) -> dict[str, Any]:
    doc = {
        "key": key() if key_doc is None else key_doc,
        "request": {"ttl_seconds": ttl, "session": session() if session_doc is None else session_doc},
        "usage": {"mints_last_minute": 3, "concurrent_sessions": 1} if usage is None else usage,
    }
    if ttl is DROP:
        del doc["request"]["ttl_seconds"]
    if session_doc is DROP:
        del doc["request"]["session"]
    if usage is DROP:
        del doc["usage"]
    return _merge(doc, top)


def update(*, key_doc: Any = None, current: Any = None, requested: Any = None, **top: Any) -> dict[str, Any]:
    doc = {
        "key": key() if key_doc is None else key_doc,
        "session": {"id": "sess_01", "type": "realtime"},
        "current": session() if current is None else current,
        "requested": session(voice="cedar") if requested is None else requested,
    }
    doc = {name: value for name, value in doc.items() if value is not DROP}
    return _merge(doc, top)


def secret(**overrides: Any) -> dict[str, Any]:
    return _merge(
        {"id": "cs_01", "expired": False, "revoked": False, "live_connections": 0, "max_live_connections": 1},
        overrides,
    )


def connect(*, key_doc: Any = None, secret_doc: Any = None, **top: Any) -> dict[str, Any]:
    doc = {
        "key": key() if key_doc is None else key_doc,
        "secret": secret() if secret_doc is None else secret_doc,
        "transport": "websocket",
        "usage": {"concurrent_sessions": 1},
    }
    return _merge(doc, top)


# Reason texts -----------------------------------------------------------------------------------------


def model_denied(model: str, scope: str) -> str:
    return f"model '{model}' is not allowed for this API key (scope '{scope}')"


def mint_rate(limit: int, scope: str) -> str:
    return f"rate_limited: mint limit of {limit} per minute reached for this API key (scope '{scope}')"


def concurrent(limit: int, scope: str) -> str:
    return f"rate_limited: concurrent session limit of {limit} reached for this API key (scope '{scope}')"


def ttl_over(limit: int, scope: str) -> str:
    return f"request.ttl_seconds exceeds the maximum of {limit} for this API key (scope '{scope}')"


def too_many(limit: int, what: str, scope: str) -> str:
    return f"session has more than {limit} {what}, the limit for this API key (scope '{scope}')"


def tokens_over(limit: int, scope: str) -> str:
    return f"session.max_output_tokens exceeds the limit of {limit} for this API key (scope '{scope}')"


NO_KEY = "request has no API key"
REVOKED = "API key has been revoked"
NO_SCOPE = "API key has no scope that permits realtime access"
SESSION_NOT_OBJECT = "session must be an object"
MODALITIES = "session.output_modalities must be a non-empty array of: audio, text"
SESSION_TYPES = "session.type must be one of: realtime, transcription"
TRANSPORTS = "transport must be one of: websocket, webrtc, twilio, sip"
USAGE_CONCURRENT = "usage.concurrent_sessions must be a non-negative integer"
USAGE_MINTS = "usage.mints_last_minute must be a non-negative integer"
LIVE = "client secret already has the maximum of 1 live connection(s)"

CALL = {"from": "+15551234567", "to": "+302101234567", "source": "203.0.113.9"}


@dataclass(frozen=True)
class Case:
    id: str
    point: DecisionPoint
    input: dict[str, Any]
    reasons: list[str] = field(default_factory=list)  # empty: allowed
    retry_after_seconds: float | None = None

    @property
    def allow(self) -> bool:
        return not self.reasons

    @property
    def ovos(self) -> dict[str, Any]:
        """The shipped data document sets no OVOS session fields: every connect decision carries {}."""
        return {}

    @property
    def limits(self) -> dict[str, dict[str, Any]]:
        """The counted limits the decision must carry: those of the case's scope, for mint and connect."""
        scope = CASE_SCOPES.get(self.id, "realtime")
        if self.point == "session_update" or scope is None:
            return {}
        concurrent_max, mints_max = SCOPE_LIMITS[scope]
        limits = {
            "concurrent_sessions": {
                "max": concurrent_max,
                "retry_after_seconds": 5.0,
                "reason": concurrent(concurrent_max, scope),
            }
        }
        if self.point == "mint":
            limits["mints_per_minute"] = {
                "max": mints_max,
                "retry_after_seconds": 60.0,
                "reason": mint_rate(mints_max, scope),
            }
        return limits


#: (concurrent_sessions, mints_per_minute) of each scope in the shipped data document.
SCOPE_LIMITS = {"admin": (100, 600), "realtime": (10, 60), "restricted": (2, 10)}

#: The scope whose limits a case's decision carries, where it is not `realtime`; None where the key has no
#: known scope (then there are no limits).
CASE_SCOPES: dict[str, str | None] = {
    "mint-allowed-restricted": "restricted",
    "mint-allowed-minimal-session": "admin",
    "mint-allowed-most-privileged-scope-wins": "admin",
    "mint-model-not-in-restricted-scope": "restricted",
    "mint-both-rate-limits": "restricted",
    "mint-ttl-over-scope-max": "restricted",
    "mint-unknown-scope": None,
    "mint-no-scopes": None,
    "mint-scopes-wrong-type": None,
    "mint-missing-key": None,
    "mint-key-is-a-string": None,
    "mint-output-tokens-over-restricted-limit": "restricted",
    "mint-output-tokens-inf-on-restricted": "restricted",
    "mint-instructions-too-long": "restricted",
    "mint-many-problems": "restricted",
    "mint-empty-input": None,
    "connect-allowed-secret-webrtc-restricted": "restricted",
    "connect-direct-key-restricted": "restricted",
    "connect-admin-key-limits": "admin",
    "connect-empty-input": None,
}


CASES: list[Case] = [
    # mint ---------------------------------------------------------------------------------------------
    Case("mint-allowed", "mint", mint()),
    Case(
        "mint-allowed-restricted",
        "mint",
        mint(
            key_doc=key(["restricted"]),
            session_doc=session(model="gpt-realtime-mini", max_output_tokens=1024, tools_count=4),
        ),
    ),
    Case(
        "mint-allowed-minimal-session",
        "mint",
        mint(
            key_doc=key(["admin"]),
            session_doc={"type": "realtime", "model": "ovos-local", "voice": None},
            ttl=7200,
        ),
    ),
    Case(
        "mint-allowed-transcription",
        "mint",
        mint(session_doc={"type": "transcription", "model": "gpt-4o-transcribe"}),
    ),
    Case(
        "mint-allowed-most-privileged-scope-wins",
        "mint",
        mint(
            key_doc=key(["restricted", "admin"]),
            ttl=7200,
            usage={"mints_last_minute": 100, "concurrent_sessions": 50},
        ),
    ),
    Case(
        "mint-wrong-model",
        "mint",
        mint(session_doc=session(model="gpt-4")),
        [model_denied("gpt-4", "realtime")],
    ),
    Case(
        "mint-model-not-in-restricted-scope",
        "mint",
        mint(key_doc=key(["restricted"]), session_doc=session(model="gpt-realtime", max_output_tokens=100)),
        [model_denied("gpt-realtime", "restricted")],
    ),
    Case(
        "mint-transcription-model-as-realtime",
        "mint",
        mint(session_doc=session(model="whisper-1")),
        [model_denied("whisper-1", "realtime")],
    ),
    Case(
        "mint-wrong-voice",
        "mint",
        mint(session_doc=session(voice="hal9000")),
        ["voice 'hal9000' is not available"],
    ),
    Case(
        "mint-voice-wrong-type",
        "mint",
        mint(session_doc=session(voice=7)),
        ["session.voice must be a string"],
    ),
    Case(
        "mint-over-rate-limit",
        "mint",
        mint(usage={"mints_last_minute": 60, "concurrent_sessions": 0}),
        [mint_rate(60, "realtime")],
        60,
    ),
    Case(
        "mint-over-rate-limit-window-known",
        "mint",
        mint(
            usage={"mints_last_minute": 61, "concurrent_sessions": 0, "mint_window_resets_in_seconds": 12.5}
        ),
        [mint_rate(60, "realtime")],
        12.5,
    ),
    Case(
        "mint-over-concurrent-sessions",
        "mint",
        mint(usage={"mints_last_minute": 0, "concurrent_sessions": 10}),
        [concurrent(10, "realtime")],
        5,
    ),
    Case(
        "mint-both-rate-limits",
        "mint",
        mint(
            key_doc=key(["restricted"]),
            session_doc=session(model="ovos-local", max_output_tokens=None),
            usage={"mints_last_minute": 10, "concurrent_sessions": 2},
        ),
        [concurrent(2, "restricted"), mint_rate(10, "restricted")],
        60,
    ),
    Case(
        "mint-rate-limit-and-wrong-model-is-not-retryable",
        "mint",
        mint(session_doc=session(model="gpt-4"), usage={"mints_last_minute": 60, "concurrent_sessions": 0}),
        [model_denied("gpt-4", "realtime"), mint_rate(60, "realtime")],
    ),
    Case("mint-revoked-key", "mint", mint(key_doc=key(revoked=True)), [REVOKED]),
    Case(
        "mint-ttl-over-scope-max",
        "mint",
        mint(
            key_doc=key(["restricted"]),
            ttl=601,
            session_doc=session(model="ovos-local", max_output_tokens=None),
        ),
        [ttl_over(600, "restricted")],
    ),
    Case("mint-ttl-over-realtime-max", "mint", mint(ttl=7201), [ttl_over(7200, "realtime")]),
    Case("mint-ttl-below-min", "mint", mint(ttl=5), ["request.ttl_seconds must be at least 10"]),
    Case("mint-ttl-string", "mint", mint(ttl="600"), ["request.ttl_seconds must be an integer"]),
    Case("mint-ttl-fraction", "mint", mint(ttl=600.5), ["request.ttl_seconds must be an integer"]),
    Case("mint-ttl-missing", "mint", mint(ttl=DROP), ["request.ttl_seconds must be an integer"]),
    Case("mint-unknown-scope", "mint", mint(key_doc=key(["billing"])), [NO_SCOPE]),
    Case("mint-no-scopes", "mint", mint(key_doc=key([])), [NO_SCOPE]),
    Case(
        "mint-scopes-wrong-type",
        "mint",
        mint(key_doc=key("realtime")),
        ["key.scopes must be an array of strings"],
    ),
    Case("mint-missing-key", "mint", mint(key=DROP), [NO_KEY]),
    Case("mint-key-is-a-string", "mint", mint(key_doc="sk_not_a_document"), [NO_KEY]),
    Case("mint-key-id-empty", "mint", mint(key_doc=key(id="")), ["key.id must be a non-empty string"]),
    Case(
        "mint-key-revoked-missing", "mint", mint(key_doc=key(revoked=DROP)), ["key.revoked must be a boolean"]
    ),
    Case(
        "mint-key-revoked-string",
        "mint",
        mint(key_doc=key(revoked="false")),
        ["key.revoked must be a boolean"],
    ),
    Case("mint-missing-session", "mint", mint(session_doc=DROP), [SESSION_NOT_OBJECT]),
    Case("mint-session-wrong-type", "mint", mint(session_doc=["realtime"]), [SESSION_NOT_OBJECT]),
    Case("mint-missing-request", "mint", mint(request=DROP), ["request must be an object"]),
    Case("mint-missing-usage", "mint", mint(usage=DROP), [USAGE_CONCURRENT, USAGE_MINTS]),
    Case(
        "mint-usage-wrong-types",
        "mint",
        mint(usage={"mints_last_minute": -1, "concurrent_sessions": "2"}),
        [USAGE_CONCURRENT, USAGE_MINTS],
    ),
    Case(
        "mint-missing-model",
        "mint",
        mint(session_doc=session(model=DROP)),
        ["session.model must be a non-empty string"],
    ),
    Case("mint-bad-session-type", "mint", mint(session_doc=session(type="audio")), [SESSION_TYPES]),
    Case(
        "mint-output-tokens-over-restricted-limit",
        "mint",
        mint(key_doc=key(["restricted"]), session_doc=session(model="ovos-local", max_output_tokens=2048)),
        [tokens_over(1024, "restricted")],
    ),
    Case(
        "mint-output-tokens-inf-on-restricted",
        "mint",
        mint(key_doc=key(["restricted"]), session_doc=session(model="ovos-local")),
        [tokens_over(1024, "restricted")],
    ),
    Case(
        "mint-output-tokens-zero",
        "mint",
        mint(session_doc=session(max_output_tokens=0)),
        ["session.max_output_tokens must be a positive integer or 'inf'"],
    ),
    Case(
        "mint-too-many-tools",
        "mint",
        mint(session_doc=session(tools_count=65)),
        [too_many(64, "tools", "realtime")],
    ),
    Case(
        "mint-negative-tools",
        "mint",
        mint(session_doc=session(tools_count=-1)),
        ["session.tools_count must be a non-negative integer"],
    ),
    Case(
        "mint-instructions-too-long",
        "mint",
        mint(
            key_doc=key(["restricted"]),
            session_doc=session(model="ovos-local", max_output_tokens=None, instructions_length=5000),
        ),
        [too_many(4096, "instruction characters", "restricted")],
    ),
    Case("mint-bad-modality", "mint", mint(session_doc=session(output_modalities=["video"])), [MODALITIES]),
    Case("mint-empty-modalities", "mint", mint(session_doc=session(output_modalities=[])), [MODALITIES]),
    Case(
        "mint-many-problems",
        "mint",
        mint(
            key_doc=key(["restricted"], revoked=True),
            ttl=9000,
            session_doc=session(voice="bogus", tools_count=5),
            usage={"mints_last_minute": 10, "concurrent_sessions": 0},
        ),
        [
            REVOKED,
            model_denied("gpt-realtime", "restricted"),
            mint_rate(10, "restricted"),
            ttl_over(600, "restricted"),
            too_many(4, "tools", "restricted"),
            tokens_over(1024, "restricted"),
            "voice 'bogus' is not available",
        ],
    ),
    Case(
        "mint-empty-input", "mint", {}, [NO_KEY, "request must be an object", USAGE_CONCURRENT, USAGE_MINTS]
    ),
    # session_update -----------------------------------------------------------------------------------
    Case("update-allowed-voice-change", "session_update", update()),
    Case(
        "update-allowed-transcription",
        "session_update",
        update(
            session={"id": "sess_02", "type": "transcription"},
            current={"type": "transcription", "model": "whisper-1"},
            requested={"type": "transcription", "model": "whisper-1", "tools_count": 0},
        ),
    ),
    Case(
        "update-model-change",
        "session_update",
        update(requested=session(model="gpt-realtime-mini")),
        [],
    ),
    Case(
        "update-type-change",
        "session_update",
        update(requested=session(type="transcription", model="gpt-realtime")),
        [
            model_denied("gpt-realtime", "realtime"),
            "session type cannot be changed after the session has started",
        ],
    ),
    Case(
        "update-wrong-voice",
        "session_update",
        update(requested=session(voice="robot")),
        ["voice 'robot' is not available"],
    ),
    Case(
        "update-too-many-tools-restricted",
        "session_update",
        update(
            key_doc=key(["restricted"]),
            current=session(model="ovos-local", max_output_tokens=None),
            requested=session(model="ovos-local", max_output_tokens=None, tools_count=5),
        ),
        [too_many(4, "tools", "restricted")],
    ),
    Case("update-missing-current", "session_update", update(current=DROP), ["current must be an object"]),
    Case(
        "update-missing-session-id",
        "session_update",
        update(session={"type": "realtime"}),
        ["session.id must be a non-empty string"],
    ),
    Case("update-revoked-key", "session_update", update(key_doc=key(revoked=True)), [REVOKED]),
    Case("update-missing-requested", "session_update", update(requested=DROP), [SESSION_NOT_OBJECT]),
    Case(
        "update-empty-input",
        "session_update",
        {},
        [NO_KEY, "current must be an object", "session.id must be a non-empty string", SESSION_NOT_OBJECT],
    ),
    # connect ------------------------------------------------------------------------------------------
    Case("connect-allowed-secret-websocket", "connect", connect()),
    Case(
        "connect-allowed-secret-webrtc-restricted",
        "connect",
        connect(key_doc=key(["restricted"]), transport="webrtc"),
    ),
    Case("connect-allowed-direct-key", "connect", connect(secret=None)),
    Case(
        "connect-direct-key-restricted",
        "connect",
        connect(key_doc=key(["restricted"]), secret=None),
        ["this API key must connect with an ephemeral client secret"],
    ),
    Case(
        "connect-expired-secret",
        "connect",
        connect(secret_doc=secret(expired=True)),
        ["client secret has expired"],
    ),
    Case(
        "connect-revoked-secret",
        "connect",
        connect(secret_doc=secret(revoked=True)),
        ["client secret has been revoked"],
    ),
    Case("connect-secret-live", "connect", connect(secret_doc=secret(live_connections=1)), [LIVE]),
    Case(
        "connect-secret-second-of-two",
        "connect",
        connect(secret_doc=secret(live_connections=1, max_live_connections=2)),
    ),
    Case("connect-wrong-transport", "connect", connect(transport="h323", call=CALL), [TRANSPORTS]),
    # Phone calls: with the shipped data (no `calls` restrictions) any well-formed call is allowed.
    Case("connect-sip-call", "connect", connect(transport="sip", call=CALL)),
    Case(
        "connect-twilio-call-ipv6-without-numbers",
        "connect",
        connect(transport="twilio", call={"from": "", "to": "", "source": "2001:db8::7"}),
    ),
    Case(
        "connect-sip-without-call",
        "connect",
        connect(transport="sip"),
        ["call must be an object for transport 'sip'"],
    ),
    Case(
        "connect-websocket-with-call",
        "connect",
        connect(call=CALL),
        ["call must be null for transport 'websocket'"],
    ),
    Case(
        "connect-sip-call-field-types",
        "connect",
        connect(transport="sip", call={"from": 15551234, "source": "203.0.113.9/32"}),
        [
            "call.from must be a string",
            "call.source must be an IPv4 or IPv6 address",
            "call.to must be a string",
        ],
    ),
    Case("connect-missing-transport", "connect", connect(transport=DROP), [TRANSPORTS]),
    Case(
        "connect-over-concurrent-sessions",
        "connect",
        connect(usage={"concurrent_sessions": 10}),
        [concurrent(10, "realtime")],
        5,
    ),
    Case(
        "connect-secret-field-types",
        "connect",
        connect(secret_doc=secret(expired="no", live_connections="0")),
        [
            "secret.expired must be a boolean",
            "secret.live_connections and secret.max_live_connections must be non-negative integers",
        ],
    ),
    Case(
        "connect-secret-not-object", "connect", connect(secret="cs_01"), ["secret must be an object or null"]
    ),
    Case(
        "connect-secret-id-missing",
        "connect",
        connect(secret_doc=secret(id=DROP)),
        ["secret.id must be a non-empty string"],
    ),
    Case("connect-missing-usage", "connect", connect(usage=DROP), [USAGE_CONCURRENT]),
    Case("connect-revoked-key", "connect", connect(key_doc=key(revoked=True)), [REVOKED]),
    Case("connect-allowed-one-below-the-limit", "connect", connect(usage={"concurrent_sessions": 9})),
    Case("connect-admin-key-limits", "connect", connect(key_doc=key(["admin"]), secret=None)),
    Case("connect-empty-input", "connect", {}, [NO_KEY, TRANSPORTS, USAGE_CONCURRENT]),
]


# OVOS session fields of the connect decision ----------------------------------------------------------
#
# These run on policy data of their own: the shipped document with the fields set per scope and per key
# (`ovos_data`). A case expects either the decision's `ovos` or, for malformed data, that the gateway
# cannot take the decision (PolicyUnavailable, fail closed) with a message naming the problem.

LISBON = {"timezone": "Europe/Lisbon", "system_unit": "metric", "date_format": "DMY"}
ADMIN_KEY_OVOS = {
    "timezone": "Asia/Kathmandu",
    "pipeline": ["stop_high", "converse", "padatious_high", "adapt_high", "fallback_low"],
    "time_format": "full",
    "blacklisted_skills": ["ovos-skill-date-time.openvoiceos"],
    "blacklisted_intents": ["ovos-skill-weather.openvoiceos:weather.intent"],
}


def ovos_data(variant: str = "fields") -> dict[str, Any]:
    """The policy data of the OVOS cases: the shipped document plus OVOS session fields.

    ``fields``: the realtime scope sets LISBON; key_c0ffee (realtime) overrides two fields; key_face (admin,
    a scope without fields) sets ADMIN_KEY_OVOS; a scope `broken` and other keys hold malformed fields.
    ``keys-not-object``: `keys` is an array.
    """
    data: dict[str, Any] = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())
    config = data["ovos_gateway"]["config"]
    if variant == "keys-not-object":
        config["keys"] = [{"id": "key_01", "ovos": {"timezone": "Europe/Lisbon"}}]
        return data
    assert variant == "fields", variant
    config["scopes"]["realtime"]["ovos"] = dict(LISBON)
    config["scopes"]["broken"] = {**config["scopes"]["realtime"], "ovos": "metric"}
    config["scope_precedence"].append("broken")
    config["keys"] = {
        "key_c0ffee": {"ovos": {"timezone": "America/New_York", "time_format": "half"}},
        "key_face": {"ovos": ADMIN_KEY_OVOS},
        "key_fade": {"ovos": {}},
        "key_bad": {"ovos": {"timezone": "Mars/Olympus_Mons"}},
        "key_dead": {"ovos": {"timezone": "Europe/Lisbon", "voice_colour": "blue"}},
        "key_beef": {"ovos": {"system_unit": "kelvin"}},
        "key_cafe": {"ovos": {"pipeline": "padatious_high"}},
        "key_abc": {"ovos": {"blacklisted_skills": ["ok.skill", 7]}},
        "key_ace": {"ovos": {"timezone": 0}},
        "key_add": {"ovos": ["timezone", "Europe/Lisbon"]},
        "key_bed": "ovos",
    }
    return data


@dataclass(frozen=True)
class OvosCase:
    id: str
    point: DecisionPoint
    input: dict[str, Any]
    ovos: dict[str, Any] = field(default_factory=dict)
    #: Set when the gateway must refuse the decision as malformed: a fragment of the error message.
    unavailable: str | None = None
    data: str = "fields"
    allow: bool = True


def ovos_connect(key_id: str, scopes: tuple[str, ...] = ("realtime",), **key_fields: Any) -> dict[str, Any]:
    return connect(key_doc=key(scopes, id=key_id, **key_fields), secret=None)


OVOS_CASES: list[OvosCase] = [
    OvosCase("ovos-scope-only", "connect", ovos_connect("key_01"), LISBON),
    OvosCase(
        "ovos-key-overrides-scope-field-by-field",
        "connect",
        ovos_connect("key_c0ffee"),
        {**LISBON, "timezone": "America/New_York", "time_format": "half"},
    ),
    OvosCase("ovos-key-only-every-field", "connect", ovos_connect("key_face", ("admin",)), ADMIN_KEY_OVOS),
    OvosCase("ovos-empty-key-override-keeps-scope", "connect", ovos_connect("key_fade"), LISBON),
    OvosCase("ovos-neither-scope-nor-key", "connect", ovos_connect("key_02", ("admin",)), {}),
    OvosCase(
        "ovos-with-a-deny",
        "connect",
        ovos_connect("key_c0ffee", revoked=True),
        {**LISBON, "timezone": "America/New_York", "time_format": "half"},
        allow=False,
    ),
    OvosCase("ovos-not-on-mint", "mint", mint(key_doc=key(id="key_c0ffee"))),
    OvosCase("ovos-not-on-session-update", "session_update", update(key_doc=key(id="key_c0ffee"))),
    OvosCase(
        "ovos-bad-time-zone",
        "connect",
        ovos_connect("key_bad"),
        unavailable="'Mars/Olympus_Mons' is not an IANA",
    ),
    OvosCase("ovos-time-zone-not-a-string", "connect", ovos_connect("key_ace"), unavailable="timezone 0"),
    OvosCase(
        "ovos-unknown-field", "connect", ovos_connect("key_dead"), unavailable="unknown field 'voice_colour'"
    ),
    OvosCase(
        "ovos-value-not-a-choice",
        "connect",
        ovos_connect("key_beef"),
        unavailable="system_unit must be one of",
    ),
    OvosCase(
        "ovos-list-field-is-a-string",
        "connect",
        ovos_connect("key_cafe"),
        unavailable="pipeline must be an array of non-empty strings",
    ),
    OvosCase(
        "ovos-list-field-with-a-number",
        "connect",
        ovos_connect("key_abc"),
        unavailable="blacklisted_skills must be an array of non-empty strings",
    ),
    OvosCase(
        "ovos-key-ovos-not-an-object",
        "connect",
        ovos_connect("key_add"),
        unavailable="keys['key_add'].ovos must be an object",
    ),
    OvosCase(
        "ovos-key-entry-not-an-object",
        "connect",
        ovos_connect("key_bed"),
        unavailable="keys['key_bed'] must be",
    ),
    OvosCase(
        "ovos-scope-ovos-not-an-object",
        "connect",
        ovos_connect("key_03", ("broken",)),
        unavailable="scopes['broken'].ovos must be an object",
    ),
    OvosCase(
        "ovos-keys-not-an-object",
        "connect",
        ovos_connect("key_01"),
        unavailable="data.ovos_gateway.config.keys must be an object",
        data="keys-not-object",
    ),
]
