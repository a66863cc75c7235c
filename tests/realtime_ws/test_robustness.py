"""Regressions from review: clients that stop reading, long replies, racing connects, failing events."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket

import aiohttp
import pytest

from media_gateway.app_keys import SESSIONS
from tests.conftest import GatewayFactory
from tests.support.realtime import connect

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def masked_text_frame(payload: bytes) -> bytes:
    """One client→server WebSocket text frame (RFC 6455 requires clients to mask)."""
    mask = os.urandom(4)
    size = len(payload)
    header = bytes([0x81])
    if size < 126:
        header += bytes([0x80 | size])
    elif size < 65536:
        header += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return header + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")


async def test_a_client_that_stops_reading_is_dropped_not_buffered(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    host, port = gateway.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    handshake = (
        f"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    sock.sendall(handshake.encode())
    loop = asyncio.get_running_loop()
    for _ in range(100):
        if len(gateway.app[SESSIONS]) == 1:
            break
        await asyncio.sleep(0.05)
    (session,) = gateway.app[SESSIONS]._sessions.values()
    # Each event echoes ~100 kB (item added + done) that this client never reads.
    event = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "x" * 50_000}],
        },
    }
    frame = masked_text_frame(json.dumps(event).encode())
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        for index in range(400):
            await asyncio.wait_for(loop.sock_sendall(sock, frame), 5)
            if index % 50 == 0:
                await asyncio.sleep(0)
    try:
        for _ in range(200):  # the gateway aborts the connection and cleans the session up
            if len(gateway.app[SESSIONS]) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(gateway.app[SESSIONS]) == 0
        record = await gateway.repositories.sessions.get(session.id)
        assert record is not None
        for _ in range(50):
            record = await gateway.repositories.sessions.get(session.id)
            assert record is not None
            if record.status == "closed":
                break
            await asyncio.sleep(0.05)
        assert record.status == "closed"
    finally:
        sock.close()


async def test_a_long_spoken_reply_is_not_cut_by_the_pipeline_timeout(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(response_timeout_seconds=1.0)
    key = await gateway.create_api_key()
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": f"say {words}"}],
                },
            }
        )
        await client.send({"type": "response.create"})
        done = await client.wait_for("response.done", timeout=60)
        assert done["response"]["status"] == "completed"
        audio_ms = (
            sum(len(base64.b64decode(e["delta"])) for e in client.of_type("response.output_audio.delta")) / 48
        )
        assert audio_ms > 2000  # longer than the 1 s pipeline timeout, delivered at real time


async def test_racing_connects_respect_the_concurrent_session_limit(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()  # realtime scope: 10 concurrent sessions
    url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    async with aiohttp.ClientSession() as http:

        async def attempt() -> aiohttp.ClientWebSocketResponse | int:
            try:
                return await http.ws_connect(url, headers={"Authorization": f"Bearer {key}"})
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

        results = await asyncio.gather(*(attempt() for _ in range(25)))
        sockets = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
        refusals = [r for r in results if isinstance(r, int)]
        try:
            assert len(sockets) == 10
            assert refusals == [429] * 15
        finally:
            for ws in sockets:
                await ws.close()


async def test_an_item_id_longer_than_storage_allows_is_an_error_event(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        item = {
            "id": "i" * 65,
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "x"}],
        }
        await client.send({"type": "conversation.item.create", "event_id": "long", "item": item})
        error = (await client.wait_for("error"))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "item.id", "long")
        item["id"] = "i" * 64
        await client.send({"type": "conversation.item.create", "item": item})
        assert (await client.wait_for("conversation.item.done"))["item"]["id"] == "i" * 64


async def test_a_response_whose_item_cannot_be_stored_still_ends_with_response_done(
    gateway_factory: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the reply's item (here: `database is locked`, as a saturated SQLite said under
    load): the client gets `response.done` failed with `item_store_failed`, not a response that never
    ends; the session goes on."""
    from media_gateway.realtime.conversation import Conversation

    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.wait_for("session.created")
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hello"}],
                },
            }
        )
        await client.wait_for("conversation.item.done")
        original = Conversation.save

        async def locked(self: Conversation, item: dict[str, object]) -> None:
            raise RuntimeError("database is locked")

        monkeypatch.setattr(Conversation, "save", locked)
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        done = await client.wait_for("response.done", timeout=30)
        assert done["response"]["status"] == "failed"
        assert done["response"]["status_details"]["error"]["code"] == "item_store_failed"
        monkeypatch.setattr(Conversation, "save", original)
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        again = await client.wait_for("response.done", timeout=30)
        assert again["response"]["status"] == "completed"


async def test_live_sessions_and_error_events_are_counted(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()

    async def metric(line: str) -> float:
        text = await (await gateway.client.get("/metrics")).text()
        values = [float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line + " ")]
        return values[0] if values else 0.0

    async with connect(gateway.base_url, key) as client:
        await client.wait_for("session.created")
        assert await metric("gateway_realtime_sessions") == 1
        await client.send({"type": "no.such.event"})
        error = await client.wait_for("error")
        code = error["error"]["code"]
        assert await metric(f'gateway_realtime_errors_total{{code="{code}"}}') == 1
    for _ in range(100):
        if await metric("gateway_realtime_sessions") == 0:
            break
        await asyncio.sleep(0.05)
    assert await metric("gateway_realtime_sessions") == 0
