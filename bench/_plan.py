"""The sizes of a `bench.ws_sessions` run: the full run, `--quick`, and `--smoke` (every code path of the full
run at the smallest sizes that still produce numbers: a crash anywhere fails it; its figures mean nothing)."""

from __future__ import annotations

from dataclasses import dataclass

SWEEP = (1, 20, 50, 100, 150, 200, 250, 300, 350, 400)
PER_KEY = 50  # admin keys may hold 100 concurrent sessions; half leaves room for the last step's closing ones


@dataclass(frozen=True)
class Timing:
    warmup: float
    windows: int
    window: float


@dataclass(frozen=True)
class Plan:
    timing: Timing  # capacity sweep steps
    short: Timing  # paced echo and instrumented gateway steps
    sweep: tuple[int, ...]  # planned sweep sizes (bisections follow the first failing one)
    split: tuple[int, ...]  # sizes of the echo and instrumented steps, besides the largest real-time N
    stage_runs: int  # isolated stage costs: median of this many runs
    stage_repeat: int  # ... each over the audio loop this many times
    latency: tuple[
        tuple[int, int], ...
    ]  # (sessions, turns per session) measured with the in-process pipeline
    latency_warmup_turns: int = 1  # one session, before the measured ones (first inference, caches)
    floor_runs: int = 3  # back-to-back echo floor: median of this many runs
    floor_count: int = 20_000  # ... of this many appends
    per_key: int = PER_KEY  # sessions per API key
    two_clients_from: int = 40  # from this N the load comes from two client processes
    probe_periods: int = 100  # one probe per session every this many 20 ms periods


FULL = Plan(
    timing=Timing(2.0, 3, 4.0),
    short=Timing(1.5, 3, 3.0),
    sweep=SWEEP,
    split=(1, 20),
    stage_runs=7,
    stage_repeat=2,
    latency=((1, 10), (4, 3)),
)
QUICK = Plan(
    timing=Timing(1.0, 2, 2.0),
    short=Timing(1.0, 2, 2.0),
    sweep=(1, 20, 50),
    split=(1, 20),
    stage_runs=3,
    stage_repeat=1,
    latency=((1, 4), (4, 1)),
)
# One sweep size, N=2, served by two client processes with one API key each (so a key is created while the
# gateway runs); probes every 100 ms so that a 0.6 s window holds some; one latency turn in each of two
# sessions at once.
SMOKE = Plan(
    timing=Timing(0.2, 1, 0.6),
    short=Timing(0.2, 1, 0.6),
    sweep=(2,),
    split=(),
    stage_runs=1,
    stage_repeat=1,
    latency=((2, 1),),
    latency_warmup_turns=0,
    floor_runs=1,
    floor_count=5_000,
    per_key=1,
    two_clients_from=2,
    probe_periods=5,
)
