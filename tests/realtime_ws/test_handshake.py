"""Connecting to `/v1/realtime`: credentials, subprotocols, the connect policy, secrets, and limits."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.http.test_client_secrets import mint
from tests.http.test_foundation import assert_openai_error
from tests.support.conformance import GATE
from tests.support.realtime import connect


async def refused(gateway: Gateway, query: str = "?model=gpt-realtime", **headers: str) -> tuple[int, object]:
    """Attempt an upgrade that must be refused before it; return the HTTP status and JSON body."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(
                gateway.base_url.replace("http", "ws") + "/v1/realtime" + query, headers=headers
            )
        # aiohttp drops the body of a refused handshake; fetch the same request as plain HTTP to read it.
        response = await http.get(
            gateway.base_url + "/v1/realtime" + query,
            headers={
                **headers,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert response.status == caught.value.status
        return response.status, await response.json()


async def test_subprotocol_key_selects_realtime_and_is_never_echoed(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key, subprotocol=True) as client:
        assert client.ws.protocol == "realtime"
        assert (await client.recv())["type"] == "session.created"


async def test_query_forms(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key, "") as client:
        created = await client.recv()
        assert created["session"]["model"] == gateway.settings.default_model
    async with connect(gateway.base_url, key, "?intent=transcription") as client:
        created = await client.recv()
        assert created["session"]["type"] == "transcription"
    status, body = await refused(gateway, "?call_id=rtc_unknown", Authorization=f"Bearer {key}")
    assert status == 404
    assert_openai_error(body, code="call_not_found")


async def test_missing_and_forged_credentials_are_refused_before_upgrade(gateway: Gateway) -> None:
    status, body = await refused(gateway)
    assert status == 401
    assert_openai_error(body, code="missing_api_key")
    status, body = await refused(gateway, Authorization="Bearer ek_" + "Z" * 43)
    assert status == 401
    assert_openai_error(body, code="invalid_api_key")
    status, body = await refused(gateway, Authorization="Bearer sk_" + "Z" * 43)
    assert status == 401


async def test_client_secret_opens_its_bound_session_once_at_a_time(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    minted = await (
        await mint(gateway, key, {"session": {"type": "realtime", "instructions": "bound"}})
    ).json()
    secret = minted["value"]
    async with connect(gateway.base_url, secret) as client:
        created = await client.recv()
        assert created["session"]["id"] == minted["session"]["id"]
        assert created["session"]["instructions"] == "bound"
        # The secret's session already has its connection: a second one is refused (sideband attach
        # is the way to share a session).
        status, body = await refused(gateway, Authorization=f"Bearer {secret}")
        assert status == 409
        assert_openai_error(body, code="session_in_use")
    await asyncio.sleep(0.2)  # the server releases the lease when it sees the close
    async with connect(gateway.base_url, secret) as client:
        assert (await client.recv())["type"] == "session.created"
    for _ in range(50):  # the server records the close right after the socket goes away
        record = await gateway.repositories.sessions.get(minted["session"]["id"])
        assert record is not None
        if record.status == "closed":
            break
        await asyncio.sleep(0.05)
    assert record.status == "closed"


async def test_connect_policy_denies_direct_keys_of_restricted_scope(gateway: Gateway) -> None:
    key = await gateway.create_api_key(scopes=("restricted",))
    status, body = await refused(gateway, Authorization=f"Bearer {key}")
    assert status == 403
    assert_openai_error(body, code="policy_denied")


async def test_oversize_frame_gets_an_error_and_a_1009_close(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(ws_max_message_bytes=65536)
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send_raw(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 100_000}))
        message = await client.ws.receive(timeout=10)
        if message.type == aiohttp.WSMsgType.TEXT:
            error = GATE.check(message.data)
            assert error["error"]["code"] == "message_too_large"
            message = await client.ws.receive(timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert client.ws.close_code == 1009


async def test_idle_session_is_told_and_closed(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(session_idle_timeout_seconds=0.5)
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        error = await client.wait_for("error", timeout=5)
        assert error["error"]["code"] == "idle_timeout"
        message = await client.ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert client.ws.close_code == 1000


async def test_session_hits_its_maximum_duration(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(session_max_seconds=1.0)
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        error = await client.wait_for("error", timeout=5)
        assert error["error"]["code"] == "session_expired"
        message = await client.ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_items_survive_a_gateway_restart(gateway_factory: GatewayFactory) -> None:
    first = await gateway_factory()
    key = await first.create_api_key()
    async with connect(first.base_url, key) as client:
        created = await client.recv()
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "remember me"}],
                },
            }
        )
        done = await client.wait_for("conversation.item.done")
    await first.client.close()
    second = await gateway_factory()
    items = await second.repositories.items.list_for_session(created["session"]["id"])
    assert [item.id for item in items] == [done["item"]["id"]]
    assert items[0].content == [{"type": "input_text", "text": "remember me"}]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_sessions_per_key_are_limited_by_policy(gateway: Gateway) -> None:
    """The `realtime` scope allows 10 live sessions per key (policy data); the 11th is told to retry."""
    key = await gateway.create_api_key()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(10):
            client = await stack.enter_async_context(connect(gateway.base_url, key))
            assert (await client.recv())["type"] == "session.created"
        async with aiohttp.ClientSession() as http:
            response = await http.get(
                gateway.base_url + "/v1/realtime?model=gpt-realtime",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            )
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert_openai_error(await response.json(), code="rate_limit_exceeded")
    # Closing one frees a slot.
    for _ in range(50):
        if await gateway.repositories.sessions.count_live((await gateway.key_record(key)).id) < 10:
            break
        await asyncio.sleep(0.05)
    async with connect(gateway.base_url, key) as client:
        assert (await client.recv())["type"] == "session.created"
