"""The connect decision's OVOS session fields, from a scope and per key, on the real OPA server and both
in-process evaluators; malformed fields fail closed on all three. Also the strict parsing of `ovos`."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from media_gateway.policy import (
    DEFAULT_POLICY_DIR,
    OVOS_FIELDS,
    InstrumentedPolicyEngine,
    PolicyEngine,
    PolicyMetrics,
    PolicyUnavailable,
    create_policy_engine,
)
from media_gateway.policy.engine import parse_decision
from media_gateway.policy.inprocess import InProcessPolicyEngine, policy_files
from media_gateway.policy.opa import OpaPolicyEngine
from tests.fixtures.opa import OpaServer
from tests.policy.cases import ADMIN_KEY_OVOS, OVOS_CASES, OvosCase, ovos_data
from tests.policy.helpers import case, decision_count

DATA_VARIANTS = sorted({c.data for c in OVOS_CASES})
ENGINE_KINDS = ("opa", "interpreter", "rvm")


def policy_dir_with(data: dict[str, Any], directory: Path) -> Path:
    """The shipped policies with `data` as their data document."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in policy_files(DEFAULT_POLICY_DIR):
        shutil.copy(path, directory / path.name)
    (directory / "data.json").write_text(json.dumps(data))
    return directory


@pytest.fixture(scope="module")
def ovos_opa_servers(
    opa_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, OpaServer]]:
    """One private OPA server per data variant (the shared one serves the shipped data)."""
    servers: dict[str, OpaServer] = {}
    try:
        for variant in DATA_VARIANTS:
            directory = policy_dir_with(ovos_data(variant), tmp_path_factory.mktemp(f"ovos-{variant}"))
            server = OpaServer(opa_binary, policy_dir=directory)
            servers[variant] = server
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.close()


@pytest.fixture(scope="module")
async def ovos_engines(
    ovos_opa_servers: dict[str, OpaServer],
) -> AsyncIterator[dict[tuple[str, str], tuple[PolicyEngine, CollectorRegistry]]]:
    """(data variant, engine kind) → an instrumented engine on that data, and its metrics registry."""
    engines: dict[tuple[str, str], tuple[PolicyEngine, CollectorRegistry]] = {}
    for variant, server in ovos_opa_servers.items():
        registry = CollectorRegistry()
        engines[(variant, "opa")] = (
            create_policy_engine("opa", registry=registry, opa_url=server.url, timeout_seconds=5.0),
            registry,
        )
        for evaluator in ("interpreter", "rvm"):
            registry = CollectorRegistry()
            inner = InProcessPolicyEngine(server.policy_dir, evaluator=evaluator)
            instrumented = InstrumentedPolicyEngine(
                inner, metrics=PolicyMetrics.create(registry), engine_name="inprocess"
            )
            engines[(variant, evaluator)] = (instrumented, registry)
    yield engines
    for engine, _ in engines.values():
        await engine.close()


def test_table_covers_every_field_and_both_outcomes() -> None:
    assert len({c.id for c in OVOS_CASES}) == len(OVOS_CASES), "case ids must be unique"
    covered = {name for c in OVOS_CASES for name in c.ovos}
    assert covered == set(OVOS_FIELDS)
    assert any(c.unavailable for c in OVOS_CASES)
    assert any(c.ovos and not c.unavailable for c in OVOS_CASES)
    assert any(c.point == "connect" and not c.ovos and not c.unavailable for c in OVOS_CASES)


@pytest.mark.parametrize("kind", ENGINE_KINDS)
@pytest.mark.parametrize("ovos_case", OVOS_CASES, ids=lambda c: c.id)
async def test_every_engine_decides_the_ovos_fields(
    ovos_case: OvosCase,
    kind: str,
    ovos_engines: dict[tuple[str, str], tuple[PolicyEngine, CollectorRegistry]],
) -> None:
    engine, registry = ovos_engines[(ovos_case.data, kind)]
    if ovos_case.unavailable is not None:
        before = decision_count(registry, ovos_case.point, "unavailable")
        with pytest.raises(PolicyUnavailable, match="invalid 'ovos'") as raised:
            await engine.decide(ovos_case.point, ovos_case.input)
        assert ovos_case.unavailable in str(raised.value)
        assert decision_count(registry, ovos_case.point, "unavailable") == before + 1
        return
    decision = await engine.decide(ovos_case.point, ovos_case.input)
    assert decision.allow == ovos_case.allow, decision.reasons
    assert dict(decision.ovos) == ovos_case.ovos
    if ovos_case.point == "connect" and ovos_case.allow:
        assert decision.limits["concurrent_sessions"].max > 0


async def test_the_decision_document_has_ovos_on_connect_only(ovos_opa_servers: dict[str, OpaServer]) -> None:
    """The documents as OPA serves them: connect gains `ovos`; mint and session_update keep their shape."""
    inputs = [(c.point, c.input) for c in OVOS_CASES if c.id.startswith("ovos-not-on-")]
    inputs.append(("connect", next(c.input for c in OVOS_CASES if c.id == "ovos-key-only-every-field")))
    inputs.append(("connect", {}))  # denied for every reason there is; still says what the sessions look like
    documents: list[tuple[str, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=ovos_opa_servers["fields"].url, trust_env=False) as client:
        for point, doc in inputs:
            response = await client.post(f"/v1/data/ovos_gateway/realtime/{point}", json={"input": doc})
            documents.append((point, response.json()["result"]))
    shape = {"allow", "reasons", "retry_after_seconds", "limits"}
    (mint, update, connect, denied) = documents
    assert (mint[0], set(mint[1])) == ("mint", shape)
    assert (update[0], set(update[1])) == ("session_update", shape)
    assert set(connect[1]) == shape | {"ovos"}
    assert connect[1]["allow"] is True
    assert connect[1]["ovos"] == ADMIN_KEY_OVOS
    assert denied[1]["allow"] is False
    assert denied[1]["ovos"] == {}


# --- parse_decision -------------------------------------------------------------------------------------

LIMIT = {"max": 10, "retry_after_seconds": 5, "reason": "rate_limited: at the limit"}


def connect_result(**extra: Any) -> dict[str, Any]:
    return {"allow": True, "reasons": [], "limits": {"concurrent_sessions": LIMIT}, **extra}


def test_parsed_ovos_is_a_read_only_copy() -> None:
    pipeline = ["converse"]
    raw = {"pipeline": pipeline, "timezone": "UTC"}
    decision = parse_decision(connect_result(ovos=raw), "connect", "d1")
    assert dict(decision.ovos) == raw
    pipeline.append("changed")
    assert decision.ovos["pipeline"] == ["converse"]
    with pytest.raises(TypeError):
        decision.ovos["timezone"] = "Europe/Lisbon"  # type: ignore[index]


def test_a_deny_without_ovos_and_the_other_points_carry_none() -> None:
    denied = parse_decision({"allow": False, "reasons": ["no"]}, "connect", "d1")
    assert dict(denied.ovos) == {}
    mint = parse_decision(
        {"allow": True, "reasons": [], "limits": {"concurrent_sessions": LIMIT, "mints_per_minute": LIMIT}},
        "mint",
        "d2",
    )
    assert dict(mint.ovos) == {}


@pytest.mark.parametrize(
    ("point", "result", "message"),
    [
        ("connect", connect_result(), "allows without 'ovos'"),
        ("connect", connect_result(ovos=None), "not an object"),
        ("connect", connect_result(ovos=["timezone"]), "not an object"),
        (
            "connect",
            connect_result(ovos="data.x must be an object"),
            "not an object (data.x must be an object)",
        ),
        ("connect", connect_result(ovos={"lang": "en-US"}), "unknown field 'lang'"),
        ("connect", connect_result(ovos={"timezone": "Europe/Lisbonn"}), "not an IANA time zone"),
        ("connect", connect_result(ovos={"timezone": "+01:00"}), "not an IANA time zone"),
        ("connect", connect_result(ovos={"timezone": "../../etc/passwd"}), "not an IANA time zone"),
        ("connect", connect_result(ovos={"timezone": ""}), "not an IANA time zone"),
        ("connect", connect_result(ovos={"timezone": None}), "not an IANA time zone"),
        (
            "connect",
            connect_result(ovos={"system_unit": "Metric"}),
            "system_unit must be one of metric, imperial",
        ),
        ("connect", connect_result(ovos={"time_format": 24}), "time_format must be one of half, full"),
        (
            "connect",
            connect_result(ovos={"date_format": ["DMY"]}),
            "date_format must be one of MDY, DMY, YMD",
        ),
        ("connect", connect_result(ovos={"pipeline": []}), "pipeline must not be empty"),
        ("connect", connect_result(ovos={"pipeline": ["converse", ""]}), "pipeline must be an array"),
        (
            "connect",
            connect_result(ovos={"blacklisted_skills": "a.skill"}),
            "blacklisted_skills must be an array",
        ),
        (
            "connect",
            connect_result(ovos={"blacklisted_intents": [None]}),
            "blacklisted_intents must be an array",
        ),
        # A malformed ovos is refused on a deny too (like malformed limits).
        ("connect", {"allow": False, "reasons": ["no"], "ovos": {"colour": 1}}, "unknown field 'colour'"),
        # mint and session_update keep their shape.
        (
            "mint",
            {
                "allow": True,
                "reasons": [],
                "limits": {"concurrent_sessions": LIMIT, "mints_per_minute": LIMIT},
                "ovos": {},
            },
            "only the connect decision",
        ),
        ("session_update", {"allow": True, "reasons": [], "ovos": {}}, "only the connect decision"),
    ],
    ids=lambda value: str(value)[:70],
)
async def test_a_malformed_ovos_fails_closed(point: Any, result: dict[str, Any], message: str) -> None:
    seen: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": result})

    client = httpx.AsyncClient(transport=httpx.MockTransport(respond))
    engine = OpaPolicyEngine("http://opa.invalid:8181", client=client)
    try:
        with pytest.raises(PolicyUnavailable) as raised:
            await engine.decide(point, case("connect-allowed-direct-key").input)
    finally:
        await client.aclose()
    assert message in str(raised.value)
    assert len(seen) == 1
