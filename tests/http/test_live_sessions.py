"""Live-session slots come back: hydrated sessions expire with their client secret, and a session has one
primary connection across gateways. Driven through the HTTP API and the realtime WebSocket, with the
default limits (the `realtime` scope allows 10 live sessions per key)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.conftest import Gateway, GatewayFactory
from tests.http.test_client_secrets import mint
from tests.http.test_foundation import assert_openai_error
from tests.support.realtime import connect

LIMIT = 10
TTL = 10  # the shortest expires_after.seconds the policy accepts


async def connect_status(base_url: str, credential: str) -> tuple[int, str]:
    """A WebSocket connect: (101, the session id) when session.created arrives, else the refusal's
    (status, Retry-After)."""
    try:
        async with connect(base_url, credential) as client:
            created = await client.recv()
            assert created["type"] == "session.created"
            return 101, str(created["session"]["id"])
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status, (exc.headers or {}).get("Retry-After", "")


async def test_ten_hydrated_secrets_give_their_slots_back_when_they_expire(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    expiries = []
    for _ in range(LIMIT):
        response = await mint(
            gateway,
            key,
            {"expires_after": {"anchor": "created_at", "seconds": TTL}, "session": {"type": "realtime"}},
        )
        assert response.status == 200, await response.text()
        minted = await response.json()
        expiries.append(minted["expires_at"])
        hydrated = await gateway.client.post(
            "/v1/realtime/sessions", headers={"Authorization": f"Bearer {minted['value']}"}
        )
        assert hydrated.status == 200, await hydrated.text()

    # While the secrets live, their hydrated sessions hold the key's ten slots.
    refused = await mint(gateway, key)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert_openai_error(await refused.json(), code="rate_limit_exceeded")
    status, retry_after = await connect_status(gateway.base_url, key)
    assert (status, int(retry_after) >= 1) == (429, True)

    await asyncio.sleep(max(expiries) - time.time() + 0.5)
    again = await mint(gateway, key)
    assert again.status == 200, await again.text()
    status, _ = await connect_status(gateway.base_url, key)
    assert status == 101


async def test_a_session_has_one_primary_connection_across_gateways(gateway_factory: GatewayFactory) -> None:
    first, second = await gateway_factory(), await gateway_factory()  # two instances, one database
    key = await first.create_api_key()
    minted = await (await mint(first, key)).json()
    secret = minted["value"]
    async with connect(first.base_url, secret) as client:
        assert (await client.recv())["type"] == "session.created"
        async with aiohttp.ClientSession() as http:
            response = await http.get(
                second.base_url + "/v1/realtime",
                headers={
                    "Authorization": f"Bearer {secret}",
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            )
            assert response.status == 409
            assert_openai_error(await response.json(), code="session_in_use")
    # Released when the first connection ends: the other gateway may open it now.
    deadline = time.monotonic() + 5
    while (outcome := await connect_status(second.base_url, secret))[0] == 409:
        assert time.monotonic() < deadline, "the first connection's slot was never released"
        await asyncio.sleep(0.05)
    assert outcome == (101, minted["session"]["id"])
