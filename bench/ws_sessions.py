"""Concurrent real-time WebSocket sessions: CPU per `input_audio_buffer.append`, capacity, and turn latency.

Run: `.venv/bin/python -m bench.ws_sessions` (4-5 minutes on 2 cores; `--quick` for a smoke run).

* Audio: a looped mix of espeak-ng sentences and quiet noise (RMS 30, about -61 dBFS), 24 kHz PCM, sent as
  20 ms appends (960 bytes, pre-built base64 JSON) every 20 ms on absolute deadlines, spread over 10 phases
  of the 20 ms period; server VAD on (the default `server_vad` of a direct connect). Each session starts at
  a different point of the loop.
* Servers run in their own process pinned to CPU 0 at nice -15 (other users' jobs share this machine); the
  client processes (nice -10) and this script run on CPU 1. CPU per append event = server utime+stime
  (/proc, all threads) / appends sent, over steady windows; medians of the windows.
* Floor: an aiohttp WebSocket echo server fed appends back to back (every wake-up amortised over many
  frames); the same echo server is also measured under the paced load at the split's N.
* Capacity: `python -m media_gateway serve` with `MEDIA_GATEWAY_SPEECH_PIPELINE=none` (the bus ends in
  nobody: a counting sink). N = 1, 20, 50, 100, 150, ... until one fails real time (server CPU < 90 %,
  p99 of a `conversation.item.retrieve` probe round trip < 100 ms, >= 97 % of appends sent), then two
  bisections. A step that fails without being CPU-bound is measured once more (machine noise).
* Split: the same gateway with stage timers (`bench._gwstages`: parse+base64, decode/resample, VAD, bus)
  at N = 1, 20 and the largest real-time N; transport = that run's total - the timed stages. The stages
  are also timed alone in a hot loop here (`time.process_time_ns`), for comparison.
* Latency: `MEDIA_GATEWAY_SPEECH_PIPELINE=inprocess` (whisper tiny.en STT, flite TTS), not pinned; 1 then 4
  sessions speak "what time is it" in real time with transcription on; end of speech = when the chunk
  holding the last loud 10 ms was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench import _gateway, _load
from media_gateway.codecs import InputAudioDecoder
from media_gateway.codecs.resample import PcmResampler
from media_gateway.pipeline.bus import InProcessBus
from media_gateway.pipeline.messages import INPUT_TOPIC, audio_headers
from media_gateway.realtime.client_events import parse_client_event
from media_gateway.realtime.input_audio import InputAudio, TurnDetection
from media_gateway.speech.vad import TurnDetector, load_vad_model

RATE = 24_000
CHUNK = 960  # 20 ms of 24 kHz s16le
FORMAT = {"type": "audio/pcm", "rate": RATE}
SENTENCES = (
    "what time is it",
    "please turn on the kitchen lights",
    "the weather is nice today",
    "how are you doing this morning",
    "set a timer for ten minutes",
)
GAPS_MS = (1800, 2400, 2000, 2600, 2200)  # quiet noise before each sentence
LATENCY_TEXT = "what time is it"
SERVER_CORES = (0,)
CLIENT_CORES = (1,)
SWEEP = (1, 20, 50, 100, 150, 200, 250, 300, 350, 400)
PER_KEY = 50  # admin keys may hold 100 concurrent sessions; half leaves room for the last step's closing ones
TARGET_PER_CORE = 150
MAX_CPU = 0.90  # of one core
MAX_PROBE_P99 = 0.100  # s
MIN_SENT = 0.97  # of the schedule
SATURATED = 0.97  # server CPU at which its per-event figure becomes a lower bound


# --- audio ----------------------------------------------------------------------------------------------


def espeak(text: str, workdir: Path) -> bytes:
    """`text` spoken by espeak-ng, as 24 kHz mono s16le."""
    path = workdir / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    with wave.open(str(path)) as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    resampler = PcmResampler(rate, RATE)
    return resampler.push(pcm) + resampler.flush()


def noise(ms: int, seed: int, level: float = 30.0) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(RATE * ms // 1000) * level).astype(np.int16).tobytes()


def loud_span(pcm: bytes, floor_db: float = -35.0) -> tuple[int, int]:
    """(first, last+1) sample of the span whose 10 ms RMS is within `floor_db` of the loudest 10 ms."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    step = RATE // 100
    blocks = samples[: len(samples) - len(samples) % step].reshape(-1, step)
    rms = np.sqrt((blocks**2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return int(loud[0]) * step, (int(loud[-1]) + 1) * step


def whole_chunks(pcm: bytes) -> bytes:
    return pcm[: len(pcm) - len(pcm) % CHUNK]


def chunked(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + CHUNK] for i in range(0, len(pcm) - CHUNK + 1, CHUNK)]


def append_json(chunk: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()},
        separators=(",", ":"),
    )


@dataclass
class Audio:
    loop: bytes  # the capacity loop, 24 kHz
    speech_ms: float  # loud (speech) time in the loop
    latency_speech: bytes  # LATENCY_TEXT, whole chunks
    latency_last_chunk: int  # index of the chunk holding the end of that speech

    @property
    def chunks(self) -> list[bytes]:
        return chunked(self.loop)

    @property
    def loop_ms(self) -> float:
        return len(self.loop) / 2 / RATE * 1000


def build_audio() -> Audio:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is missing: run scripts/install-system-packages.sh")
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        spoken = {text: espeak(text, Path(tmp)) for text in SENTENCES}
    parts, speech_samples = [], 0
    for seed, (text, gap) in enumerate(zip(SENTENCES, GAPS_MS, strict=True)):
        start, end = loud_span(spoken[text])
        speech_samples += end - start
        parts += [noise(gap, seed), spoken[text]]
    loop = whole_chunks(b"".join(parts))
    speech = spoken[LATENCY_TEXT]
    _, end = loud_span(speech)
    return Audio(
        loop, speech_samples / RATE * 1000, whole_chunks(speech + noise(40, 99)), (end * 2 - 1) // CHUNK
    )


# --- in-process stage costs -----------------------------------------------------------------------------


def median_cpu_us(make: Callable[[], Callable[[], int]], runs: int) -> float:
    """Median over `runs` of CPU µs per event; `make()` builds fresh state and returns a run that reports
    how many events it processed."""
    samples = []
    for _ in range(runs):
        run = make()
        start = time.process_time_ns()
        events = run()
        samples.append((time.process_time_ns() - start) / 1000 / events)
    return statistics.median(samples)


@dataclass
class Stages:
    parse_us: float  # parse_client_event + base64 decode of the append
    decode_us: float
    vad_us: float
    bus_us: float  # per append event (publish cost x published fraction)
    publish_us: float  # per publish
    published_fraction: float
    scored_fraction: float  # Silero windows actually scored
    vad_speech_fraction: float  # frames between speech_started and speech_stopped
    input_audio_us: float  # InputAudio.append_encoded end to end (decode + VAD + bus + glue), cross-check

    @property
    def engine_audio_us(self) -> float:
        return self.decode_us + self.vad_us + self.bus_us


def measure_stages(audio: Audio, runs: int, repeat: int) -> Stages:
    chunks = audio.chunks
    messages = [append_json(c) for c in chunks]
    events = len(chunks) * repeat
    model = load_vad_model()
    turn = TurnDetection.from_config({"type": "server_vad"})
    assert turn is not None
    frames: list[bytes] = []
    decoder = InputAudioDecoder(FORMAT)
    for _ in range(repeat):
        for chunk in chunks:
            frames.extend(decoder.decode(chunk))

    def parse() -> Callable[[], int]:
        def run() -> int:
            for message in messages * repeat:
                event = parse_client_event(message)
                base64.b64decode(event.data["audio"], validate=True)
            return events

        return run

    def decode() -> Callable[[], int]:
        dec = InputAudioDecoder(FORMAT)

        def run() -> int:
            for _ in range(repeat):
                for chunk in chunks:
                    dec.decode(chunk)
            return events

        return run

    detectors: list[TurnDetector] = []

    def vad() -> Callable[[], int]:
        detector = TurnDetector(
            threshold=turn.threshold,
            prefix_padding_ms=turn.prefix_padding_ms,
            silence_duration_ms=turn.silence_duration_ms,
            model=model,
        )
        detectors.append(detector)

        def run() -> int:
            for frame in frames:
                detector.process(frame)
            return events

        return run

    async def publish_loop(bus: InProcessBus, frame: bytes, n: int) -> None:
        for i in range(n):
            await bus.publish(INPUT_TOPIC, "sess_bench", frame, audio_headers(seq=str(i)))

    def publish() -> Callable[[], int]:
        bus = InProcessBus()
        asyncio.run(bus.start())
        coro_n = 5000

        def run() -> int:
            asyncio.run(publish_loop(bus, frames[0], coro_n))
            return coro_n

        return run

    class CountingBus(InProcessBus):
        published = 0

        async def publish(self, topic: str, key: str, payload: bytes, headers: Any = None) -> None:
            CountingBus.published += 1
            await super().publish(topic, key, payload, headers)

    speech_frames = 0

    async def input_audio_run(count_speech: bool) -> None:
        nonlocal speech_frames
        bus = CountingBus()
        await bus.start()
        ia = InputAudio("sess_bench", bus, input_format=FORMAT, turn_detection=turn, vad_model=model)
        for _ in range(repeat):
            for chunk in chunks:
                await ia.append_encoded(chunk, None)
                if count_speech and ia.in_speech:
                    speech_frames += 1

    def input_audio() -> Callable[[], int]:
        def run() -> int:
            asyncio.run(input_audio_run(False))
            return events

        return run

    asyncio.run(input_audio_run(True))  # also counts publishes and speech frames
    published_fraction = CountingBus.published / events
    parse_us = median_cpu_us(parse, runs)
    decode_us = median_cpu_us(decode, runs)
    vad_us = median_cpu_us(vad, runs)
    publish_us = median_cpu_us(publish, runs)
    input_audio_us = median_cpu_us(input_audio, runs)
    windows = len(frames) * 640 // 1024
    return Stages(
        parse_us=parse_us,
        decode_us=decode_us,
        vad_us=vad_us,
        bus_us=publish_us * published_fraction,
        publish_us=publish_us,
        published_fraction=published_fraction,
        scored_fraction=detectors[0].scored_windows / windows,
        vad_speech_fraction=speech_frames / events,
        input_audio_us=input_audio_us,
    )


# --- load steps against a server process ----------------------------------------------------------------


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
    *,
    greeting: bool = True,
) -> Step:
    """N sessions against `server`: connect, stream, measure `timing.windows` windows after a warm-up."""
    server.ensure_keys(-(-n // PER_KEY))
    ctx = multiprocessing.get_context("spawn")
    processes = 1 if n < 40 else 2
    sent = [ctx.Value("q", 0, lock=False) for _ in range(processes)]
    pipes, children = [], []
    for p in range(processes):
        parent, child = ctx.Pipe()
        spec = _load.LoadSpec(
            url=server.ws_url,
            keys=server.keys,
            indices=list(range(p, n, processes)),
            per_key=PER_KEY,
            loop_frames=len(messages),
            greeting=greeting,
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


@dataclass(frozen=True)
class Timing:
    warmup: float
    windows: int
    window: float


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


# --- latency with the in-process pipeline -----------------------------------------------------------------


@dataclass
class Turn:
    stopped: float | None = None
    transcribed: float | None = None
    first_delta: float | None = None


@dataclass
class _LatencySession:
    ws: aiohttp.ClientWebSocketResponse
    events: list[tuple[float, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _latency_session(url: str, key: str, audio: Audio, turns: int, delay: float) -> list[Turn]:
    await asyncio.sleep(delay)
    speech = [append_json(c) for c in chunked(audio.latency_speech)]
    quiet = [append_json(c) for c in chunked(noise(2000, 7))]
    results: list[Turn] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}, max_msg_size=64 * 1024 * 1024) as ws,
    ):
        session = _LatencySession(ws)

        async def receive() -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                kind = json.loads(message.data)["type"]
                session.events.append((time.monotonic(), kind))
                if kind in ("response.done", "session.updated"):
                    session.done.set()

        receiver = asyncio.create_task(receive())
        update = {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "realtime", **update}}))
        await asyncio.wait_for(session.done.wait(), 10)
        deadline = time.monotonic()
        quiet_index = 0

        async def send(text: str) -> None:
            nonlocal deadline
            now = time.monotonic()
            if deadline > now:
                await asyncio.sleep(deadline - now)
            await ws.send_str(text)
            deadline += _load.PERIOD

        async def send_quiet() -> None:
            nonlocal quiet_index
            await send(quiet[quiet_index % len(quiet)])
            quiet_index += 1

        for _ in range(turns):
            for _ in range(25):  # 500 ms of quiet before the speech
                await send_quiet()
            session.done.clear()
            mark = len(session.events)
            end_of_speech = 0.0
            for index, text in enumerate(speech):
                await send(text)
                if index == audio.latency_last_chunk:
                    end_of_speech = time.monotonic()
            give_up = time.monotonic() + 20
            while not session.done.is_set() and time.monotonic() < give_up:
                await send_quiet()
            for _ in range(10):  # 200 ms more quiet
                await send_quiet()
            turn = Turn()
            for t, kind in session.events[mark:]:
                if kind == "input_audio_buffer.speech_stopped" and turn.stopped is None:
                    turn.stopped = t - end_of_speech
                elif (
                    kind == "conversation.item.input_audio_transcription.completed"
                    and turn.transcribed is None
                ):
                    turn.transcribed = t - end_of_speech
                elif kind == "response.output_audio.delta" and turn.first_delta is None:
                    turn.first_delta = t - end_of_speech
            results.append(turn)
        receiver.cancel()
    return results


async def measure_latency(server: _gateway.Server, audio: Audio, sessions: int, turns: int) -> list[Turn]:
    batches = await asyncio.gather(
        *(
            _latency_session(server.ws_url, server.keys[0], audio, turns, delay=i * 0.8)
            for i in range(sessions)
        )
    )
    return [turn for batch in batches for turn in batch]


# --- report ------------------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value * 1000:.0f}"


def quantiles(values: Sequence[float | None]) -> tuple[float, float, int]:
    known = [v for v in values if v is not None]
    return _load.summary(known, 0.5), _load.summary(known, 0.99), len(values) - len(known)


@dataclass
class Results:
    audio: Audio
    stages: Stages
    floor_echo: float  # µs per event, back to back
    floor_parse: float
    sweep: list[Step]
    echo: dict[int, Step]  # paced echo at the split's N
    split: dict[int, Step]  # instrumented gateway
    latency: dict[int, list[Turn]]
    timing: Timing

    @property
    def best(self) -> Step:
        passing = [s for s in self.sweep if s.realtime and s.label == "gateway"]
        return max(passing, key=lambda s: s.n) if passing else self.sweep[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, small sweep (smoke run)")
    args = parser.parse_args(argv)
    quick = args.quick
    timing = Timing(1.0, 2, 2.0) if quick else Timing(2.0, 3, 4.0)
    short = Timing(1.0, 2, 2.0) if quick else Timing(1.5, 3, 3.0)  # echo and instrumented steps
    plan = (1, 20, 50) if quick else SWEEP
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores: the server gets one, the clients the other")
    os.sched_setaffinity(0, set(CLIENT_CORES))
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:4.0f} s] {text}", file=sys.stderr, flush=True)

    audio = build_audio()
    messages = [append_json(c) for c in audio.chunks]
    progress("isolated stage costs")
    stages = measure_stages(audio, runs=3 if quick else 7, repeat=1 if quick else 2)

    progress("echo floor (back to back)")
    with _gateway.echo_server(cores=SERVER_CORES) as echo:
        floor_echo = batched_floor(echo, messages, runs=3)
    with _gateway.echo_server(reply=False, cores=SERVER_CORES) as sink:
        floor_parse = batched_floor(sink, messages, runs=3)

    sweep: list[Step] = []
    with _gateway.gateway("none", cores=SERVER_CORES) as gw:
        while (n := sweep_sizes([s for s in sweep if s.label == "gateway"], plan)) is not None:
            step = run_step("gateway", gw, n, messages, timing)
            progress(
                f"gateway N={n}: CPU {step.cpu_med:.0%}, {step.us_med:.0f} µs/event,"
                f" real time {step.verdict()}"
            )
            if not step.realtime and step.cpu_med < MAX_CPU and n > 1:
                # Not CPU-bound: likely another user's burst on this shared machine; measure once more.
                step.label = "(1st try)"
                sweep.append(step)
                step = run_step("gateway", gw, n, messages, timing)
                progress(f"gateway N={n} again: {step.verdict()}")
            sweep.append(step)
    results = Results(audio, stages, floor_echo, floor_parse, sweep, {}, {}, {}, timing)
    sizes = sorted({1, 20, results.best.n})

    with _gateway.echo_server(cores=SERVER_CORES) as echo:
        for n in sizes:
            progress(f"paced echo N={n}")
            results.echo[n] = run_step("echo", echo, n, messages, short, greeting=False)
    with _gateway.gateway("none", cores=SERVER_CORES, instrumented=True) as gw:
        for n in sizes:
            progress(f"instrumented gateway N={n}")
            results.split[n] = run_step("instrumented", gw, n, messages, short)

    progress("latency (in-process pipeline)")
    with _gateway.gateway("inprocess", keys=1) as gw:
        asyncio.run(measure_latency(gw, audio, 1, 1))  # warm-up: first inference, caches
        results.latency[1] = asyncio.run(measure_latency(gw, audio, 1, 4 if quick else 10))
        results.latency[4] = asyncio.run(measure_latency(gw, audio, 4, 1 if quick else 3))
    progress("done")
    report(results)


TIMED = ("parse", "decode", "vad", "bus")


def report(r: Results) -> None:
    floor, stages, best = r.floor_echo, r.stages, r.best
    print(
        f"ws_sessions: server pinned to CPU {SERVER_CORES[0]} (nice {_gateway.SERVER_NICE}), clients on CPU"
        f" {CLIENT_CORES[0]} (nice {_load.CLIENT_NICE}). Each session"
        " appends 20 ms of 24 kHz PCM every 20 ms; server_vad defaults."
    )
    print(
        f"audio: {r.audio.loop_ms / 1000:.1f} s loop, espeak-ng speech"
        f" {r.audio.speech_ms / r.audio.loop_ms:.0%}"
        f" of the time (rest quiet noise); VAD in a turn {stages.vad_speech_fraction:.0%} of frames,"
        f" Silero run on"
        f" {stages.scored_fraction:.0%} of windows, {stages.published_fraction:.0%} of frames published."
    )
    print(
        f"floor (aiohttp echo server, appends back to back over 20 connections, median of 3 x 20k):"
        f" {floor:.1f} us per event; receive + json.loads only: {r.floor_parse:.1f} us."
        f" xfloor = ratio to the echo."
    )
    print()
    print(
        f"1. Load steps, medians of {r.timing.windows} x {r.timing.window:g} s windows (echo:"
        " 3 x 3 s); CPU = utime+stime (/proc) in % of one core"
    )
    print(
        f"{'server':>11} {'N':>4} {'CPU%':>6} {'us/event':>9} {'xfloor':>7} {'probe p50/p99':>14}"
        f" {'client%':>8} {'other%':>7} {'sent':>6}  real time"
    )
    rows = [*r.sweep, *(s for n, s in r.echo.items() if n > 1)]
    for step in sorted(rows, key=lambda s: (s.label == "echo", s.n, s.label != "(1st try)")):
        bound = ">" if step.cpu_med >= SATURATED else " "  # behind: appends queued, CPU / sent undercounts
        print(
            f"{step.label:>11} {step.n:4d} {step.cpu_med * 100:6.1f} {bound}{step.us_med:8.1f}"
            f" {bound}{step.us_med / floor:6.1f}"
            f" {ms(step.probe_p50) + '/' + ms(step.probe_p99) + ' ms':>14}"
            f" {statistics.median(step.client_cpu) * 100:8.1f} {statistics.median(step.other_cpu) * 100:7.1f}"
            f" {min(step.sent_ratio):6.3f}  {step.verdict()}"
        )
    print(
        f"   real time = server CPU < {MAX_CPU:.0%}, probe p99 < {MAX_PROBE_P99 * 1000:.0f} ms and"
        f" >= {MIN_SENT:.0%}"
        " of scheduled appends sent in every window. probe: each session sends conversation.item.retrieve"
        " for an unknown id every 2 s, timed to its error. sent = worst window."
        " other% = CPU used by the rest of"
        " the machine (other users' jobs share these 2 cores). echo = the echo server at the same paced load."
        " '>': saturated (CPU >= 97 %), appends queue up, so CPU / appends sent is a lower bound."
    )
    print()
    cols = [r.split[n] for n in sorted(r.split)]
    print(
        "2. CPU per append event by stage, us (xfloor). In situ = gateway with stage timers (bench._gwstages,"
        " same load);"
    )
    print("   isolated = the stage alone in a hot loop here; transport = in-situ total - the timed stages.")
    print(f"{'':36}{'isolated':>9}" + "".join(f"{f'N={s.n}':>15}" for s in cols))

    def row(name: str, isolated: float | None, values: Sequence[float | None]) -> None:
        iso = f"{isolated:9.1f}" if isolated is not None else f"{'':9}"
        cells = "".join(f"{v:8.1f} {v / floor:5.1f}x" if v is not None else f"{'-':>15}" for v in values)
        print(f"{name:36}{iso}{cells}")

    def residual(step: Step) -> float:
        return step.us_med - sum(step.stage(k) for k in TIMED)

    row("transport: aiohttp, asyncio, engine", None, [residual(s) for s in cols])
    row("transport: JSON+validation+base64", stages.parse_us, [s.stage("parse") for s in cols])
    row("decode/resample 24k->16k (PyAV)", stages.decode_us, [s.stage("decode") for s in cols])
    row("VAD (WebRTC gate + Silero ONNX)", stages.vad_us, [s.stage("vad") for s in cols])
    row("bus publish (counting sink)", stages.bus_us, [s.stage("bus") for s in cols])
    row("= total, instrumented gateway", stages.engine_audio_us + stages.parse_us, [s.us_med for s in cols])
    clean = {s.n: s.us_med for s in r.sweep if s.label == "gateway"}
    row("total, clean gateway (table 1)", None, [clean.get(s.n) for s in cols])
    row("aiohttp echo at the same paced load", floor, [r.echo[s.n].us_med for s in cols])
    print(
        f"   isolated: median of 7 runs over the loop; its echo = the back-to-back floor. bus ="
        f" {stages.publish_us:.2f} us per publish x {stages.published_fraction:.0%} of frames."
        f" InputAudio.append_encoded end to end (isolated): {stages.input_audio_us:.1f} us."
    )
    print()
    print(
        "3. Latency with the in-process pipeline (whisper tiny.en, flite),"
        " end of speech -> event, ms p50/p99:"
    )
    print(
        f"{'sessions':>8} {'turns':>6} {'speech_stopped':>16} {'transcription':>16} {'1st audio delta':>16}"
    )
    for n, turns in r.latency.items():
        cells = []
        for attr in ("stopped", "transcribed", "first_delta"):
            p50, p99, missing = quantiles([getattr(t, attr) for t in turns])
            cells.append(f"{ms(p50)}/{ms(p99)}" + (f" ({missing} lost)" if missing else ""))
        print(f"{n:8d} {len(turns):6d} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")
    print(
        "   gateway not pinned; end of speech = send time of the chunk holding the last loud 10 ms;"
        " speech_stopped"
        " includes the 500 ms silence_duration; with 10-12 turns p99 is the worst turn."
    )
    print()
    per_event = best.us_med
    per_core = MAX_CPU / (per_event * 1e-6 / _load.PERIOD)
    need = MAX_CPU * _load.PERIOD / TARGET_PER_CORE * 1e6
    situ = cols[-1]
    parts = {
        "transport (aiohttp/asyncio/engine)": residual(situ),
        "VAD": situ.stage("vad"),
        "decode/resample": situ.stage("decode"),
        "JSON+validation+base64": situ.stage("parse"),
        "bus": situ.stage("bus"),
    }
    ranked = ", ".join(
        f"{k} {v:.0f} us ({v / situ.us_med:.0%})" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
    )
    failing = [s for s in r.sweep if s.label == "gateway" and not s.realtime and s.n > best.n]
    fail_note = f"N={min(s.n for s in failing)} fails" if failing else "no tested N failed"
    inflation = (situ.stage("decode") + situ.stage("vad")) / (stages.decode_us + stages.vad_us)
    print(
        f"Summary: with server VAD on, one core holds real time up to N={best.n} sessions ({fail_note};"
        f" CPU {best.cpu_med:.0%} at N={best.n}). At {per_event:.0f} us per append"
        f" ({per_event / floor:.0f}x the {floor:.1f} us echo floor) a core at {MAX_CPU:.0%} carries"
        f" ~{per_core:.0f} sessions = {per_core / TARGET_PER_CORE:.0%} of the {TARGET_PER_CORE}/core target,"
        f" which needs <= {need:.0f} us per event ({per_event / need:.1f}x less)."
        f" In situ at N={situ.n}: {ranked}. Two things dominate: the VAD (Silero runs on"
        f" {stages.scored_fraction:.0%} of windows) and the per-event overhead of paced real-time traffic:"
        f" even a bare aiohttp echo costs {r.echo[situ.n].us_med:.0f} us per event at this load vs"
        f" {floor:.0f} back to back, and decode+VAD cost {inflation:.1f}x their isolated hot-loop time"
        " (caches cold between wake-ups)."
    )


if __name__ == "__main__":
    main()
