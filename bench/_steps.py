"""Load steps of `bench.ws_sessions` against a server process (N paced sessions from client processes, CPU
and probe round trips over steady windows), and the back-to-back floor of an echo server."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from bench import _gateway, _load
from bench._plan import Plan, Timing

SERVER_CORES = (0,)
CLIENT_CORES = (1,)
MAX_CPU = 0.90  # of one core
MAX_PROBE_P99 = 0.100  # s
MIN_SENT = 0.97  # of the schedule


@dataclass(frozen=True)
class _Mark:
    at: float
    server: float  # CPU s
    clients: float  # CPU s
    machine: float  # busy CPU s of all cores (/proc/stat)
    sent: int
    stages: dict[str, list[int]] | None


def machine_busy_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    label: str
    n: int
    connected: int
    cpu: list[float]  # server utilisation of one core, per window
    us_per_event: list[float]
    client_cpu: list[float]  # all client processes, of one core
    other_cpu: list[float]  # the rest of the machine (other users' processes), of one core
    sent_ratio: list[float]
    probe_log: list[tuple[float, float]]  # (sent, RTT s)
    lateness: list[float]  # client tick lateness s
    errors: list[str]
    stage_us: dict[str, list[float]]  # instrumented gateway: CPU µs per append event by stage, per window

    @property
    def cpu_med(self) -> float:
        return statistics.median(self.cpu)

    @property
    def us_med(self) -> float:
        return statistics.median(self.us_per_event)

    def stage(self, name: str) -> float:
        return statistics.median(self.stage_us[name])

    @property
    def probes(self) -> list[float]:
        return [rtt for _, rtt in self.probe_log]

    @property
    def probe_p50(self) -> float:
        return _load.summary(self.probes, 0.5)

    @property
    def probe_p99(self) -> float:
        return _load.summary(self.probes, 0.99)

    @property
    def realtime(self) -> bool:
        return (
            self.connected == self.n
            and self.cpu_med < MAX_CPU
            and self.probe_p99 < MAX_PROBE_P99
            and min(self.sent_ratio) >= MIN_SENT
        )

    def verdict(self) -> str:
        if self.connected < self.n:
            return f"NO ({self.n - self.connected} not connected)"
        why = []
        if self.cpu_med >= MAX_CPU:
            why.append("cpu")
        if self.probe_p99 >= MAX_PROBE_P99:
            why.append("probe")
        if min(self.sent_ratio) < MIN_SENT:
            why.append("behind")
        verdict = "yes" if not why else "NO: " + ", ".join(why)
        if statistics.median(self.client_cpu) > 0.9:
            verdict += " (client-bound?)"
        return verdict


def run_step(
    label: str,
    server: _gateway.Server,
    n: int,
    messages: Sequence[str],
    timing: Timing,
    plan: Plan,
    *,
    greeting: bool = True,
) -> Step:
    """N sessions against `server`: connect, stream, measure `timing.windows` windows after a warm-up."""
    server.ensure_keys(-(-n // plan.per_key))
    ctx = multiprocessing.get_context("spawn")
    processes = 1 if n < plan.two_clients_from else 2
    sent = [ctx.Value("q", 0, lock=False) for _ in range(processes)]
    pipes, children = [], []
    for p in range(processes):
        parent, child = ctx.Pipe()
        spec = _load.LoadSpec(
            url=server.ws_url,
            keys=server.keys,
            indices=list(range(p, n, processes)),
            per_key=plan.per_key,
            loop_frames=len(messages),
            greeting=greeting,
            probe_periods=plan.probe_periods,
        )
        process = ctx.Process(
            target=_load.client_main, args=(spec, messages, sent[p], child, CLIENT_CORES), daemon=True
        )
        process.start()
        pipes.append(parent)
        children.append(process)
    connected, errors = 0, []
    for pipe in pipes:
        message = pipe.recv()
        if message[0] != "ready":
            raise RuntimeError(f"client failed: {message}")
        connected += message[1]
        errors += message[2]
    t0 = time.monotonic() + 0.3
    for pipe in pipes:
        pipe.send(("go", t0))
    time.sleep(max(0.0, t0 + timing.warmup - time.monotonic()))

    def mark() -> _Mark:
        stages = server.stages()
        return _Mark(
            at=time.monotonic(),
            server=server.cpu(),
            clients=sum(_gateway.cpu_seconds(c.pid) for c in children if c.pid is not None),
            machine=machine_busy_seconds(),
            sent=sum(int(s.value) for s in sent),
            stages=stages,
        )

    marks = [mark()]
    for _ in range(timing.windows):
        time.sleep(timing.window)
        marks.append(mark())
    for pipe in pipes:
        pipe.send(("stop",))
    probes, lateness = [], []
    start, end = marks[0].at, marks[-1].at
    for pipe in pipes:
        message = pipe.recv()
        if message[0] != "done":
            raise RuntimeError(f"client failed: {message}")
        probes += [(t, rtt) for t, rtt in message[1] if start <= t <= end]
        lateness += [late for t, late in message[2] if start <= t <= end]
        errors += message[3]
    for process in children:
        process.join(10)
    step = Step(label, n, connected, [], [], [], [], [], probes, lateness, errors, {})
    for a, b in itertools.pairwise(marks):
        dt, events = b.at - a.at, max(1, b.sent - a.sent)
        server_s, clients_s = b.server - a.server, b.clients - a.clients
        step.cpu.append(server_s / dt)
        step.us_per_event.append(server_s / events * 1e6)
        step.client_cpu.append(clients_s / dt)
        step.other_cpu.append(max(0.0, (b.machine - a.machine - server_s - clients_s) / dt))
        step.sent_ratio.append(events / (n * dt / _load.PERIOD))
        if a.stages is not None and b.stages is not None:
            for name, (calls, timed, ns) in b.stages.items():
                calls0, timed0, ns0 = a.stages[name]
                estimate = (ns - ns0) * (calls - calls0) / max(1, timed - timed0)
                step.stage_us.setdefault(name, []).append(estimate / 1000 / events)
    time.sleep(0.5)  # let the server close the sessions before the next step
    return step


def sweep_sizes(steps: Sequence[Step], plan: Sequence[int]) -> int | None:
    """The next N: the planned sizes until one fails, then up to two bisections between the largest passing
    and the smallest failing N (to a resolution of about 10 sessions)."""
    tried = {s.n for s in steps}
    failing = [s.n for s in steps if not s.realtime and s.n > 1]
    if not failing:
        return next((n for n in plan if n not in tried), None)
    passing = [s.n for s in steps if s.realtime and s.n < min(failing)]
    low, high = max(passing, default=0), min(failing)
    refinements = len([n for n in tried if n not in plan])
    if high - low <= 10 or refinements >= 2:
        return None
    return (low + high) // 2 // 5 * 5


def sweep(plan: Sequence[int], measure: Callable[[int], Step], progress: Callable[[str], None]) -> list[Step]:
    """The capacity sweep: `measure(n)` for each N that `sweep_sizes` picks. A step that fails without being
    CPU-bound is measured once more (likely another user's burst on this shared machine); the first try
    stays in the list, labelled "(1st try)"."""
    steps: list[Step] = []
    while (n := sweep_sizes([s for s in steps if s.label == "gateway"], plan)) is not None:
        step = measure(n)
        progress(
            f"gateway N={n}: CPU {step.cpu_med:.0%}, {step.us_med:.0f} µs/event, real time {step.verdict()}"
        )
        if not step.realtime and step.cpu_med < MAX_CPU and n > 1:
            step.label = "(1st try)"
            steps.append(step)
            step = measure(n)
            progress(f"gateway N={n} again: {step.verdict()}")
        steps.append(step)
    return steps


# --- the floor: an aiohttp echo server fed back to back ----------------------------------------------------


async def _blast(url: str, messages: Sequence[str], count: int, connections: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [await http.ws_connect(url) for _ in range(connections)]

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for _ in ws:
                pass

        drains = [asyncio.create_task(drain(ws)) for ws in sockets]
        for i in range(count):
            await sockets[i % connections].send_str(messages[i % len(messages)])
            if i % 256 == 0:
                await asyncio.sleep(0)  # let the echoes drain
        await asyncio.sleep(0.3)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*drains, return_exceptions=True)


def batched_floor(server: _gateway.Server, messages: Sequence[str], runs: int, count: int = 20_000) -> float:
    """Server CPU µs per append when appends arrive back to back (no pacing) over 20 connections: the
    per-frame cost of aiohttp with every wake-up amortised over many frames. Median of `runs`."""
    samples = []
    for _ in range(runs):
        before = server.cpu()
        asyncio.run(_blast(server.ws_url, messages, count, 20))
        samples.append((server.cpu() - before) / count * 1e6)
    return statistics.median(samples)
