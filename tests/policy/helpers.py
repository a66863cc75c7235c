"""Small helpers shared by the policy tests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.policy.cases import CASES, Case


def decision_count(registry: CollectorRegistry, decision: str, result: str) -> float:
    value = registry.get_sample_value(
        "gateway_policy_decisions_total", {"decision": decision, "result": result}
    )
    return 0.0 if value is None else value


def case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)
