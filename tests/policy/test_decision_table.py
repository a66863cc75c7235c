"""The same inputs to the real OPA server and the in-process engine: all give the expected decision.

The in-process engine runs with both regorus evaluators (interpreter, the default, and the bytecode VM).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from media_gateway.policy import DECISION_POINTS, Decision, PolicyEngine, create_policy_engine
from media_gateway.policy.inprocess import InProcessPolicyEngine
from tests.fixtures.opa import OpaServer
from tests.policy.cases import CASES, Case


@pytest.fixture(scope="module")
async def opa_engine(opa_server: OpaServer) -> AsyncIterator[PolicyEngine]:
    if not opa_server.running:
        opa_server.start()
    engine = create_policy_engine(
        "opa", registry=CollectorRegistry(), opa_url=opa_server.url, timeout_seconds=5.0
    )
    yield engine
    await engine.close()


@pytest.fixture(scope="module")
async def inprocess_engine() -> AsyncIterator[PolicyEngine]:
    engine = create_policy_engine("inprocess", registry=CollectorRegistry())
    yield engine
    await engine.close()


@pytest.fixture(scope="module")
async def rvm_engine() -> AsyncIterator[PolicyEngine]:
    engine = InProcessPolicyEngine(evaluator="rvm")
    yield engine
    await engine.close()


def test_table_is_large_and_covers_every_point() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    per_point = Counter(case.point for case in CASES)
    outcomes = Counter((case.point, case.allow) for case in CASES)
    for point in DECISION_POINTS:
        assert per_point[point] >= 5
        assert outcomes[(point, True)] >= 1
        assert outcomes[(point, False)] >= 1
    assert any(case.retry_after_seconds is not None for case in CASES)


def view(decision: Decision) -> tuple[object, ...]:
    limits = {name: dataclasses.asdict(limit) for name, limit in decision.limits.items()}
    return (decision.allow, decision.reasons, decision.retry_after_seconds, limits, dict(decision.ovos))


def test_every_scope_carries_limits_in_the_table() -> None:
    """Guard against a vacuous limits check: allowed mints and connects of every scope carry limits."""
    carried = {(case.point, case.limits["concurrent_sessions"]["max"]) for case in CASES if case.limits}
    assert {
        ("mint", 2),
        ("mint", 10),
        ("mint", 100),
        ("connect", 2),
        ("connect", 10),
        ("connect", 100),
    } <= carried
    assert any(case.allow and case.point == "mint" and "mints_per_minute" in case.limits for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_both_engines_decide_as_expected(
    case: Case, opa_engine: PolicyEngine, inprocess_engine: PolicyEngine, rvm_engine: PolicyEngine
) -> None:
    by_opa = await opa_engine.decide(case.point, case.input)
    in_process = await inprocess_engine.decide(case.point, case.input)
    by_rvm = await rvm_engine.decide(case.point, case.input)

    expected = (case.allow, tuple(sorted(case.reasons)), case.retry_after_seconds, case.limits, case.ovos)
    assert view(by_opa) == expected, "OPA server"
    assert view(in_process) == expected, "in-process"
    assert view(by_rvm) == expected, "in-process (rvm)"

    for decision in (by_opa, in_process, by_rvm):
        assert decision.point == case.point
        assert decision.decision_id
        assert decision.rate_limited == (case.retry_after_seconds is not None)
    assert by_opa.decision_id != in_process.decision_id
