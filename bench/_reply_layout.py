"""`bench.bus`, reply topics: what one gateway's reply consumer costs with a reply topic per gateway
instance, against one topic shared by every gateway and filtered by instance.

Two gateways (A and B) each have `sessions` sessions getting 5 replies/s (200 ms chunks, 6400 bytes).
A reader process stands for gateway A's consumer: it reads A's topic, or the shared topic (and drops B's
replies by their instance header). Its CPU time (`time.process_time`) per reply of its own is the figure.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from media_gateway.observability.logging import configure_logging
from media_gateway.pipeline.kafka import KafkaBus
from media_gateway.pipeline.kafka_config import KafkaConfig
from media_gateway.pipeline.messages import audio_headers

REPLY = b"\x02\x00" * 3200
RATE = 5  # replies per second per session


async def read(bootstrap: str, prefix: str, topic: str, instance: str, seconds: float) -> None:
    """The reader process: consume `topic` for `seconds`; print its CPU time and counts as JSON."""
    configure_logging("warning", "json", sys.stderr)
    bus = KafkaBus(
        KafkaConfig(bootstrap_servers=bootstrap, client_id=f"reader-{instance}", topic_prefix=prefix)
    )
    await bus.start()
    subscription = await bus.subscribe(topic)
    counts = {"own": 0, "other": 0}

    async def consume() -> None:
        async for message in subscription:
            counts["own" if message.headers.get("instance") == instance else "other"] += 1

    print("ready", flush=True)
    cpu = time.process_time()
    task = asyncio.create_task(consume())
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu
    task.cancel()
    await bus.stop()
    print(json.dumps({"cpu": cpu, **counts}), flush=True)


async def one_layout(bootstrap: str, shared: bool, sessions: int, seconds: float) -> dict[str, float]:
    prefix = f"layout{time.time_ns() % 10**9}."
    topics = {"A": "rt.out.shared", "B": "rt.out.shared"} if shared else {"A": "rt.out.A", "B": "rt.out.B"}
    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, client_id="layout-worker", topic_prefix=prefix))
    await bus.start()
    await bus.create_topics({topic: 1 for topic in topics.values()})
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._reply_layout",
        "--reader",
        bootstrap,
        prefix,
        topics["A"],
        "A",
        str(seconds),
        stdout=subprocess.PIPE,
    )
    assert reader.stdout is not None
    line = await reader.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError("the reply reader did not start")
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while loop.time() - start < seconds:
        for instance, topic in topics.items():
            for n in range(sessions):
                headers = {**audio_headers(response_id="resp", seq=str(tick)), "instance": instance}
                await bus.publish(topic, f"sess_{instance}_{n}", REPLY, headers)
        tick += 1
        delay = start + tick / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    result = json.loads((await reader.stdout.readline()) or b"{}")
    await reader.wait()
    await bus.stop()
    return {"cpu": float(result["cpu"]), "own": float(result["own"]), "other": float(result["other"])}


async def layout_figures(bootstrap: str, sessions: int, seconds: float) -> None:
    print(f"\nreply topics, 2 gateways x {sessions} sessions x {RATE} replies/s, gateway A's consumer:")
    per_own: dict[str, float] = {}
    for name, shared in (("per instance", False), ("shared", True)):
        result = await one_layout(bootstrap, shared, sessions, seconds)
        per_own[name] = result["cpu"] * 1e6 / max(1.0, result["own"])
        print(
            f"  {name:12} {per_own[name]:7.1f} µs CPU per own reply "
            f"({result['own']:.0f} own, {result['other']:.0f} of the other gateway read and dropped)"
        )
    ratio = per_own["shared"] / max(per_own["per instance"], 1e-9)
    print(f"  shared / per instance: {ratio:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reader"]:
        _, _, bootstrap, prefix, topic, instance, seconds = sys.argv
        asyncio.run(read(bootstrap, prefix, topic, instance, float(seconds)))
