"""The connect decision on phone calls: the call's facts (`input.call`) against the `calls` lists of the key's
scope and of the key, on the real OPA server and both in-process evaluators. Malformed calls and malformed
`calls` data deny with a reason on all three."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from media_gateway.policy import DEFAULT_POLICY_DIR, PolicyEngine, create_policy_engine
from media_gateway.policy.inprocess import InProcessPolicyEngine, policy_files
from tests.fixtures.opa import OpaServer
from tests.policy.cases import DROP, connect, key

ENGINE_KINDS = ("opa", "interpreter", "rvm")

KEYS = "data.ovos_gateway.config.keys"
SCOPES = "data.ovos_gateway.config.scopes"
SOURCES_SHAPE = "must be an array of CIDR ranges like 192.0.2.0/24 or 2001:db8::/32 (IPv4 ones in IPv4 form)"
PATTERNS_SHAPE = "must be an array of patterns (strings; * is the wildcard, ? [ ] { } \\ are reserved)"
NOT_A_CALL = "call.source must be an IPv4 or IPv6 address"

#: The realtime scope's calls: two source ranges and the numbers that may be called.
REALTIME_CALLS = {"sources": ["192.0.2.0/24", "2001:db8::/32"], "called": ["+3021*", "support"]}


def calls_data() -> dict[str, Any]:
    """The shipped data document plus `calls` on the realtime scope, on keys, and malformed ones.

    The admin scope sets none (any call is allowed); the scope `broken` holds a `calls` that is not an object.
    """
    data: dict[str, Any] = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())
    config = data["ovos_gateway"]["config"]
    config["scopes"]["realtime"]["calls"] = REALTIME_CALLS
    config["scopes"]["broken"] = {**config["scopes"]["realtime"], "calls": ["192.0.2.0/24"]}
    config["scope_precedence"].append("broken")
    config["keys"] = {
        # realtime keys: the key's lists replace the scope's list by list.
        "key_ca11": {"calls": {"callers": ["+1555*", "anonymous"]}},
        "key_ca12": {"calls": {"sources": ["10.0.0.0/8"]}},
        "key_ca13": {"calls": {"sources": ["0.0.0.0/0", "::/0"], "called": ["*"]}},
        "key_ca15": {"calls": {"sources": ["::/0"]}},
        "key_ca16": {"ovos": {"timezone": "Europe/Lisbon"}},
        "key_ca17": {"calls": None},  # like an absent `calls`
        # an admin key that may take no call at all
        "key_ca14": {"calls": {"sources": []}},
        # malformed
        "key_bad1": {"calls": "all"},
        "key_bad2": {"calls": {"caller": ["+1555*"]}},
        "key_bad3": {"calls": {"sources": ["10.0.0.0/33"]}},
        "key_bad4": {"calls": {"sources": ["::ffff:10.0.0.0/104"]}},
        "key_bad5": {"calls": {"callers": ["+1[0-9]*"]}},
        "key_bad6": {"calls": {"called": "999"}},
        "key_bad7": {"calls": {"sources": ["10.0.0.0/08"]}},
        "key_bad8": {"calls": {"sources": None}},
        "key_bad9": {"calls": {"callers": [5], "called": ["+30?"]}},
        "key_bada": {"calls": {"sources": ["10.1.2.3"]}},
    }
    return data


def call(
    source: str = "192.0.2.10", caller: str = "+15551234567", called: str = "+302101234567"
) -> dict[str, Any]:
    return {"from": caller, "to": called, "source": source}


FACTS: Any = object()  # call_connect's default: a call from the given facts


def call_connect(
    key_id: str = "key_01",
    scopes: tuple[str, ...] = ("realtime",),
    *,
    transport: str = "sip",
    call_doc: Any = FACTS,
    **facts: str,
) -> dict[str, Any]:
    """A connect with the API key itself (no client secret) over a phone transport, with a call: `facts`
    over `call()`'s, or `call_doc` (DROP: no `call` field)."""
    doc = call(**facts) if call_doc is FACTS else call_doc
    return connect(key_doc=key(scopes, id=key_id), secret=None, transport=transport, call=doc)


def source_denied(source: str) -> str:
    return f"call source {source} is not allowed for this API key"


def caller_denied(caller: str) -> str:
    return f"caller '{caller}' is not allowed for this API key"


def called_denied(called: str) -> str:
    return f"called number '{called}' is not allowed for this API key"


@dataclass(frozen=True)
class CallCase:
    id: str
    input: dict[str, Any]
    reasons: list[str] = field(default_factory=list)  # empty: allowed

    @property
    def allow(self) -> bool:
        return not self.reasons


CALL_CASES: list[CallCase] = [
    # No `calls` data (the admin scope, a key without an entry): any well-formed call.
    CallCase(
        "no-calls-data-any-call", call_connect("key_02", ("admin",), source="198.51.100.7", called="999")
    ),
    CallCase(
        "no-calls-data-ipv6-source-and-empty-numbers",
        call_connect("key_02", ("admin",), source="2001:db8::1", caller="", called=""),
    ),
    CallCase("no-calls-data-twilio", call_connect("key_02", ("admin",), transport="twilio")),
    # Source allow-list of the realtime scope.
    CallCase("source-ipv4-in-range", call_connect(source="192.0.2.10")),
    CallCase("source-ipv4-range-edge", call_connect(source="192.0.2.255")),
    CallCase("source-ipv4-outside", call_connect(source="198.51.100.7"), [source_denied("198.51.100.7")]),
    CallCase("source-ipv4-next-range", call_connect(source="192.0.3.0"), [source_denied("192.0.3.0")]),
    CallCase("source-ipv6-in-range", call_connect(source="2001:db8:1::5")),
    CallCase("source-ipv6-upper-case", call_connect(source="2001:DB8::A")),
    CallCase("source-ipv6-outside", call_connect(source="2001:db9::5"), [source_denied("2001:db9::5")]),
    CallCase("source-ipv6-loopback", call_connect(source="::1"), [source_denied("::1")]),
    # A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6: they count as IPv4.
    CallCase("source-ipv4-mapped-in-range", call_connect(source="::ffff:192.0.2.10")),
    CallCase("source-ipv4-mapped-hex-in-range", call_connect(source="::ffff:c000:20a")),
    CallCase(
        "source-ipv4-mapped-outside",
        call_connect(source="::ffff:198.51.100.7"),
        [source_denied("::ffff:198.51.100.7")],
    ),
    CallCase("source-ipv6-range-takes-ipv6", call_connect("key_ca15", source="2001:db8::1")),
    CallCase(
        "source-ipv6-range-never-takes-ipv4",
        call_connect("key_ca15", source="192.0.2.10"),
        [source_denied("192.0.2.10")],
    ),
    CallCase(
        "source-ipv6-range-never-takes-ipv4-mapped",
        call_connect("key_ca15", source="::ffff:192.0.2.10"),
        [source_denied("::ffff:192.0.2.10")],
    ),
    # Called-number patterns of the realtime scope.
    CallCase("called-prefix-pattern", call_connect(called="+302109999")),
    CallCase("called-literal-pattern", call_connect(called="support")),
    CallCase("called-not-matching", call_connect(called="999"), [called_denied("999")]),
    CallCase("called-literal-is-whole", call_connect(called="support2"), [called_denied("support2")]),
    CallCase("called-prefix-is-literal", call_connect(called="+3022100"), [called_denied("+3022100")]),
    CallCase("called-empty", call_connect(called=""), [called_denied("")]),
    # Caller patterns of key_ca11 (on top of the scope's sources and called numbers).
    CallCase("caller-prefix-pattern", call_connect("key_ca11", caller="+15551234")),
    CallCase("caller-literal-pattern", call_connect("key_ca11", caller="anonymous")),
    CallCase(
        "caller-not-matching", call_connect("key_ca11", caller="+15561234"), [caller_denied("+15561234")]
    ),
    CallCase("caller-withheld", call_connect("key_ca11", caller=""), [caller_denied("")]),
    CallCase(
        "caller-pattern-is-case-sensitive",
        call_connect("key_ca11", caller="Anonymous"),
        [caller_denied("Anonymous")],
    ),
    CallCase(
        "caller-key-keeps-the-scope-lists",
        call_connect("key_ca11", source="198.51.100.7", caller="+4420", called="999"),
        [caller_denied("+4420"), called_denied("999"), source_denied("198.51.100.7")],
    ),
    CallCase(
        "caller-on-twilio",
        call_connect("key_ca11", transport="twilio", caller="+4420"),
        [caller_denied("+4420")],
    ),
    # The key's list replaces the scope's.
    CallCase("key-sources-replace-the-scope", call_connect("key_ca12", source="10.1.2.3")),
    CallCase(
        "key-sources-drop-the-scope-range",
        call_connect("key_ca12", source="192.0.2.10"),
        [source_denied("192.0.2.10")],
    ),
    CallCase(
        "key-keeps-the-scope-called",
        call_connect("key_ca12", source="10.1.2.3", called="999"),
        [called_denied("999")],
    ),
    CallCase("key-lifts-the-scope", call_connect("key_ca13", source="198.51.100.7", called="")),
    CallCase("key-lifts-the-scope-ipv6", call_connect("key_ca13", source="2001:db9::5", called="999")),
    CallCase("key-entry-without-calls", call_connect("key_ca16", source="192.0.2.1")),
    CallCase(
        "key-entry-without-calls-keeps-the-scope",
        call_connect("key_ca16", source="10.1.2.3"),
        [source_denied("10.1.2.3")],
    ),
    CallCase(
        "key-calls-null-keeps-the-scope",
        call_connect("key_ca17", source="10.1.2.3"),
        [source_denied("10.1.2.3")],
    ),
    CallCase(
        "key-empty-list-refuses-every-call",
        call_connect("key_ca14", ("admin",), source="192.0.2.10"),
        [source_denied("192.0.2.10")],
    ),
    # `calls` restricts calls only.
    CallCase("websocket-ignores-calls", connect(key_doc=key(("admin",), id="key_ca14"), secret=None)),
    CallCase(
        "webrtc-ignores-calls",
        connect(key_doc=key(id="key_ca11"), secret=None, transport="webrtc", call=None),
    ),
    # Malformed calls.
    CallCase("sip-without-call", call_connect(call_doc=DROP), ["call must be an object for transport 'sip'"]),
    CallCase("sip-call-null", call_connect(call_doc=None), ["call must be an object for transport 'sip'"]),
    CallCase(
        "twilio-call-a-string",
        call_connect("key_02", ("admin",), transport="twilio", call_doc="+15551234"),
        ["call must be an object for transport 'twilio'"],
    ),
    CallCase(
        "websocket-with-a-call",
        call_connect("key_02", ("admin",), transport="websocket"),
        ["call must be null for transport 'websocket'"],
    ),
    CallCase(
        "webrtc-with-a-call",
        call_connect("key_02", ("admin",), transport="webrtc", call_doc={}),
        [
            "call must be null for transport 'webrtc'",
            "call.from must be a string",
            "call.source must be an IPv4 or IPv6 address",
            "call.to must be a string",
        ],
    ),
    CallCase(
        "call-empty-object",
        call_connect(call_doc={}),
        [
            "call.from must be a string",
            "call.source must be an IPv4 or IPv6 address",
            "call.to must be a string",
        ],
    ),
    CallCase(
        "call-field-types",
        call_connect(call_doc={"from": 15551234, "to": ["+30210"], "source": 3221225994}),
        [
            "call.from must be a string",
            "call.source must be an IPv4 or IPv6 address",
            "call.to must be a string",
        ],
    ),
    # A malformed source is not matched against the ranges (no second reason), on either engine.
    CallCase("source-cidr", call_connect(source="192.0.2.10/32"), [NOT_A_CALL]),
    CallCase("source-leading-zero", call_connect(source="192.0.2.010"), [NOT_A_CALL]),
    CallCase("source-with-port", call_connect(source="192.0.2.10:5060"), [NOT_A_CALL]),
    CallCase("source-bracketed-ipv6", call_connect(source="[2001:db8::1]"), [NOT_A_CALL]),
    CallCase("source-ipv6-zone", call_connect(source="fe80::1%eth0"), [NOT_A_CALL]),
    CallCase("source-host-name", call_connect(source="sip.example.com"), [NOT_A_CALL]),
    CallCase("source-empty", call_connect(source=""), [NOT_A_CALL]),
    CallCase("source-no-data-still-checked", call_connect("key_02", ("admin",), source="999"), [NOT_A_CALL]),
    # Malformed `calls` data: every connect of the key is denied, naming the data path.
    CallCase(
        "data-key-calls-not-object", call_connect("key_bad1"), [f"{KEYS}['key_bad1'].calls must be an object"]
    ),
    CallCase(
        "data-key-calls-not-object-websocket",
        connect(key_doc=key(id="key_bad1"), secret=None),
        [f"{KEYS}['key_bad1'].calls must be an object"],
    ),
    CallCase(
        "data-unknown-field",
        call_connect("key_bad2"),
        [f"{KEYS}['key_bad2'].calls has an unknown field 'caller' (known: called, callers, sources)"],
    ),
    CallCase(
        "data-prefix-too-long",
        call_connect("key_bad3"),
        [f"{KEYS}['key_bad3'].calls.sources {SOURCES_SHAPE}"],
    ),
    CallCase(
        "data-ipv4-mapped-range",
        call_connect("key_bad4"),
        [f"{KEYS}['key_bad4'].calls.sources {SOURCES_SHAPE}"],
    ),
    CallCase(
        "data-prefix-leading-zero",
        call_connect("key_bad7"),
        [f"{KEYS}['key_bad7'].calls.sources {SOURCES_SHAPE}"],
    ),
    CallCase(
        "data-sources-null", call_connect("key_bad8"), [f"{KEYS}['key_bad8'].calls.sources {SOURCES_SHAPE}"]
    ),
    CallCase(
        "data-address-not-range",
        call_connect("key_bada"),
        [f"{KEYS}['key_bada'].calls.sources {SOURCES_SHAPE}"],
    ),
    CallCase(
        "data-character-class",
        call_connect("key_bad5"),
        [f"{KEYS}['key_bad5'].calls.callers {PATTERNS_SHAPE}"],
    ),
    CallCase(
        "data-called-string", call_connect("key_bad6"), [f"{KEYS}['key_bad6'].calls.called {PATTERNS_SHAPE}"]
    ),
    CallCase(
        "data-number-and-question-mark",
        call_connect("key_bad9"),
        [
            f"{KEYS}['key_bad9'].calls.called {PATTERNS_SHAPE}",
            f"{KEYS}['key_bad9'].calls.callers {PATTERNS_SHAPE}",
        ],
    ),
    CallCase(
        "data-scope-calls-not-object",
        call_connect("key_03", ("broken",)),
        [f"{SCOPES}['broken'].calls must be an object"],
    ),
    CallCase(
        "data-scope-and-malformed-call-both-named",
        call_connect("key_03", ("broken",), source="nowhere"),
        [NOT_A_CALL, f"{SCOPES}['broken'].calls must be an object"],
    ),
]


def policy_dir_with(data: dict[str, Any], directory: Path) -> Path:
    """The shipped policies with `data` as their data document."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in policy_files(DEFAULT_POLICY_DIR):
        shutil.copy(path, directory / path.name)
    (directory / "data.json").write_text(json.dumps(data))
    return directory


@pytest.fixture(scope="module")
def calls_opa_server(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    """A private OPA server on the calls data (the shared one serves the shipped data)."""
    server = OpaServer(opa_binary, policy_dir=policy_dir_with(calls_data(), tmp_path_factory.mktemp("calls")))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
async def call_engines(calls_opa_server: OpaServer) -> AsyncIterator[dict[str, PolicyEngine]]:
    """Engine kind → an engine on the calls data."""
    engines: dict[str, PolicyEngine] = {
        "opa": create_policy_engine(
            "opa", registry=CollectorRegistry(), opa_url=calls_opa_server.url, timeout_seconds=5.0
        ),
        "interpreter": InProcessPolicyEngine(calls_opa_server.policy_dir, evaluator="interpreter"),
        "rvm": InProcessPolicyEngine(calls_opa_server.policy_dir, evaluator="rvm"),
    }
    yield engines
    for engine in engines.values():
        await engine.close()


def test_table_covers_allows_denies_and_every_reason_kind() -> None:
    assert len({c.id for c in CALL_CASES}) == len(CALL_CASES), "case ids must be unique"
    reasons = {r for c in CALL_CASES for r in c.reasons}
    for start in ("call source ", "caller '", "called number '", "call must be ", "call.", KEYS, SCOPES):
        assert any(r.startswith(start) for r in reasons), start
    assert sum(c.allow for c in CALL_CASES) >= 10
    assert sum(not c.allow for c in CALL_CASES) >= 10


def test_shipped_data_restricts_no_calls() -> None:
    config = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())["ovos_gateway"]["config"]
    assert "sip" in config["transports"]
    assert not any("calls" in limits for limits in config["scopes"].values())
    assert not any("calls" in entry for entry in config["keys"].values())


@pytest.mark.parametrize("kind", ENGINE_KINDS)
@pytest.mark.parametrize("call_case", CALL_CASES, ids=lambda c: c.id)
async def test_every_engine_decides_the_call(
    call_case: CallCase, kind: str, call_engines: dict[str, PolicyEngine]
) -> None:
    decision = await call_engines[kind].decide("connect", call_case.input)
    assert (decision.allow, decision.reasons) == (call_case.allow, tuple(sorted(call_case.reasons)))
    assert decision.retry_after_seconds is None
    if call_case.allow:
        assert decision.limits["concurrent_sessions"].max > 0
