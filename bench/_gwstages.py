"""`python -m bench._gwstages serve`: the gateway CLI with per-stage CPU counters, for `bench.ws_sessions`.

Wraps, without changing behaviour, the per-append stages of the engine and accumulates their CPU time
(`time.thread_time_ns`, the event-loop thread) and call counts:

* parse: `parse_client_event` + the `base64.b64decode` of the append's audio (in `realtime.session`);
* decode: `InputAudioDecoder.decode` (24 kHz → 16 kHz 20 ms frames);
* vad: `TurnDetector.process` (WebRTC gate + Silero);
* bus: `InProcessBus.publish`.

Only every `STRIDE`-th call of a stage is timed (`thread_time_ns` is a system call on this VM, and timing
every call inflated the gateway's CPU per event by ~15 %); the stride is odd, so it does not alias with the
Silero window period (5 windows per 8 frames). Counters per stage: [calls, timed calls, timed ns]; the
stage's CPU is estimated as timed ns x calls / timed calls.

On SIGUSR1 the cumulative counters are written as JSON to `$BENCH_STAGES_FILE` (with a sequence number), so
the bench can difference them over the same windows as the process's /proc CPU time.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType, SimpleNamespace
from typing import Any

from media_gateway.codecs.stream import InputAudioDecoder
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.realtime import session as session_module
from media_gateway.speech.vad import TurnDetector

clock = time.thread_time_ns
STRIDE = 5
COUNTERS: dict[str, list[int]] = {name: [0, 0, 0] for name in ("parse", "decode", "vad", "bus")}
_sequence = 0


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    counter = COUNTERS[name]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        if counter[0] % STRIDE:
            return function(*args, **kwargs)
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            counter[2] += clock() - start
            counter[1] += 1

    return wrapper


def _timed_async(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    counter = COUNTERS[name]

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        if counter[0] % STRIDE:
            return await function(*args, **kwargs)
        start = clock()  # publish never suspends (no awaits inside), so this is its own CPU time
        try:
            return await function(*args, **kwargs)
        finally:
            counter[2] += clock() - start
            counter[1] += 1

    return wrapper


def install() -> None:
    session_module.parse_client_event = _timed("parse", session_module.parse_client_event)  # type: ignore[attr-defined]
    session_module.base64 = SimpleNamespace(b64decode=_timed("parse", base64.b64decode))  # type: ignore[attr-defined]
    InputAudioDecoder.decode = _timed("decode", InputAudioDecoder.decode)  # type: ignore[method-assign]
    TurnDetector.process = _timed("vad", TurnDetector.process)  # type: ignore[method-assign]
    InProcessBus.publish = _timed_async("bus", InProcessBus.publish)  # type: ignore[method-assign]

    def dump(_signum: int, _frame: FrameType | None) -> None:
        global _sequence
        _sequence += 1
        path = os.environ["BENCH_STAGES_FILE"]
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"seq": _sequence, "counters": COUNTERS}, handle)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, dump)


if __name__ == "__main__":
    install()
    from media_gateway.cli import main

    raise SystemExit(main(sys.argv[1:]))
