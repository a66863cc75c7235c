"""The pipeline bus: the in-process bus against Kafka, at 20 and 100 live sessions, in one run.

Run: `.venv/bin/python -m bench.bus` (about 3 minutes on 2 cores; `--smoke`: every part at the
smallest sizes, for the test suite, whose figures mean nothing). It starts a Kafka 4.4 broker of its
own (the tests' fixture, jars from `scripts/install-kafka.sh`) unless `--bootstrap` names one.

* Load: N sessions, each publishing a 20 ms frame (640 bytes) every 20 ms on absolute deadlines, from
  one ticker, with the production bus settings. Every frame carries its publish time.
* CPU per frame: this process's CPU time (`time.process_time`) over a window in which it only publishes
  (the worker answers nothing), less that of the same paced loop publishing to a bus that does nothing
  (the baseline, measured in the same run), per frame. On Kafka the consumer is another process (an echo
  worker, below), so the figure is the gateway's producer cost (buffer, sender task, aiokafka's
  batching); in-process it is publish and delivery. The same figure with the reply consumer running (the
  latency window) follows it: on Kafka a consumer polls every 5 ms whether or not replies come.
* Latency: an echo worker (`--echo-worker`, its own process on Kafka; a task here on the in-process
  bus) records publish → receive for every frame and answers every 10th frame of each session (5
  replies/s, as 200 ms TTS chunks) on the session's reply topic; this process records worker reply →
  receive and the whole round trip. Percentiles are over every message of the window.
* Reply topics: a gateway's reply consumer with a topic per gateway instance against one shared topic
  filtered by instance (`bench._reply_layout`).
* Turn latency: end of speech → first `response.output_audio.delta` for one session speaking in real
  time, embedded gateway against a gateway and a `media-gateway worker` over Kafka (whisper tiny.en,
  flite); medians of the turns.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import _gateway
from bench._audio import build_audio
from bench._latency import measure_latency
from bench._reply_layout import layout_figures
from media_gateway.observability.logging import configure_logging
from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.pipeline.kafka import KafkaBus
from media_gateway.pipeline.kafka_config import KafkaConfig
from media_gateway.pipeline.messages import FRAME_BYTES, INPUT_TOPIC, REPLY_TO_HEADER, audio_headers

FRAME = b"\x01\x00" * (FRAME_BYTES // 2)
REPLY = b"\x02\x00" * 3200  # 200 ms at 16 kHz
REPLY_EVERY = 10
REPLY_TOPIC = "rt.out.bench"


@dataclass(frozen=True)
class Plan:
    sessions: tuple[int, ...]
    window_s: float
    warmup_s: float
    turns: int


FULL = Plan(sessions=(20, 100), window_s=10.0, warmup_s=2.0, turns=4)
SMOKE = Plan(sessions=(2,), window_s=1.0, warmup_s=0.3, turns=1)


class NullBus:
    """The baseline: a bus that takes every message and does nothing with it."""

    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        return None


@dataclass
class Latencies:
    to_worker: list[tuple[int, float]] = field(default_factory=list)  # (publish time ns, ms)
    to_worker_ms: list[float] = field(default_factory=list)
    to_client_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)


async def paced_load(bus: Bus | NullBus, sessions: int, seconds: float) -> int:
    """Publish sessions x 50 frames/s for `seconds`; returns the frames published."""
    keys = [f"sess_bench_{n:03d}" for n in range(sessions)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while loop.time() - start < seconds:
        stamp = str(time.time_ns())
        for key in keys:
            headers = {**audio_headers(seq=str(tick), t=stamp), REPLY_TO_HEADER: REPLY_TOPIC}
            await bus.publish(INPUT_TOPIC, key, FRAME, headers)
        tick += 1
        delay = start + tick * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return tick * sessions


async def echo(bus: Bus, received: list[tuple[int, float]], replies: bool = True) -> None:
    """The echo worker's loop: note each frame's (publish time, publish → receive ms), answer every 10th."""
    subscription = await bus.subscribe(INPUT_TOPIC, group="workers")
    async for message in subscription:
        sent = int(message.headers["t"])
        received.append((sent, (time.time_ns() - sent) / 1e6))
        if replies and int(message.headers["seq"]) % REPLY_EVERY == 0:
            headers = audio_headers(
                response_id="resp_bench", seq="0", t=str(sent), t_reply=str(time.time_ns())
            )
            await bus.publish(message.headers[REPLY_TO_HEADER], message.key, REPLY, headers)


async def collect_replies(bus: Bus, latencies: Latencies, ready: asyncio.Event) -> None:
    subscription = await bus.subscribe(REPLY_TOPIC)
    ready.set()
    async for message in subscription:
        now = time.time_ns()
        latencies.to_client_ms.append((now - int(message.headers["t_reply"])) / 1e6)
        latencies.round_trip_ms.append((now - int(message.headers["t"])) / 1e6)


def kafka_config(bootstrap: str, prefix: str, client_id: str) -> KafkaConfig:
    linger = int(os.environ.get("BENCH_LINGER_MS", "1"))
    return KafkaConfig(
        bootstrap_servers=bootstrap, client_id=client_id, topic_prefix=prefix, linger_ms=linger
    )


async def run_worker(bootstrap: str, prefix: str, result_file: str, replies: bool) -> None:
    """`--echo-worker`: the Kafka side of the echo, until SIGTERM; then its latencies to `result_file`."""
    configure_logging("warning", "json", sys.stderr)  # stdout says "ready", nothing else
    bus = KafkaBus(kafka_config(bootstrap, prefix, f"bench-worker-{os.getpid()}"))
    await bus.start()
    received: list[tuple[int, float]] = []
    task = asyncio.create_task(echo(bus, received, replies))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    task.cancel()
    await bus.stop()
    await asyncio.to_thread(Path(result_file).write_text, json.dumps(received))


@dataclass
class Measured:
    cpu_us_per_frame: float
    frames: int
    latencies: Latencies


async def measure(kind: str, sessions: int, plan: Plan, bootstrap: str, *, replies: bool = True) -> Measured:
    """One window of the paced load on `kind` ("null", "inprocess", "kafka"). Without `replies` the
    worker answers nothing and this process subscribes to nothing: its CPU is the producer's alone."""
    latencies = Latencies()
    async with AsyncExitStack() as stack:
        bus: Bus | NullBus
        if kind == "null":
            bus = NullBus()
        elif kind == "inprocess":
            bus = InProcessBus()
            await bus.start()
            stack.push_async_callback(bus.stop)
            ready = asyncio.Event()
            if replies:
                stack.callback(asyncio.create_task(collect_replies(bus, latencies, ready)).cancel)
            else:
                ready.set()
            stack.callback(asyncio.create_task(echo(bus, latencies.to_worker, replies)).cancel)
            await ready.wait()
            await asyncio.sleep(0)  # let the echo subscribe
        else:
            prefix = f"bench{time.time_ns() % 10**9}."
            bus = KafkaBus(kafka_config(bootstrap, prefix, "bench-gateway"))
            await bus.start()
            stack.push_async_callback(bus.stop)
            await bus.create_topics({INPUT_TOPIC: 12, REPLY_TOPIC: 1})
            result = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".json"))  # noqa: SIM115
            worker = subprocess.Popen(  # noqa: ASYNC220 - started once, read in a thread
                [
                    sys.executable,
                    "-m",
                    "bench.bus",
                    "--echo-worker",
                    "--bootstrap",
                    bootstrap,
                    "--prefix",
                    prefix,
                    "--result",
                    result.name,
                    *([] if replies else ["--no-replies"]),
                ],
                stdout=subprocess.PIPE,
            )
            assert worker.stdout is not None
            line = await asyncio.to_thread(worker.stdout.readline)
            if line.strip() != b"ready":
                raise RuntimeError("the echo worker did not start")
            ready = asyncio.Event()
            if replies:
                stack.callback(asyncio.create_task(collect_replies(bus, latencies, ready)).cancel)
                await ready.wait()
        await paced_load(bus, sessions, plan.warmup_s)
        latencies.to_client_ms.clear()
        latencies.round_trip_ms.clear()
        window_start = time.time_ns()
        cpu = time.process_time()
        frames = await paced_load(bus, sessions, plan.window_s)
        cpu = time.process_time() - cpu
        await asyncio.sleep(0.5)  # the last replies
        if kind == "kafka":
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
            text = await asyncio.to_thread(Path(result.name).read_text)
            latencies.to_worker = [(sent, ms) for sent, ms in json.loads(text or "[]")]
        latencies.to_worker_ms = [ms for sent, ms in latencies.to_worker if sent >= window_start]
    return Measured(cpu * 1e6 / max(1, frames), frames, latencies)


def percentiles(values: Sequence[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49]:6.2f} ms  p99 {cuts[98]:6.2f} ms"


async def bus_figures(plan: Plan, bootstrap: str) -> None:
    for sessions in plan.sessions:
        baseline = await measure("null", sessions, plan, bootstrap)
        print(
            f"\n{sessions} sessions ({sessions * 50} frames/s), "
            f"baseline loop {baseline.cpu_us_per_frame:.1f} µs/frame"
        )
        rtt: dict[str, float] = {}
        for kind in ("inprocess", "kafka"):
            alone = await measure(kind, sessions, plan, bootstrap, replies=False)
            result = await measure(kind, sessions, plan, bootstrap)
            cost = alone.cpu_us_per_frame - baseline.cpu_us_per_frame
            with_replies = result.cpu_us_per_frame - baseline.cpu_us_per_frame
            lat = result.latencies
            print(
                f"  {kind:9} CPU {cost:6.1f} µs/frame over the baseline ("
                f"{alone.cpu_us_per_frame / max(baseline.cpu_us_per_frame, 1e-9):.2f}x it); "
                f"{with_replies:.1f} with the reply consumer"
            )
            print(
                f"  {kind:9} publish -> worker  {percentiles(lat.to_worker_ms)}  "
                f"({len(lat.to_worker_ms)} frames)"
            )
            print(
                f"  {kind:9} reply -> client    {percentiles(lat.to_client_ms)}  "
                f"({len(lat.to_client_ms)} replies)"
            )
            print(f"  {kind:9} round trip         {percentiles(lat.round_trip_ms)}")
            if len(lat.round_trip_ms) >= 2:
                rtt[kind] = statistics.quantiles(lat.round_trip_ms, n=100)[98]
        if len(rtt) == 2:
            print(
                f"  added round trip p99 (kafka - inprocess): "
                f"{rtt['kafka'] - rtt['inprocess']:.2f} ms (target <= 20 ms)"
            )


def turn_figures(plan: Plan, bootstrap: str) -> None:
    audio = build_audio()
    kafka_env = {
        "MEDIA_GATEWAY_BUS": "kafka",
        "MEDIA_GATEWAY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MEDIA_GATEWAY_KAFKA_TOPIC_PREFIX": f"benchturn{time.time_ns() % 10**9}.",
    }
    setups: list[tuple[str, str, dict[str, str], int]] = [
        ("inprocess", "inprocess", {}, 0),
        ("kafka", "none", kafka_env, 1),
    ]
    print("\nend of speech -> first audio delta, 1 session speaking in real time")
    for name, pipeline, env, workers in setups:
        with _gateway.gateway(pipeline, extra_env=env, workers=workers) as server:
            turns = asyncio.run(measure_latency(server, audio, 1, plan.turns))
        firsts = [(t.first_delta - t.stopped) * 1000 for t in turns if t.first_delta and t.stopped]
        median = f"{statistics.median(firsts):.0f} ms" if firsts else "n/a"
        print(f"  {name:9} median {median} over {len(firsts)} turns {[round(f) for f in firsts]}")


def broker_bootstrap(given: str | None, stack: list[object]) -> str:
    if given:
        return given
    sys.path.insert(0, str(_gateway.ROOT))
    from tests.fixtures.kafka import KafkaBroker, find_kafka_libs

    broker = KafkaBroker(find_kafka_libs())
    broker.start()
    stack.append(broker)
    return str(broker.bootstrap)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every part at the smallest sizes (test run)")
    parser.add_argument("--sessions", type=int, nargs="+", help="session counts (default: 20 100)")
    parser.add_argument("--no-turns", action="store_true", help="skip the spoken-turn latency part")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"), help="an existing broker")
    parser.add_argument("--echo-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--no-replies", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_worker:
        asyncio.run(run_worker(args.bootstrap, args.prefix, args.result, not args.no_replies))
        return
    plan = SMOKE if args.smoke else FULL
    if args.sessions:
        plan = dataclasses.replace(plan, sessions=tuple(args.sessions))
    configure_logging("warning", "json", sys.stderr)
    brokers: list[object] = []
    try:
        bootstrap = broker_bootstrap(args.bootstrap, brokers)
        print(f"bench.bus: {'smoke' if args.smoke else 'full'} run, Kafka at {bootstrap}")
        asyncio.run(bus_figures(plan, bootstrap))
        asyncio.run(layout_figures(bootstrap, max(plan.sessions), plan.window_s))
        if not args.no_turns:
            turn_figures(plan, bootstrap)
    finally:
        for broker in brokers:
            broker.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
