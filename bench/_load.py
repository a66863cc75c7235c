"""Load-generating client process for `bench.ws_sessions`: many raw aiohttp WebSocket sessions, each appending
one pre-built 20 ms `input_audio_buffer.append` every 20 ms on absolute deadlines, plus an event-loop probe.

Sessions are spread over `SLOTS` phases of the 20 ms period (session i sends in slot i % SLOTS), so the
server sees a steady stream rather than one burst per period. Every `LoadSpec.probe_periods` periods
(`PROBE_PERIODS` unless set) each session sends `conversation.item.retrieve` for an unknown item with an
`event_id`; the round trip to the `error` naming that id (or its echo) measures how far behind the server's
event loop is.

Protocol with the parent over a Pipe: child sends ("ready", connected, failed); parent sends ("go", t0) with
t0 on CLOCK_MONOTONIC (shared by all processes); parent sends ("stop",); child answers
("done", probes, lateness, errors) where probes are (t_sent, rtt_s) and lateness is (t, s) per slot tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

import aiohttp

PERIOD = 0.020
SLOTS = 10
SLOT = PERIOD / SLOTS
PROBE_PERIODS = 100  # every 2 s
CONNECT_CONCURRENCY = 8
CLIENT_NICE = -10


@dataclass
class _Session:
    index: int
    offset: int
    ws: aiohttp.ClientWebSocketResponse
    pending: dict[str, float] = field(default_factory=dict)
    probes: list[tuple[float, float]] = field(default_factory=list)
    probe_seq: int = 0


@dataclass(frozen=True)
class LoadSpec:
    url: str
    keys: Sequence[str]
    indices: Sequence[int]  # global session numbers (pick key, slot and loop offset)
    per_key: int
    loop_frames: int
    greeting: bool = True  # wait for session.created after connecting (not from the echo server)
    probe_periods: int = PROBE_PERIODS


def _probe(session: _Session) -> tuple[str, str]:
    session.probe_seq += 1
    event_id = f"probe-{session.index}-{session.probe_seq}"
    text = json.dumps(
        {"type": "conversation.item.retrieve", "item_id": "item_bench_missing", "event_id": event_id}
    )
    return event_id, text


async def _receive(session: _Session, errors: list[str]) -> None:
    async for message in session.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = message.data
        if "probe-" not in data:
            continue
        now = time.monotonic()
        event = json.loads(data)
        event_id = (event.get("error") or {}).get("event_id") or event.get("event_id")
        sent = session.pending.pop(event_id, None)
        if sent is not None:
            session.probes.append((sent, now - sent))
    if session.ws.close_code not in (None, 1000):
        errors.append(f"session {session.index} closed with {session.ws.close_code}")


async def _connect(
    http: aiohttp.ClientSession, spec: LoadSpec, index: int, gate: asyncio.Semaphore
) -> aiohttp.ClientWebSocketResponse:
    key = spec.keys[(index // spec.per_key) % len(spec.keys)]
    async with gate:
        ws = await http.ws_connect(
            spec.url, headers={"Authorization": f"Bearer {key}"}, max_msg_size=64 * 1024 * 1024, autoping=True
        )
        if not spec.greeting:
            return ws
        first = await ws.receive(timeout=30)
        if first.type != aiohttp.WSMsgType.TEXT or '"session.created"' not in first.data:
            raise ConnectionError(f"session {index}: expected session.created, got {str(first.data)[:200]}")
        return ws


async def _run(spec: LoadSpec, messages: Sequence[str], sent: Synchronized[int], conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    results = await asyncio.gather(
        *(_connect(http, spec, i, gate) for i in spec.indices), return_exceptions=True
    )
    sessions: list[_Session] = []
    for index, result in zip(spec.indices, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"session {index}: {result!r}"[:300])
        else:
            sessions.append(_Session(index, (index * 173) % spec.loop_frames, result))
    conn.send(("ready", len(sessions), errors[:3]))
    receivers = [asyncio.create_task(_receive(s, errors)) for s in sessions]
    groups: list[list[_Session]] = [[] for _ in range(SLOTS)]
    for session in sessions:
        groups[session.index % SLOTS].append(session)

    command = await loop.run_in_executor(None, conn.recv)
    t0 = float(command[1])
    stop = asyncio.Event()

    async def wait_stop() -> None:
        await loop.run_in_executor(None, conn.recv)
        stop.set()

    stopper = asyncio.create_task(wait_stop())
    lateness: list[tuple[float, float]] = []
    frames = len(messages)
    tick = 0
    while not stop.is_set():
        deadline = t0 + tick * SLOT
        now = time.monotonic()
        if deadline > now:
            await asyncio.sleep(deadline - now)
            now = time.monotonic()
        lateness.append((deadline, now - deadline))
        period, slot = divmod(tick, SLOTS)
        group = groups[slot]
        for session in group:
            if session.ws.closed:
                continue
            if period % spec.probe_periods == session.index % spec.probe_periods:
                event_id, text = _probe(session)
                session.pending[event_id] = time.monotonic()
                await session.ws.send_str(text)
            with contextlib.suppress(ConnectionError):
                await session.ws.send_str(messages[(period + session.offset) % frames])
        sent.value += len(group)
        tick += 1
    stopped_at = time.monotonic()
    await stopper
    await asyncio.sleep(0.3)  # let answers to the last probes arrive
    probes: list[tuple[float, float]] = []
    for session in sessions:
        probes.extend(session.probes)
        # An unanswered probe is at least this late.
        probes.extend((t, stopped_at - t) for t in session.pending.values() if stopped_at - t > 0.1)
    await asyncio.gather(*(s.ws.close() for s in sessions), return_exceptions=True)
    for task in receivers:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    await http.close()
    conn.send(("done", probes, lateness, errors[:5]))


def client_main(
    spec: LoadSpec, messages: Sequence[str], sent: Synchronized[int], conn: Connection, cores: Sequence[int]
) -> None:
    """Entry point of one client process (multiprocessing, spawn)."""
    if cores:
        os.sched_setaffinity(0, set(cores))
    with contextlib.suppress(PermissionError):
        os.nice(CLIENT_NICE)  # keep the schedule while other users' jobs share the core
    try:
        asyncio.run(_run(spec, messages, sent, conn))
    except BaseException as exc:
        conn.send(("failed", repr(exc)[:500]))
        raise


def summary(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
