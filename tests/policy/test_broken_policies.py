"""Broken or incomplete policies fail closed the same way on both engines, and in-process load errors."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from media_gateway.policy import (
    DEFAULT_POLICY_DIR,
    InstrumentedPolicyEngine,
    PolicyEngine,
    PolicyMetrics,
    PolicyUnavailable,
    create_policy_engine,
)
from media_gateway.policy.inprocess import Evaluator, InProcessPolicyEngine, PolicyLoadError, policy_files
from tests.fixtures.opa import OpaServerFactory
from tests.policy.helpers import case, decision_count

EngineFactory = Callable[[Path], Awaitable[tuple[PolicyEngine, CollectorRegistry]]]

HEADER = "package ovos_gateway.realtime\n\n"
# The other decision points are fine (the bytecode VM compiles all three entry points up front).
OTHERS = '\nsession_update := {"allow": true, "reasons": []}\n\nconnect := {"allow": true, "reasons": []}\n'
BROKEN_POLICIES = {
    # Two complete definitions with different values: an evaluation-time conflict (OPA answers 500).
    "conflict": HEADER + 'mint := {"allow": true, "reasons": []}\n\n'
    'mint := {"allow": false, "reasons": ["x"]} if input.key\n' + OTHERS,
    # No default: undefined for this input.
    "undefined": HEADER + 'mint := {"allow": true, "reasons": []} if input.never\n' + OTHERS,
    # A result that is not a decision object.
    "malformed": HEADER + 'mint := {"allow": "yes", "reasons": []}\n' + OTHERS,
    "not-an-object": HEADER + "mint := true\n" + OTHERS,
    # The decision rule does not exist at all.
    "missing-rule": HEADER + 'other := {"allow": true, "reasons": []}\n' + OTHERS,
}


@pytest.fixture(params=["opa", "interpreter", "rvm"])
async def engine_for(
    request: pytest.FixtureRequest, opa_server_factory: OpaServerFactory
) -> AsyncIterator[EngineFactory]:
    engines: list[PolicyEngine] = []

    async def make(policy_dir: Path) -> tuple[PolicyEngine, CollectorRegistry]:
        registry = CollectorRegistry()
        if request.param == "opa":
            server = opa_server_factory(policy_dir=policy_dir)
            engine = create_policy_engine("opa", registry=registry, opa_url=server.url, timeout_seconds=5)
        else:
            inner = InProcessPolicyEngine(policy_dir, evaluator=request.param)
            engine = InstrumentedPolicyEngine(
                inner, metrics=PolicyMetrics.create(registry), engine_name="inprocess"
            )
        engines.append(engine)
        return engine, registry

    yield make
    for engine in engines:
        await engine.close()


@pytest.mark.parametrize("kind", sorted(BROKEN_POLICIES))
async def test_broken_policy_is_unavailable_never_allowed(
    kind: str, tmp_path: Path, engine_for: EngineFactory, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "policy.rego").write_text(BROKEN_POLICIES[kind])
    if kind == "missing-rule" and request.node.callspec.params["engine_for"] == "rvm":
        # The bytecode VM compiles the decision entry points up front: a missing one fails at load time.
        with pytest.raises(PolicyLoadError, match="cannot load the policies"):
            await engine_for(tmp_path)
        return
    engine, registry = await engine_for(tmp_path)
    with pytest.raises(PolicyUnavailable):
        await engine.decide("mint", case("mint-allowed").input)
    assert decision_count(registry, "mint", "unavailable") == 1


async def test_missing_data_document_denies_with_a_reason(tmp_path: Path, engine_for: EngineFactory) -> None:
    for path in policy_files(DEFAULT_POLICY_DIR):
        shutil.copy(path, tmp_path / path.name)
    engine, _ = await engine_for(tmp_path)
    decision = await engine.decide("connect", case("connect-allowed-direct-key").input)
    assert not decision.allow
    assert decision.reasons == (
        "API key has no scope that permits realtime access",
        "policy configuration (data.ovos_gateway.config) is not loaded",
        "transport must be one of: ",
    )


@pytest.mark.parametrize("evaluator", ["interpreter", "rvm"])
def test_inprocess_load_errors_are_raised_at_construction(tmp_path: Path, evaluator: Evaluator) -> None:
    with pytest.raises(PolicyLoadError, match=r"no \.rego files"):
        InProcessPolicyEngine(tmp_path, evaluator=evaluator)
    (tmp_path / "policy.rego").write_text("package ovos_gateway.realtime\n\nmint := if\n")
    with pytest.raises(PolicyLoadError, match=r"policy\.rego:3:\d+: error:"):
        InProcessPolicyEngine(tmp_path, evaluator=evaluator)
    (tmp_path / "policy.rego").write_text("package ovos_gateway.realtime\n\nmint := 1\n")
    (tmp_path / "data.json").write_text("[1, 2]")
    with pytest.raises(PolicyLoadError, match="JSON object"):
        InProcessPolicyEngine(tmp_path, evaluator=evaluator)
    (tmp_path / "data.json").write_text("{")
    with pytest.raises(PolicyLoadError, match="not valid JSON"):
        InProcessPolicyEngine(tmp_path, evaluator=evaluator)


def test_test_files_are_not_part_of_the_policy(tmp_path: Path) -> None:
    (tmp_path / "a.rego").write_text("package p\n")
    (tmp_path / "a_test.rego").write_text("package p_test\n")
    assert [p.name for p in policy_files(tmp_path)] == ["a.rego"]


@pytest.mark.parametrize("evaluator", ["interpreter", "rvm"])
async def test_inprocess_closed_engine_and_bad_input_fail_closed(evaluator: Evaluator) -> None:
    engine = InProcessPolicyEngine(evaluator=evaluator)
    assert await engine.ready()
    with pytest.raises(PolicyUnavailable, match="not JSON-serialisable"):
        await engine.decide("mint", {"key": {1, 2}})
    await engine.close()
    assert not await engine.ready()
    with pytest.raises(PolicyUnavailable, match="closed"):
        await engine.decide("mint", case("mint-allowed").input)
