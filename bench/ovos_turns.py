"""Turns through OVOS under concurrency: the embedded gateway (`media-gateway serve`, in-process pipeline)
answering through a local ovos-core, driven over the realtime WebSocket.

Run: `.venv/bin/python -m bench.ovos_turns` (about two minutes). It prints, with medians and percentiles:

* **Turn latency**, one session (the baseline, measured in the same run) and N sessions at once, each speaking
  three questions in real time with server VAD (500 ms silence): end of speech → first audio, and utterance
  (its transcript at the client) → first audio, p50/p95, and the N-session figures as a ratio of the
  baseline.
* **Admission at the deadlock threshold**: ovos-core gives each skill min(32, cpus + 4) handler threads, and
  that many concurrent `get_response` dialogs on one skill deadlock it. D = that pool's size sessions start
  "ask me my name" at once and answer "bob" once they have heard the question; the gateway admits `limit`
  (one less) and queues the rest. Printed: dialogs completed, the longest question wait against a lone
  dialog's, turns queued and refused (from the gateway's /metrics).
* `--without-admission` adds the same dialogs with the limit lifted to 32, on an OVOS of their own: what
  the admission prevents (expect dialogs that never complete).

`--smoke` (for the test suite) goes through every part with 2 sessions, one turn and 2 dialogs; its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import _gateway
from bench._audio import RATE, append_json, chunked, espeak, loud_span, noise, whole_chunks
from bench._ovos import local_ovos
from media_gateway.ovos.admission import default_limit

QUESTIONS = ("what time is it", "what day is it", "how are you")
FRAME_SECONDS = 0.02
SILENCE_AFTER_MS = 700  # more than server VAD's 500 ms


@dataclass
class Turn:
    end_of_speech: float = 0.0
    transcribed: float | None = None
    first_audio: float | None = None
    done: float | None = None
    status: str = ""


@dataclass
class Client:
    ws: aiohttp.ClientWebSocketResponse
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append((time.monotonic(), json.loads(message.data)))
                self.changed.set()

    async def until(self, event_type: str, since: int, seconds: float = 60.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while True:
            for at, event in self.events[since:]:
                if event["type"] == event_type:
                    return at, event
            self.changed.clear()
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self.changed.wait()

    def audio_ms(self, response_id: str) -> float:
        size = sum(
            len(base64.b64decode(e["delta"]))
            for _, e in self.events
            if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id
        )
        return size / 2 / RATE * 1000

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))


async def connect(
    http: aiohttp.ClientSession, server: _gateway.Server, key: str
) -> tuple[Client, asyncio.Task[None]]:
    ws = await http.ws_connect(
        server.ws_url, headers={"Authorization": f"Bearer {key}"}, max_msg_size=1 << 26
    )
    client = Client(ws)
    task = asyncio.create_task(client.receive())
    await client.until("session.created", 0)
    return client, task


# --- spoken turns ---------------------------------------------------------------------------------------


async def paced(client: Client, chunks: list[str], clock: list[float]) -> None:
    for text in chunks:
        clock[0] += FRAME_SECONDS
        delay = clock[0] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.ws.send_str(text)


async def spoken_session(
    server: _gateway.Server, key: str, speech: dict[str, tuple[bytes, int]], turns: int, delay: float
) -> list[Turn]:
    await asyncio.sleep(delay)
    quiet = [append_json(c) for c in chunked(noise(200, 3))]
    results: list[Turn] = []
    async with aiohttp.ClientSession() as http:
        client, receiver = await connect(http, server, key)
        update = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        await client.send({"type": "session.update", "session": update})
        await client.until("session.updated", 0)
        clock = [time.monotonic()]
        for index in range(turns):
            pcm, last_loud_chunk = speech[QUESTIONS[index % len(QUESTIONS)]]
            await paced(client, quiet * 3, clock)
            mark = len(client.events)
            chunks = [append_json(c) for c in chunked(pcm)]
            turn = Turn()
            await paced(client, chunks[: last_loud_chunk + 1], clock)
            turn.end_of_speech = time.monotonic()
            await paced(client, chunks[last_loud_chunk + 1 :], clock)
            while not any(e["type"] == "response.done" for _, e in client.events[mark:]):
                await paced(client, quiet[:1], clock)
            for at, event in client.events[mark:]:
                kind = event["type"]
                if (
                    kind == "conversation.item.input_audio_transcription.completed"
                    and turn.transcribed is None
                ):
                    turn.transcribed = at
                elif kind == "response.output_audio.delta" and turn.first_audio is None:
                    turn.first_audio = at
                elif kind == "response.done":
                    turn.done, turn.status = at, event["response"]["status"]
                    response_id = event["response"]["id"]
            # The caller listens to the whole reply before the next question.
            if turn.first_audio is not None:
                listened = turn.first_audio + client.audio_ms(response_id) / 1000
                while time.monotonic() < listened:
                    await paced(client, quiet[:1], clock)
            results.append(turn)
        receiver.cancel()
        await client.ws.close()
    return results


def spoken_audio() -> dict[str, tuple[bytes, int]]:
    """Each question as 24 kHz speech plus silence, and the index of the chunk where the speech ends."""
    spoken: dict[str, tuple[bytes, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ovos-speech-") as tmp:
        for text in QUESTIONS:
            pcm = espeak(text, Path(tmp))
            _, end = loud_span(pcm)
            spoken[text] = (whole_chunks(pcm + noise(SILENCE_AFTER_MS, 5)), (end * 2 - 1) // 960)
    return spoken


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_figures(turns: list[Turn]) -> dict[str, list[float]]:
    answered = [t for t in turns if t.first_audio is not None]
    return {
        "end of speech → first audio": [(t.first_audio or 0) - t.end_of_speech for t in answered],
        "utterance → first audio": [
            (t.first_audio or 0) - (t.transcribed or 0) for t in answered if t.transcribed
        ],
    }


async def spoken_load(server: _gateway.Server, sessions: int, turns: int) -> list[Turn]:
    speech = spoken_audio()
    server.ensure_keys(sessions)
    batches = await asyncio.gather(
        *(spoken_session(server, server.keys[i], speech, turns, delay=i * 0.05) for i in range(sessions))
    )
    return [turn for batch in batches for turn in batch]


def print_latency(baseline: list[Turn], loaded: list[Turn], sessions: int) -> None:
    base, load = latency_figures(baseline), latency_figures(loaded)
    print(f"\nturn latency (ms), spoken questions, server VAD 500 ms; baseline 1 session, load {sessions}")
    print(f"{'measure':<30} {'1: p50':>8} {'p95':>7} {f'{sessions}: p50':>9} {'p95':>7} {'p50 ratio':>10}")
    for name in base:
        b, n = base[name], load[name]
        if not b or not n:
            print(f"{name:<30} (no answered turns)")
            continue
        print(
            f"{name:<30} {percentile(b, 0.5) * 1000:8.0f} {percentile(b, 0.95) * 1000:7.0f} "
            f"{percentile(n, 0.5) * 1000:9.0f} {percentile(n, 0.95) * 1000:7.0f} "
            f"{percentile(n, 0.5) / percentile(b, 0.5):9.2f}x"
        )
    statuses = [t.status for t in loaded]
    others = sorted(set(statuses) - {"completed"})
    print(f"turns completed: {statuses.count('completed')}/{len(statuses)} (others: {others})")


# --- dialogs at the admission limit ---------------------------------------------------------------------


@dataclass
class Dialog:
    question_wait: float = 0.0  # response.create → first audio of the question
    question: str = ""
    answer: str = ""
    seconds: float = 0.0


def user_text(text: str) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}


async def dialog(server: _gateway.Server, key: str, deadline: float) -> Dialog:
    result = Dialog()
    async with aiohttp.ClientSession() as http:
        client, receiver = await connect(http, server, key)
        try:
            began = time.monotonic()
            for text in ("ask me my name", "bob"):
                mark = len(client.events)
                await client.send(user_text(text))
                await client.send({"type": "response.create"})
                asked = time.monotonic()
                at, done = await client.until("response.done", mark, seconds=deadline - time.monotonic())
                response = done["response"]
                words = (
                    response["output"][0]["content"][0].get("transcript", "") if response["output"] else ""
                )
                outcome = f"{response['status']}: {words}" if words else response["status"]
                first = [t for t, e in client.events[mark:] if e["type"] == "response.output_audio.delta"]
                if text == "bob":
                    result.answer = outcome
                    break
                result.question = outcome
                result.question_wait = (first[0] if first else at) - asked
                if response["status"] != "completed":
                    break
                # The caller hears the question out before answering.
                await asyncio.sleep(
                    max(
                        0.0,
                        (first[0] if first else at)
                        + client.audio_ms(response["id"]) / 1000
                        - time.monotonic(),
                    )
                )
            result.seconds = time.monotonic() - began
        except TimeoutError:
            result.seconds = time.monotonic() - began
            result.answer = result.answer or "no answer (timed out)"
        finally:
            receiver.cancel()
            await client.ws.close()
    return result


async def metric_values(server: _gateway.Server) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/metrics") as response,
    ):
        text = await response.text()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


async def dialogs_at_the_limit(server: _gateway.Server, count: int, limit: int, cap: float) -> None:
    server.ensure_keys(count)
    before = await metric_values(server)
    lone = await dialog(server, server.keys[0], time.monotonic() + cap)
    deadline = time.monotonic() + cap
    results = await asyncio.gather(*(dialog(server, server.keys[i], deadline) for i in range(count)))
    after = await metric_values(server)
    completed = sum(1 for d in results if d.answer.startswith("completed") and "bob" in d.answer.lower())
    waits = sorted(d.question_wait for d in results)
    queued = after.get("gateway_ovos_admission_wait_seconds_count", 0) - before.get(
        "gateway_ovos_admission_wait_seconds_count", 0
    )
    refused = after.get("gateway_ovos_turns_refused_total", 0) - before.get(
        "gateway_ovos_turns_refused_total", 0
    )
    print(f"\n{count} concurrent get_response dialogs on one skill, admission limit {limit} (cap {cap:g} s)")
    print(
        f"dialogs completed: {completed}/{count}; "
        f"question wait p50 {statistics.median(waits) * 1000:.0f} ms, "
        f"max {waits[-1] * 1000:.0f} ms ({waits[-1] / max(lone.question_wait, 1e-3):.1f}x a lone dialog's "
        f"{lone.question_wait * 1000:.0f} ms); turns queued {queued:.0f}, refused {refused:.0f}"
    )
    for index, d in enumerate(results):
        print(f"  dialog {index}: {d.seconds:5.1f} s  question {d.question!r}  answer {d.answer!r}")


# --- main -----------------------------------------------------------------------------------------------


async def run(
    sessions: int, turns: int, dialogs: int, limit: int, cap: float, without_admission: bool
) -> None:
    with local_ovos() as ovos:
        env = {"MEDIA_GATEWAY_OVOS_BUS_URL": ovos.url, "MEDIA_GATEWAY_OVOS_MAX_TURNS": str(limit)}
        with _gateway.gateway("inprocess", keys=max(sessions, dialogs), extra_env=env) as server:
            print(
                f"gateway pid {server.pid}; OVOS ready in {ovos.start_seconds:.1f} s; admission limit {limit}"
            )
            baseline = await spoken_load(server, 1, turns)
            loaded = await spoken_load(server, sessions, turns)
            print_latency(baseline, loaded, sessions)
            await dialogs_at_the_limit(server, dialogs, limit, cap)
    if without_admission:
        with local_ovos() as ovos:
            env = {"MEDIA_GATEWAY_OVOS_BUS_URL": ovos.url, "MEDIA_GATEWAY_OVOS_MAX_TURNS": "32"}
            with _gateway.gateway("inprocess", keys=dialogs, extra_env=env) as server:
                await dialogs_at_the_limit(server, dialogs, 32, cap)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--without-admission", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="every part at the smallest sizes")
    args = parser.parse_args()
    pool = default_limit() + 1  # ovos-core's handler threads per skill on this machine
    if args.smoke:
        asyncio.run(run(2, 1, 2, 1, 60.0, False))
    else:
        asyncio.run(run(args.sessions, args.turns, pool, pool - 1, 60.0, args.without_admission))


if __name__ == "__main__":
    main()
