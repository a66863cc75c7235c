"""Call lifecycle: the connect watchdog, a vanished peer, concurrency, and open/close soak."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import tracemalloc

import aiohttp
import pytest
from aiortc.mediastreams import MediaStreamTrack
from av.audio.frame import AudioFrame

from media_gateway.app_keys import CALLS, METRICS, SESSIONS
from tests.conftest import GatewayFactory
from tests.webrtc.client import CallClient
from tests.webrtc.conftest import live_peer_connections
from tests.webrtc.test_calls import text_turn, wait_until

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class MuteTrack(MediaStreamTrack):
    """A track that never yields a frame: the peer sends no RTP at all (a vanished or frozen client)."""

    kind = "audio"

    async def recv(self) -> AudioFrame:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def post_offer(base_url: str, key: str, sdp: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            base_url + "/v1/realtime/calls",
            data=sdp.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )
        return response.status, await response.text(), response.headers.get("Location", "")


async def test_connect_watchdog_fails_a_call_whose_ice_never_completes(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(webrtc_connect_timeout_seconds=1.5)
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        status, _answer, location = await post_offer(gateway.base_url, key, await client.offer())
        assert status == 201
        await client.pc.close()  # the answer is never applied: no connectivity check ever arrives
        call_id = location.rsplit("/", 1)[-1]
        started = time.monotonic()
        await wait_until(lambda: len(gateway.app[CALLS]) == 0, timeout=5)
        assert time.monotonic() - started < 2.5
        record = await gateway.repositories.calls.get(call_id)
        assert record is not None
        assert record.status == "failed"
        session = await gateway.repositories.sessions.get(record.session_id)
        assert session is not None
        assert session.status == "closed"
    finally:
        await client.close()


async def test_a_vanished_peer_is_released_in_seconds(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(webrtc_peer_timeout_seconds=1.5)
    key = await gateway.create_api_key()
    client = CallClient(audio=False)
    client.pc.addTrack(MuteTrack())
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        started = time.monotonic()
        await wait_until(lambda: len(gateway.app[CALLS]) == 0, timeout=6)
        assert time.monotonic() - started < 3.0
        registry = gateway.app[METRICS].registry
        ended = registry.get_sample_value("gateway_webrtc_calls_ended_total", {"reason": "peer_timeout"})
        assert ended == 1
        record = await gateway.repositories.calls.get(client.call_id)
        assert record is not None
        assert record.status == "ended"
    finally:
        await client.close()


async def test_ten_concurrent_calls_each_hear_their_reply(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    key = await gateway.create_api_key()
    clients = [CallClient() for _ in range(10)]
    try:
        await asyncio.gather(*(client.connect(gateway.base_url, key) for client in clients))
        assert len(gateway.app[CALLS]) == 10
        await asyncio.gather(*(client.wait_for("session.created") for client in clients))
        for number, client in enumerate(clients):
            text_turn(client, f"repeat after me call number {number}")
        done = await asyncio.gather(*(client.wait_for("response.done", timeout=60) for client in clients))
        await asyncio.gather(
            *(client.wait_for("output_audio_buffer.stopped", timeout=30) for client in clients)
        )
        for number, (client, event) in enumerate(zip(clients, done, strict=True)):
            transcript = event["response"]["output"][0]["content"][0]["transcript"]
            assert transcript.startswith(f"call number {number}"), transcript
            assert client.received_rms() > 50
        assert len({client.call_id for client in clients}) == 10
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    await wait_until(lambda: len(gateway.app[CALLS]) == 0 and len(gateway.app[SESSIONS]) == 0)


CYCLES = 200
WARMUP = 20
# Bounds, stated: after warm-up, 180 more connect/hangup cycles may grow traced Python memory by at most
# 4 MiB (~23 kB per call would show as ~4 MiB), and leave no extra task, thread or live peer connection.
MEMORY_GROWTH_BOUND = 4 * 1024 * 1024


async def test_open_close_cycles_leave_nothing_behind(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every captured log record of a test in memory, and aioice's records hold references
    # to its connection objects: at INFO that alone grows ~12 MB over 200 cycles. Measure the gateway,
    # not the capture.
    caplog.set_level(logging.WARNING)
    gateway = await gateway_factory()
    key = await gateway.create_api_key()

    async def cycle() -> None:
        client = CallClient()
        try:
            await client.connect(gateway.base_url, key)
            await client.wait_for("session.created")
            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    gateway.base_url + f"/v1/realtime/calls/{client.call_id}/hangup",
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status == 200
        finally:
            await client.close()

    async def settle() -> tuple[int, int, int]:
        await wait_until(lambda: len(gateway.app[CALLS]) == 0)
        await asyncio.sleep(0.3)
        gc.collect()
        return len(asyncio.all_tasks()), threading.active_count(), live_peer_connections()

    for _ in range(WARMUP):
        await cycle()
    tasks_before, threads_before, peers_before = await settle()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        for _ in range(CYCLES - WARMUP):
            await cycle()
        tasks_after, threads_after, peers_after = await settle()
        growth = tracemalloc.get_traced_memory()[0] - before
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    top = "\n".join(str(stat) for stat in snapshot.statistics("lineno")[:12])
    print(
        f"\n{CYCLES - WARMUP} cycles in {time.monotonic() - started:.1f} s: traced memory "
        f"{growth / 1024:+.0f} KiB, tasks {tasks_before}->{tasks_after}, threads {threads_before}->"
        f"{threads_after}, live peer connections {peers_before}->{peers_after}"
    )
    assert peers_after == peers_before == 0
    assert tasks_after <= tasks_before
    assert threads_after <= threads_before
    assert growth < MEMORY_GROWTH_BOUND, f"traced memory grew {growth} bytes; largest sites:\n{top}"
