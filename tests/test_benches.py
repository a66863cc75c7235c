"""The benches under bench/ run here in their smoke mode, as a user runs them (from the repository root, with
this environment), so that a bench that crashes anywhere, or whose report loses a part, fails the suite.
Their figures are not checked: a smoke run's windows are too short to mean anything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from bench._steps import MAX_CPU, Step, sweep

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 240  # s; the three smoke runs take ~1 minute together on 2 cores
TAIL = 60  # lines of output shown when a run fails


def run_bench(*args: str) -> str:
    """stdout and stderr of `python *args`, after asserting it exited 0."""
    # A session of its own, so that on a timeout the servers the bench started are ended with it.
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"{' '.join(args)} ran over {TIMEOUT} s; last lines:\n{tail(output)}") from None
    assert process.returncode == 0, (
        f"{' '.join(args)} exited {process.returncode}; last lines:\n{tail(output)}"
    )
    return output


def tail(output: str) -> str:
    return "\n".join(output.splitlines()[-TAIL:])


def assert_lines(output: str, patterns: list[str]) -> None:
    """Each regular expression matches a line of `output` (from its start)."""
    lines = output.splitlines()
    missing = [p for p in patterns if not any(re.match(p, line) for line in lines)]
    assert not missing, f"report lines missing: {missing}; last lines:\n{tail(output)}"


NUMBER = r"-?\d+(\.\d+)?"


def test_codecs_smoke() -> None:
    output = run_bench("-m", "bench.codecs", "--smoke")
    paths = [
        "in  pcm 24 kHz -> 16 kHz frames",
        "in  pcmu 8 kHz -> 16 kHz frames",
        "in  pcma 8 kHz -> 16 kHz frames",
        "in  48 kHz stereo AudioFrame -> 16 kHz",
        "out 16 kHz -> pcm 24 kHz (+b64)",
        "out 16 kHz -> pcmu 8 kHz (+b64)",
    ]
    assert_lines(
        output,
        [
            r"av \S+; CPU µs per 20 ms event, median of 1 runs x 20 events$",
            r"path +codec µs +baseline µs +ratio$",
            *(re.escape(p) + rf" +{NUMBER} +{NUMBER} +{NUMBER}$" for p in paths),
            r"baseline: base64 decode",
        ],
    )


def test_ws_sessions_smoke() -> None:
    output = run_bench("-m", "bench.ws_sessions", "--smoke")
    assert_lines(
        output,
        [
            r"ws_sessions: server pinned to CPU 0",
            r"audio: .* s loop, espeak-ng speech",
            r"floor \(aiohttp echo server, .*median of 1 x 5k\): .* us per event",
            r"1\. Load steps, medians of 1 x 0\.6 s windows",
            r" +server +N +CPU% +us/event +xfloor +probe p50/p99",
            rf" +gateway +2 +{NUMBER} .* ms ",  # the sweep's step (two client processes, a key each)
            rf" +echo +2 +{NUMBER} .* ms ",  # the paced echo server
            r"2\. CPU per append event by stage",
            r" +isolated +N=2$",
            rf"transport: aiohttp, asyncio, engine +{NUMBER} ",
            rf"VAD \(WebRTC gate \+ Silero ONNX\) +{NUMBER} +{NUMBER} ",
            rf"= total, instrumented gateway +{NUMBER} +{NUMBER} ",
            rf"aiohttp echo at the same paced load +{NUMBER} +{NUMBER} ",
            r"3\. Latency with the in-process pipeline",
            r"sessions +turns +speech_stopped +transcription +1st audio delta$",
            # Two sessions, a turn each, every event seen ("(n lost)" follows a cell when one is not).
            r" +2 +2 +\d+/\d+ +\d+/\d+ +\d+/\d+$",
            r"Summary: with server VAD on, one core holds real time up to N=2 sessions",
        ],
    )


def test_webrtc_media_smoke() -> None:
    output = run_bench(str(Path("bench") / "webrtc_media.py"), "--smoke")
    # Gateway rows carry both latency probes (inbound and outbound); the bare peer has no outbound probe.
    gateway_row = (
        rf"gateway +N= +{{n}}  CPU {NUMBER} .* in p50/p99 +{NUMBER}/ *{NUMBER} ms  out p50/p99 +{NUMBER}/"
    )
    assert_lines(
        output,
        [
            r"memory per idle call \(gateway RSS delta / 2 connected calls\): .* MiB",
            rf"bare aiortc +N= +1  CPU {NUMBER} .* in p50/p99 +{NUMBER}/",
            rf"bare aiortc +N= +2  CPU {NUMBER} ",
            gateway_row.format(n=1),
            gateway_row.format(n=2),
            r"largest N that held real time \(of those tried\): ",
            r"ratios gateway / bare \(CPU per session-second\):",
            r"  N=  2: CPU x",
            r"A/B at N=2 with aiortc's pure-Python audio level:",
            r"SDP answer time, 2 concurrent offers x1, p50/p99:",
            rf"  aiortc offer -> answer SDP +{NUMBER} / +{NUMBER} ms",
            r"where the CPU goes: gateway event-loop thread, N=2, 1 s",
            r" +ncalls +tottime",
            r"POSTs retried after a refusal: \d+",
            r"send path, per 20 ms frame \(this process\):",
            rf"  RTP packet serialize +{NUMBER} µs/frame",
        ],
    )


def test_sip_calls_smoke() -> None:
    output = run_bench(str(Path("bench") / "sip_calls.py"), "--smoke")
    # A SIP row: CPU, packets back per call, lost/late, inbound delivery, the load generator's own CPU.
    sip_row = (
        rf"{{who}} +N= +{{n}}  CPU {NUMBER} s/call-s \(core +{NUMBER} %\)  out +{NUMBER}/s per call "
        rf"\(min +{NUMBER}\)  lost \d+ late \d+ .* in +{NUMBER} %  load gen +{NUMBER} % "
    )
    assert_lines(
        output,
        [
            r"host: \d+ cores; gateway child pinned to core 0, load generator \(this process\) to core 1",
            rf"child with no call: CPU {NUMBER} % of its core",
            *(sip_row.format(who=who, n=n) for n in (1, 2) for who in ("bare RTP", "gateway ")),
            r"largest N that held real time \(SIP, PCMU\): ",
            r"INVITEs made again: \d+",
            r"ratios gateway / bare RTP \(CPU per call-second\):",
            rf"  N=  2: CPU x{NUMBER}; ≈ \S+ gateway calls per core vs \S+ bare; reply audio in \d+ % ",
            rf"bare aiortc +N= +2  CPU {NUMBER} ",
            rf"gateway +N= +2  CPU {NUMBER} ",
            r"largest N that held real time \(WebRTC, of those tried\): ",
            r"  SIP PCMU calls held in real time: ",
            r"  WebRTC calls held in real time: ",
            rf"  N=  2: CPU per call-second SIP {NUMBER} s, WebRTC {NUMBER} s",
        ],
    )


# --- the capacity sweep's choice of N, without a server -------------------------------------------------


def fake_step(n: int, *, cpu: float, probe_s: float) -> Step:
    """A gateway step at N=n: all connected, every append sent, one window of `cpu`, one probe."""
    return Step("gateway", n, n, [cpu], [100.0], [0.1], [0.0], [1.0], [(0.0, probe_s)], [], [], {})


def test_sweep_retries_a_failure_that_is_not_cpu_bound_then_bisects() -> None:
    def measure(n: int) -> Step:
        measured.append(n)
        # Up to 60 sessions hold; beyond, 100 is CPU-bound and 75 misses the probe bound at 75 % CPU.
        return fake_step(n, cpu=n / 100, probe_s=0.01 if n <= 60 else 0.5)

    measured: list[int] = []
    progress: list[str] = []
    steps = sweep((1, 20, 50, 100, 150), measure, progress.append)

    assert measured == [1, 20, 50, 100, 75, 75, 60]
    assert [(s.label, s.n) for s in steps] == [
        ("gateway", 1),
        ("gateway", 20),
        ("gateway", 50),
        ("gateway", 100),
        ("(1st try)", 75),
        ("gateway", 75),
        ("gateway", 60),
    ]
    assert steps[3].cpu_med >= MAX_CPU  # so 100 was not measured again
    assert len(progress) == len(measured)


def test_sweep_runs_the_whole_plan_while_every_step_holds() -> None:
    steps = sweep((1, 2, 3), lambda n: fake_step(n, cpu=0.1, probe_s=0.01), lambda _text: None)
    assert [(s.label, s.n) for s in steps] == [("gateway", 1), ("gateway", 2), ("gateway", 3)]


def test_bus_smoke() -> None:
    output = run_bench("-m", "bench.bus", "--smoke")
    assert_lines(
        output,
        [
            r"bench\.bus: smoke run, Kafka at 127\.0\.0\.1:\d+",
            rf"2 sessions \(100 frames/s\), baseline loop {NUMBER} µs/frame",
            rf" +inprocess CPU +{NUMBER} µs/frame over the baseline",
            r" +inprocess publish -> worker +p50 .* ms +p99 .* ms",
            rf" +kafka +CPU +{NUMBER} µs/frame over the baseline",
            r" +kafka +publish -> worker +p50 .* ms +p99 .* ms",
            r" +kafka +reply -> client +p50 .* ms +p99 .* ms",
            r" +kafka +round trip +p50 .* ms +p99 .* ms",
            rf" +added round trip p99 \(kafka - inprocess\): {NUMBER} ms",
            r"reply topics, 2 gateways x 2 sessions x 5 replies/s",
            rf" +per instance +{NUMBER} µs CPU per own reply",
            rf" +shared +{NUMBER} µs CPU per own reply",
            rf" +shared / per instance: {NUMBER}x",
            r"end of speech -> first audio delta",
            r" +inprocess +median \d+ ms over 1 turns",
            r" +kafka +median \d+ ms over 1 turns",
        ],
    )


def test_ovos_turns_smoke() -> None:
    output = run_bench("-m", "bench.ovos_turns", "--smoke")
    assert_lines(
        output,
        [
            r"gateway pid \d+; OVOS ready in .* s; admission limit 1$",
            r"turn latency \(ms\), spoken questions, server VAD 500 ms; baseline 1 session, load 2$",
            rf"end of speech → first audio +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}x$",
            rf"utterance → first audio +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}x$",
            r"turns completed: 2/2",
            r"2 concurrent get_response dialogs on one skill, admission limit 1",
            # Two dialogs through one slot: the second waits for the first, both complete, none refused.
            r"dialogs completed: 2/2; .* turns queued [1-9]\d*, refused 0$",
        ],
    )
