"""The gateway deciding through a real OPA sidecar: allow, deny, and fail-closed when OPA goes away."""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.fixtures.opa import OpaServerFactory
from tests.http.test_client_secrets import mint, row_counts
from tests.http.test_foundation import assert_openai_error


async def test_minting_fails_closed_while_opa_is_down_and_recovers(
    gateway_factory: GatewayFactory, opa_server_factory: OpaServerFactory
) -> None:
    opa = opa_server_factory()
    gateway = await gateway_factory(policy_engine="opa", opa_url=opa.url, opa_timeout_seconds=0.5)
    key = await gateway.create_api_key()

    assert (await mint(gateway, key)).status == 200
    denied = await mint(gateway, key, {"session": {"type": "realtime", "model": "not-allowed"}})
    assert denied.status == 403
    assert (await gateway.client.get("/ready")).status == 200

    opa.stop()
    before = await row_counts(gateway)
    for _ in range(3):
        response = await mint(gateway, key)
        assert response.status == 503
        error = assert_openai_error(await response.json(), code="policy_unavailable")
        assert error["type"] == "server_error"
    assert await row_counts(gateway) == before
    ready = await gateway.client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["not_ready"] == ["policy"]

    opa.start()
    assert (await mint(gateway, key)).status == 200
    assert (await gateway.client.get("/ready")).status == 200
    metrics = await (await gateway.client.get("/metrics")).text()
    assert 'gateway_policy_decisions_total{decision="mint",result="unavailable"} 3.0' in metrics
    assert 'gateway_policy_decisions_total{decision="mint",result="allow"} 2.0' in metrics
    assert 'gateway_policy_decisions_total{decision="mint",result="deny"} 1.0' in metrics
