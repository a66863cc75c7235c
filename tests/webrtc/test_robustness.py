"""A call under stress: a client flooding the data channel, the gateway failing while it answers, and
shutdown arriving in the middle of an answer. Nothing is dropped silently and nothing leaks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from media_gateway.app_keys import CALLS, REPOSITORIES, SESSIONS
from tests.conftest import GatewayFactory
from tests.webrtc.client import CallClient
from tests.webrtc.test_calls import wait_until
from tests.webrtc.test_lifecycle import post_offer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FLOOD = 1500


async def test_a_flood_of_client_events_gets_an_answer_for_every_one(gateway_factory: GatewayFactory) -> None:
    """Every event is answered: by its own reply, or by a `too_many_events` error echoing its event_id."""
    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        assert client.channel is not None
        for n in range(FLOOD):  # one burst; each update costs a policy decision and a database write
            update = {"type": "realtime", "instructions": f"update {n}"}
            client.channel.send(
                json.dumps({"type": "session.update", "session": update, "event_id": f"e{n}"})
            )

        def refused() -> set[str]:
            return {
                e["error"]["event_id"]
                for e in client.of_type("error")
                if e["error"]["code"] == "too_many_events"
            }

        await wait_until(lambda: len(client.of_type("session.updated")) + len(refused()) >= FLOOD, timeout=90)
        print(f"\nflood of {FLOOD}: {len(refused())} refused with too_many_events, the rest answered")
        assert len(refused()) > 0  # the burst did overflow the inbox
        assert refused() <= {f"e{n}" for n in range(FLOOD)}
        assert len(client.of_type("session.updated")) + len(refused()) == FLOOD
        assert len(client.of_type("error")) == len(refused())
        # The call is still usable afterwards.
        client.send({"type": "conversation.item.retrieve", "item_id": "item_after", "event_id": "after"})
        await client.wait_for("error", where=lambda e: e["error"].get("event_id") == "after")
    finally:
        await client.close()


async def test_a_gateway_fault_while_answering_is_a_500_without_internals(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    repositories = gateway.app[REPOSITORIES]

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError("secret internal detail 4217")

    repositories.calls.create = broken  # type: ignore[method-assign]
    client = CallClient()
    try:
        status, body, _ = await post_offer(gateway.base_url, key, await client.offer())
    finally:
        await client.close()
    assert status == 500
    error = json.loads(body)["error"]
    assert error["type"] == "server_error"
    assert "4217" not in body
    assert "secret internal detail" not in body
    assert len(gateway.app[CALLS]) == 0
    assert len(gateway.app[SESSIONS]) == 0


async def test_shutdown_during_an_answer_registers_nothing(gateway_factory: GatewayFactory) -> None:
    # A STUN server that never answers keeps the answer in ICE gathering for the gathering cap.
    gateway = await gateway_factory(
        webrtc_ice_servers=[{"urls": "stun:127.0.0.1:9"}], webrtc_gather_timeout_seconds=2.0
    )
    key = await gateway.create_api_key()
    key_id = (await gateway.key_record(key)).id
    client = CallClient()
    try:
        posting = asyncio.create_task(post_offer(gateway.base_url, key, await client.offer()))
        await wait_until(lambda: len(gateway.app[CALLS]) == 1, timeout=5)
        for on_shutdown in gateway.app.on_shutdown:  # what aiohttp runs on SIGTERM
            await on_shutdown(gateway.app)
        status, body, location = await posting
    finally:
        await client.close()
    assert status == 503, body
    assert json.loads(body)["error"]["code"] == "shutting_down"
    assert location == ""
    await asyncio.sleep(0.5)  # anything that leaked would be registered by now
    assert len(gateway.app[CALLS]) == 0
    assert len(gateway.app[SESSIONS]) == 0
    assert await gateway.repositories.sessions.count_live(key_id) == 0
