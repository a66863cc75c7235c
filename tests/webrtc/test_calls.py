"""Signaling and call features with real aiortc peers: the official SDK, secrets, legacy POST, CORS,
mDNS candidates, hangup, sideband, barge-in, and large events on the data channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from media_gateway.app_keys import CALLS, SESSIONS
from tests.conftest import Gateway
from tests.support.realtime import connect
from tests.webrtc.client import CallClient

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LONG_REPLY = "tell me a story"  # the example OVOS skill's twelve sentences, about a minute of speech


def text_turn(client: CallClient, text: str) -> None:
    client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        }
    )
    client.send({"type": "response.create", "event_id": "evt_create"})


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def test_official_sdk_creates_a_call_and_the_session_part_applies(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    sdk = AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=key)
    client = CallClient()
    try:
        raw = await sdk.realtime.calls.with_raw_response.create(sdp=await client.offer())
        assert raw.http_response.status_code == 201
        assert raw.headers["content-type"].startswith("application/sdp")
        assert raw.headers["location"].startswith("/v1/realtime/calls/rtc_")
        await client.accept(raw.http_response.text)
        await asyncio.wait_for(client.opened.wait(), 10)
        await client.wait_for("session.created")

        # multipart with a `session` part: the session starts configured.
        second = CallClient()
        try:
            raw = await sdk.realtime.calls.with_raw_response.create(
                sdp=await second.offer(),
                session={"type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"]},
            )
            assert raw.http_response.status_code == 201
            await second.accept(raw.http_response.text)
            created = await second.wait_for("session.created")
            assert created["session"]["instructions"] == "Be brief."
        finally:
            await second.close()
    finally:
        await client.close()
        await sdk.close()


async def test_client_secret_legacy_post_cors_and_mdns(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with aiohttp.ClientSession() as http:
        minted = await http.post(
            gateway.base_url + "/v1/realtime/client_secrets",
            json={"session": {"type": "realtime"}},
            headers={"Authorization": f"Bearer {key}"},
        )
        secret = (await minted.json())["value"]
        preflight = await http.options(
            gateway.base_url + "/v1/realtime/calls",
            headers={
                "Origin": "http://example.test",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-openai-agents-sdk",
            },
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "x-openai-agents-sdk" in preflight.headers["Access-Control-Allow-Headers"]

    with_secret = CallClient()
    legacy = CallClient()
    mdns = CallClient()
    try:
        await with_secret.connect(gateway.base_url, secret)
        assert with_secret.response is not None
        assert with_secret.response.headers["Access-Control-Expose-Headers"] == "Location"
        await with_secret.wait_for("session.created")

        await legacy.connect(gateway.base_url, key, path="/v1/realtime?model=gpt-realtime")
        await legacy.wait_for("session.created")

        # A browser without media permission offers mDNS candidates: they are stripped, the answer is
        # immediate, and the call connects through peer-reflexive discovery.
        sdp = await mdns.offer()
        lines = sdp.split("\r\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("a=candidate:"))
        lines.insert(
            at, "a=candidate:1 1 udp 2122260223 4b2f7a1e-0c1d-4f3a-9e1b-5a6c7d8e9f00.local 50000 typ host"
        )
        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                gateway.base_url + "/v1/realtime/calls",
                data="\r\n".join(lines).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
            )
            answer = await response.text()
        assert response.status == 201, answer
        assert time.perf_counter() - started < 0.5
        await mdns.accept(answer)
        await mdns.wait_for("session.created")
        record = await gateway.repositories.calls.get(response.headers["Location"].rsplit("/", 1)[-1])
        assert record is not None
        assert record.meta["mdns_candidates_stripped"] == 1
    finally:
        for client in (with_secret, legacy, mdns):
            await client.close()


async def test_hangup_ends_the_call(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                gateway.base_url + f"/v1/realtime/calls/{client.call_id}/hangup",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            assert response.status == 200
            assert await response.read() == b""
            other = await gateway.create_api_key()
            response = await http.post(
                gateway.base_url + f"/v1/realtime/calls/{client.call_id}/hangup",
                headers={"Authorization": f"Bearer {other}"},
            )
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "call_not_found"
        assert len(gateway.app[CALLS]) == 0
        assert len(gateway.app[SESSIONS]) == 0
        record = await gateway.repositories.calls.get(client.call_id)
        assert record is not None
        assert record.status == "ended"
        await wait_until(
            lambda: client.pc.connectionState == "closed" or client.channel.readyState == "closed"
        )  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_sideband_websocket_sees_the_same_events(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        async with connect(gateway.base_url, key, query=f"?call_id={client.call_id}") as sideband:
            assert (await sideband.recv())["type"] == "session.created"
            text_turn(client, "hello there")
            done = await client.wait_for("response.done", timeout=30)
            seen = await sideband.wait_for("response.done")
            assert seen["response"]["id"] == done["response"]["id"]
            # The track may start playing just before or just after the pipeline's response.done.
            started = sideband.of_type("output_audio_buffer.started") or [
                await sideband.wait_for("output_audio_buffer.started")
            ]
            assert [e["response_id"] for e in started] == [done["response"]["id"]]
            assert [e["type"] for e in sideband.events] == [e["type"] for e in client.events][
                : len(sideband.events)
            ]
            # The sideband ends with the call: hang up, and the gateway closes it too.
            async with aiohttp.ClientSession() as http:
                hangup = await http.post(
                    gateway.base_url + f"/v1/realtime/calls/{client.call_id}/hangup",
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert hangup.status == 200
            message = await sideband.ws.receive(timeout=10)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await client.close()


async def test_output_audio_buffer_clear_truncates_at_played_audio(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        text_turn(client, LONG_REPLY)
        started = await client.wait_for("output_audio_buffer.started", timeout=30)
        response_id = started["response_id"]
        began = time.monotonic()
        await asyncio.sleep(1.0)
        client.send({"type": "response.cancel"})
        client.send({"type": "output_audio_buffer.clear", "event_id": "evt_clear"})
        cleared = await client.wait_for("output_audio_buffer.cleared")
        elapsed_ms = (time.monotonic() - began) * 1000
        assert cleared["response_id"] == response_id
        truncated = await client.wait_for("conversation.item.truncated")
        done = await client.wait_for("response.done", where=lambda e: e["response"]["id"] == response_id)
        total_ms = 30_000  # far more speech than 1 s
        # Truncated at what was played (≈ the time it played), not what was queued.
        assert 700 <= truncated["audio_end_ms"] <= elapsed_ms + 200 < total_ms
        item_id = done["response"]["output"][0]["id"]
        assert truncated["item_id"] == item_id
        client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await client.wait_for("conversation.item.retrieved")
        heard_words = retrieved["item"]["content"][0]["transcript"].split()
        assert 0 < len(heard_words) < 100  # of the story's 158
        await asyncio.sleep(0.5)
        assert not client.of_type("output_audio_buffer.stopped")
        # Silence follows the clear on the RTP track (the stream keeps running).
        heard = len(client.received)
        await asyncio.sleep(0.6)
        assert len(client.received) > heard
        assert client.received_rms(heard + 48_000) < 50
    finally:
        await client.close()


async def test_large_events_cross_the_data_channel(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    client = CallClient()
    instructions = "Speak clearly. " * 2000  # a ~30 kB session.updated: ~27 SCTP DATA chunks
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        client.send({"type": "session.update", "session": {"type": "realtime", "instructions": instructions}})
        updated = await client.wait_for("session.updated", timeout=10)
        assert updated["session"]["instructions"] == instructions
        client.send({"type": "conversation.item.retrieve", "item_id": "item_missing", "event_id": "evt_r"})
        error = await client.wait_for("error")
        assert error["error"]["event_id"] == "evt_r"
    finally:
        await client.close()
