"""SIGTERM drains `media-gateway serve`: with 10 WebSocket sessions and 5 WebRTC calls each in the middle of
a response, /ready turns 503 and new sessions are refused while the responses finish; then every client
gets `server_shutting_down` and a close (1012 on the WebSockets, on which the official SDKs reconnect), the
process exits 0 within its shutdown timeout, and no session is left `active` in the database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.processes import GatewayProcess, create_key, gateway_env, run_command
from tests.support.realtime import connect
from tests.webrtc.client import CallClient
from tests.webrtc.test_calls import text_turn

# Three seconds of speech: each response is still playing when SIGTERM arrives, and ends well within the
# drain's budget (half the shutdown timeout).
QUESTION = "repeat after me the quick brown fox jumps over the lazy dog"
SHUTDOWN_TIMEOUT = 10.0  # the production default


async def test_sigterm_drains_sessions_and_calls_then_exits_cleanly(
    postgres_url: str, tmp_path: Path
) -> None:
    env = gateway_env(postgres_url)
    code, _, err = await run_command(["migrate"], env, tmp_path)
    assert code == 0, err
    # Two keys: the shipped policy allows 10 concurrent sessions per key.
    key, _ = await create_key(env, tmp_path, "drain-websocket")
    call_key, _ = await create_key(env, tmp_path, "drain-webrtc")
    gateway = GatewayProcess(env, tmp_path)
    await gateway.start()
    url = gateway.base_url
    calls = [CallClient() for _ in range(5)]
    closes: list[int | None] = []
    finished: list[str] = []

    async def websocket_session(opened: asyncio.Event) -> None:
        async with connect(url, key) as client:
            assert (await client.recv())["type"] == "session.created"
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": QUESTION}],
                    },
                }
            )
            await client.send({"type": "response.create"})
            while (event := await client.recv(timeout=30))["type"] != "response.output_audio.delta":
                assert event["type"] != "error", event
            opened.set()
            status = ""
            try:
                while True:
                    event = await client.recv(timeout=SHUTDOWN_TIMEOUT)
                    if event["type"] == "response.done":
                        status = event["response"]["status"]
                    if event["type"] == "error":
                        assert event["error"]["code"] == "server_shutting_down"
                        finished.append(status)
            except ConnectionError:
                closes.append(client.ws.close_code)

    try:
        await asyncio.gather(*(call.connect(url, call_key) for call in calls))
        await asyncio.gather(*(call.wait_for("session.created") for call in calls))
        for call in calls:
            text_turn(call, QUESTION)
        opened = [asyncio.Event() for _ in range(10)]
        sessions = [asyncio.create_task(websocket_session(event)) for event in opened]
        try:
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 30)
        except TimeoutError:
            failures = [task.exception() for task in sessions if task.done()]
            raise AssertionError(f"sessions did not start their responses: {failures}") from None
        await asyncio.gather(*(call.wait_for("output_audio_buffer.started", timeout=30) for call in calls))

        assert gateway.process is not None
        stopping = time.monotonic()
        gateway.process.terminate()
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/ready") as ready:
                assert ready.status == 503
                assert "shutdown" in (await ready.json())["not_ready"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with connect(url, key):
                    pass
            assert refused.value.status == 503
        exit_code = await asyncio.wait_for(gateway.process.wait(), SHUTDOWN_TIMEOUT + 5)
        stopped_after = time.monotonic() - stopping
        await asyncio.gather(*sessions)
    finally:
        await asyncio.gather(*(call.close() for call in calls), return_exceptions=True)
        await gateway.stop()

    assert exit_code == 0, gateway.log()[-3000:]
    assert stopped_after < SHUTDOWN_TIMEOUT
    assert closes == [1012] * 10
    assert finished == ["completed"] * 10  # each finished its response before it was told
    for call in calls:
        (done,) = call.of_type("response.done")
        assert done["response"]["status"] == "completed"
        assert call.of_type("error")[-1]["error"]["code"] == "server_shutting_down"
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            active = await conn.scalar(text("SELECT count(*) FROM realtime_sessions WHERE status = 'active'"))
    finally:
        await engine.dispose()
    assert active == 0
    print(f"\ndrain: 10 WebSocket sessions, 5 WebRTC calls finished; exit 0 after {stopped_after:.2f} s")
