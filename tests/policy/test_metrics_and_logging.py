"""Every decision is counted (decision, result labels only) and logged with its decision id."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from media_gateway.policy import DECISION_POINTS, PolicyUnavailable, create_policy_engine
from tests.policy.helpers import case, decision_count


def counter_samples(registry: CollectorRegistry) -> list[dict[str, str]]:
    (family,) = [m for m in registry.collect() if m.name == "gateway_policy_decisions"]
    return [s.labels for s in family.samples if s.name == "gateway_policy_decisions_total"]


async def test_decisions_are_counted_by_point_and_result_only() -> None:
    registry = CollectorRegistry()
    engine = create_policy_engine("inprocess", registry=registry)
    # Every (decision, result) series exists from the start, at zero.
    assert {(s["decision"], s["result"]) for s in counter_samples(registry)} == {
        (point, result) for point in DECISION_POINTS for result in ("allow", "deny", "unavailable")
    }
    await engine.decide("mint", case("mint-allowed").input)
    await engine.decide("mint", case("mint-wrong-model").input)
    await engine.decide("mint", case("mint-over-rate-limit").input)
    await engine.decide("session_update", case("update-allowed-voice-change").input)
    await engine.decide("connect", case("connect-expired-secret").input)
    await engine.close()
    with pytest.raises(PolicyUnavailable):
        await engine.decide("connect", case("connect-allowed-direct-key").input)

    assert decision_count(registry, "mint", "allow") == 1
    assert decision_count(registry, "mint", "deny") == 2
    assert decision_count(registry, "session_update", "allow") == 1
    assert decision_count(registry, "connect", "deny") == 1
    assert decision_count(registry, "connect", "unavailable") == 1
    assert decision_count(registry, "connect", "allow") == 0
    for labels in counter_samples(registry):
        assert set(labels) == {"decision", "result"}
    assert (
        registry.get_sample_value("gateway_policy_decision_duration_seconds_count", {"decision": "mint"}) == 3
    )


async def test_unknown_decision_point_is_a_programming_error_and_not_counted() -> None:
    registry = CollectorRegistry()
    engine = create_policy_engine("inprocess", registry=registry)
    with pytest.raises(ValueError, match="unknown decision point"):
        await engine.decide("delete_everything", {})  # type: ignore[arg-type]
    assert all(
        registry.get_sample_value("gateway_policy_decisions_total", labels) == 0
        for labels in counter_samples(registry)
    )


def test_factory_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="opa_url"):
        create_policy_engine("opa", registry=CollectorRegistry())
    with pytest.raises(ValueError, match="unknown policy engine"):
        create_policy_engine("wasm", registry=CollectorRegistry())  # type: ignore[arg-type]


async def test_each_decision_is_logged_with_its_id_but_not_its_input() -> None:
    engine = create_policy_engine("inprocess", registry=CollectorRegistry())
    denied = case("mint-over-rate-limit")
    with capture_logs() as logs:
        allowed_decision = await engine.decide("mint", case("mint-allowed").input)
        denied_decision = await engine.decide("mint", denied.input)
    await engine.close()
    with capture_logs() as unavailable_logs, pytest.raises(PolicyUnavailable) as raised:
        await engine.decide("connect", case("connect-allowed-direct-key").input)

    entries = [e for e in logs if e["event"] == "policy.decision"]
    assert [e["decision_id"] for e in entries] == [allowed_decision.decision_id, denied_decision.decision_id]
    allowed_entry, denied_entry = entries
    assert allowed_entry["allow"] is True
    assert allowed_entry["result"] == "allow"
    assert allowed_entry["point"] == "mint"
    assert allowed_entry["reasons"] == []
    assert denied_entry["allow"] is False
    assert denied_entry["result"] == "deny"
    assert denied_entry["reasons"] == list(denied.reasons)
    assert denied_entry["retry_after_seconds"] == 60
    assert denied_entry["key_id"] == "key_01"
    for entry in entries:
        assert "input" not in entry
        assert "request" not in entry
        assert "session" not in entry
        assert "usage" not in entry

    (unavailable_entry,) = [e for e in unavailable_logs if e["event"] == "policy.decision"]
    assert unavailable_entry["result"] == "unavailable"
    assert unavailable_entry["allow"] is False
    assert unavailable_entry["decision_id"] == raised.value.decision_id
