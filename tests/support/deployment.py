"""Deployments of real `media-gateway` processes for the bus tests: a database, a key, the settings of
the Kafka bus, and readings of a process's /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.speech.audio import padded, spoken
from tests.support.processes import GatewayProcess, create_key, gateway_env, run_command, worker_process
from tests.support.realtime import RealtimeClient, pcm24k

MANUAL_TURNS = {
    "type": "realtime",
    "audio": {"input": {"turn_detection": None, "transcription": {"model": "gpt-4o-mini-transcribe"}}},
}


def kafka_settings(bootstrap: str, prefix: str) -> dict[str, str]:
    """A gateway on the Kafka bus with no pipeline of its own (workers answer)."""
    return {
        "bus": "kafka",
        "speech_pipeline": "none",
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic_prefix": prefix,
    }


async def deploy(
    tmp: Path, name: str, database_url: str | None = None, **settings: str
) -> tuple[dict[str, str], str]:
    """The environment of the deployment's processes (database migrated) and an API key for it."""
    url = database_url or f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
    env = gateway_env(url, **settings)
    code, _, err = await run_command(["migrate"], env, tmp)
    assert code == 0, err
    key, _ = await create_key(env, tmp, name)
    return env, key


@dataclass
class KafkaDeployment:
    gateway: GatewayProcess
    workers: list[GatewayProcess]
    key: str


@contextlib.asynccontextmanager
async def kafka_deployment(
    tmp: Path, name: str, bootstrap: str, prefix: str, *, workers: int = 1
) -> AsyncIterator[KafkaDeployment]:
    """A gateway (no pipeline of its own) and `workers` workers on the Kafka bus, ready, with an API key;
    every process is stopped on exit, also one that failed to start."""
    env, key = await deploy(tmp, name, **kafka_settings(bootstrap, prefix))
    started = [worker_process(env, tmp) for _ in range(workers)]
    gateway = GatewayProcess(env, tmp, wait_path="/ready")
    try:
        await asyncio.gather(*(worker.start(120) for worker in started))
        await gateway.start()
        yield KafkaDeployment(gateway, started, key)
    finally:
        await gateway.stop()
        for worker in started:
            await worker.stop()


async def metrics(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a process's /metrics, by (name, sorted labels)."""
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as response:
        text = await response.text()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def metric(base_url: str, name: str, **labels: str) -> float:
    return (await metrics(base_url)).get((name, tuple(sorted(labels.items()))), 0.0)


async def ready_status(base_url: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base_url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def say(client: RealtimeClient, sentence: str, *, realtime: bool = False) -> None:
    """Append `sentence` spoken (24 kHz PCM, 100 ms chunks), commit it and ask for a response."""
    audio = pcm24k(padded(spoken(sentence)))
    await client.append_audio(audio, 4800, realtime=realtime, chunk_ms=100)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.send({"type": "response.create"})


async def answered(client: RealtimeClient, timeout: float = 60) -> dict[str, Any]:  # noqa: ASYNC109
    """The next response.done (its `response`)."""
    done = await client.wait_for("response.done", timeout=timeout)
    return dict(done["response"])
