"""Concurrent real-time WebSocket sessions: CPU per `input_audio_buffer.append`, capacity, and turn latency.

Run: `.venv/bin/python -m bench.ws_sessions` (4-5 minutes on 2 cores; `--quick`: about 2 minutes, a small
sweep with short windows; `--smoke`: every part below at the smallest sizes, for the test suite, whose
figures mean nothing).

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
import os
import sys
import time
from collections.abc import Sequence

from bench import _gateway
from bench._audio import append_json, build_audio
from bench._latency import measure_latency
from bench._plan import FULL, QUICK, SMOKE
from bench._steps import CLIENT_CORES, SERVER_CORES, batched_floor, run_step, sweep
from bench._wsreport import Results, report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short windows, small sweep (~2.3 min)")
    size.add_argument("--smoke", action="store_true", help="every code path at the smallest sizes (test run)")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores: the server gets one, the clients the other")
    os.sched_setaffinity(0, set(CLIENT_CORES))
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:4.0f} s] {text}", file=sys.stderr, flush=True)

    # Imported here: the client processes (multiprocessing "spawn") import this module, and the VAD's imports
    # (onnxruntime) added ~1 s to the start of each.
    from bench._isolated import measure_stages

    audio = build_audio()
    messages = [append_json(c) for c in audio.chunks]
    progress("isolated stage costs")
    stages = measure_stages(audio, runs=plan.stage_runs, repeat=plan.stage_repeat)

    progress("echo floor (back to back)")
    with _gateway.echo_server(cores=SERVER_CORES) as echo:
        floor_echo = batched_floor(echo, messages, runs=plan.floor_runs, count=plan.floor_count)
    with _gateway.echo_server(reply=False, cores=SERVER_CORES) as sink:
        floor_parse = batched_floor(sink, messages, runs=plan.floor_runs, count=plan.floor_count)

    with _gateway.gateway("none", cores=SERVER_CORES) as gw:
        steps = sweep(plan.sweep, lambda n: run_step("gateway", gw, n, messages, plan.timing, plan), progress)
    results = Results(audio, stages, floor_echo, floor_parse, steps, {}, {}, {}, plan)
    sizes = sorted({*plan.split, results.best.n})

    with _gateway.echo_server(cores=SERVER_CORES) as echo:
        for n in sizes:
            progress(f"paced echo N={n}")
            results.echo[n] = run_step("echo", echo, n, messages, plan.short, plan, greeting=False)
    with _gateway.gateway("none", cores=SERVER_CORES, instrumented=True) as gw:
        for n in sizes:
            progress(f"instrumented gateway N={n}")
            results.split[n] = run_step("instrumented", gw, n, messages, plan.short, plan)

    progress("latency (in-process pipeline)")
    with _gateway.gateway("inprocess", keys=1) as gw:
        asyncio.run(measure_latency(gw, audio, 1, plan.latency_warmup_turns))  # warm-up: first inference
        for sessions, turns in plan.latency:
            results.latency[sessions] = asyncio.run(measure_latency(gw, audio, sessions, turns))
    progress("done")
    report(results)


if __name__ == "__main__":
    main()
