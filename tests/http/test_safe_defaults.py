"""Safe defaults for a gateway reachable beyond loopback: the unauthenticated demo endpoint only on a
loopback listener unless asked for, a Host allow-list against DNS rebinding, and /metrics behind a token or
on a listener of its own."""

from __future__ import annotations

import aiohttp
import pytest

from media_gateway.app_keys import METRICS_PORT
from tests.conftest import GatewayFactory

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DEMO_BODY = {"session": {"type": "realtime"}}


async def test_the_demo_is_off_on_a_public_listener_unless_enabled(gateway_factory: GatewayFactory) -> None:
    public = await gateway_factory(host="0.0.0.0")
    assert (await public.client.get("/")).status == 404
    refused = await public.client.post("/demo/client_secret", json=DEMO_BODY)
    assert refused.status == 404
    loopback = await gateway_factory(host="127.0.0.1")
    assert (await loopback.client.get("/")).status == 200
    explicit = await gateway_factory(host="0.0.0.0", demo_enabled=True)
    assert (await explicit.client.get("/")).status == 200


async def test_a_foreign_host_is_refused_when_the_allow_list_is_set(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(allowed_hosts="gateway.example, 127.0.0.1")
    key = await gateway.create_api_key()
    auth = {"Authorization": f"Bearer {key}"}
    rebound = await gateway.client.post(
        "/v1/realtime/client_secrets", json=DEMO_BODY, headers={**auth, "Host": "evil.example:8000"}
    )
    assert rebound.status == 421
    body = await rebound.json()
    assert body["error"]["code"] == "host_not_allowed"
    assert (await gateway.client.get("/", headers={"Host": "evil.example"})).status == 421
    named = await gateway.client.post(
        "/v1/realtime/client_secrets", json=DEMO_BODY, headers={**auth, "Host": "gateway.example"}
    )
    assert named.status == 200
    assert (await gateway.client.get("/ready", headers={"Host": "10.1.2.3:8000"})).status in (200, 503)
    assert (await gateway.client.get("/health", headers={"Host": "10.1.2.3:8000"})).status == 200
    # The WebSocket upgrade is refused the same way, before anything is upgraded.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(
                gateway.base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime",
                headers={**auth, "Host": "evil.example"},
            )
    assert caught.value.status == 421


async def test_metrics_behind_a_token_or_on_their_own_listener(gateway_factory: GatewayFactory) -> None:
    guarded = await gateway_factory(metrics_token="metrics-token-for-tests")
    assert (await guarded.client.get("/metrics")).status == 401
    allowed = await guarded.client.get(
        "/metrics", headers={"Authorization": "Bearer metrics-token-for-tests"}
    )
    assert allowed.status == 200
    assert "gateway_http_requests_total" in await allowed.text()

    separate = await gateway_factory(metrics_port=0)
    assert (await separate.client.get("/metrics")).status == 404
    port = separate.app[METRICS_PORT]
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert "gateway_http_requests_total" in await response.text()
