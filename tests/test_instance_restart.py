"""A gateway process killed with live sessions gives their slots back: at once when it restarts under its
instance id, one heartbeat TTL later when it never comes back. Real `media-gateway serve` processes,
real WebSocket sessions, the default limits (the `realtime` scope allows 10 live sessions per key)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from media_gateway.settings import load_settings
from tests.support.processes import GatewayProcess, create_key, gateway_env, run_command
from tests.support.realtime import RealtimeClient, connect

LIMIT = 10  # concurrent_sessions of the `realtime` scope in the shipped policy data
HELD = 5


async def open_sessions(
    stack: contextlib.AsyncExitStack, base_url: str, key: str, count: int
) -> list[RealtimeClient]:
    clients = await asyncio.gather(*(stack.enter_async_context(connect(base_url, key)) for _ in range(count)))
    for created in await asyncio.gather(*(client.recv() for client in clients)):
        assert created["type"] == "session.created"
    return list(clients)


async def refused_status(base_url: str, key: str) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(
                base_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime",
                headers={"Authorization": f"Bearer {key}"},
            ):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    values = gateway_env(database_url, speech_pipeline="none")
    code, _, err = await run_command(["migrate"], values, tmp_path)
    assert code == 0, err
    return values


async def test_a_gateway_killed_with_live_sessions_restarts_with_the_limit_whole(
    env: dict[str, str], tmp_path: Path
) -> None:
    key, _ = await create_key(env, tmp_path, "restart")
    gateway = GatewayProcess(env, tmp_path)
    await gateway.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await open_sessions(stack, gateway.base_url, key, HELD)
            await gateway.kill()  # SIGKILL while the five sessions are live
        spawned = time.monotonic()
        healthy = await gateway.start()  # same host, address and port: the same instance id
        async with contextlib.AsyncExitStack() as stack:
            await open_sessions(stack, gateway.base_url, key, LIMIT)
            whole = time.monotonic()
            assert await refused_status(gateway.base_url, key) == 429  # and the limit still holds
    finally:
        await gateway.stop()
    (started,) = gateway.log_events("instance.started")[1:]
    assert started["released_sessions"] == HELD
    print(
        f"\nafter SIGKILL with {HELD} live sessions: {LIMIT} sessions admitted "
        f"{whole - healthy:.3f} s after the restarted gateway answered /health "
        f"({whole - spawned:.2f} s after it was spawned); start-up released {started['released_sessions']}"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_dead_gateway_that_never_returns_stops_holding_slots_after_its_ttl(
    env: dict[str, str], tmp_path: Path
) -> None:
    ttl = load_settings(_env_file=None).instance_ttl_seconds
    key, _ = await create_key(env, tmp_path, "dead")
    dead = GatewayProcess(env, tmp_path)
    survivor = GatewayProcess(env, tmp_path)  # another port: another instance
    await dead.start()
    await survivor.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await open_sessions(stack, dead.base_url, key, HELD)
            await dead.kill()
            killed = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            # Within the TTL the dead instance's sessions still count: only LIMIT - HELD are free.
            await open_sessions(stack, survivor.base_url, key, LIMIT - HELD)
            while await refused_status(survivor.base_url, key) == 429:
                assert time.monotonic() - killed < ttl + 5, "the dead instance's sessions still count"
                await asyncio.sleep(0.5)
            freed = time.monotonic() - killed
            await open_sessions(stack, survivor.base_url, key, HELD)  # the whole limit, on the survivor
            assert await refused_status(survivor.base_url, key) == 429
    finally:
        await dead.kill()
        await survivor.stop()
    assert freed > ttl - 3  # not before the TTL (the last heartbeat is at most one period old)
    print(
        f"\nkilled gateway never restarted: its {HELD} sessions stopped counting {freed:.1f} s after SIGKILL "
        f"(TTL {ttl:g} s)"
    )
