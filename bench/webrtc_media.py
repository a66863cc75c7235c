"""WebRTC media bench: gateway CPU and added latency for two-way calls, against bare aiortc, same run.

    .venv/bin/python bench/webrtc_media.py            # prints a report; no asserts; ~4-5 min on 2 cores

Setup. The gateway runs in a child process (`--serve`, pinned to core 0) built by `build_app` with
`MEDIA_GATEWAY_SPEECH_PIPELINE=none` and a small responder on the bus: every `response.create` is answered
with 4 s of synthetic voiced audio (16 kHz, 20 ms chunks published at real time), then `response.done`.
The client peers (aiortc, in this process, pinned to core 1) play speech on their track continuously and
send `response.create` again whenever a response is done, with `turn_detection: null` (no VAD), so every
call carries speech both ways all the time. The same child also serves a *bare aiortc* endpoint: a peer
that only decodes + resamples the inbound track (the gateway's `FrameResampler`) and sends a 440 Hz tone
from a paced track: the floor the gateway is compared to.

Measured in the child: process CPU (all threads) over a steady window; inbound added latency = RTP packet
arrival (aiortc receiver) → its 16 kHz frames published on the bus (bare: → resampled); outbound added
latency = the engine hands pipeline audio to the track (`AudioSink.play`) → the frame is handed to aiortc's
RTP sender (encode, ~0.12 ms, follows). "Holds real time": the child's CPU stays under 90 % of its core,
the track sends ≥ 97 % of 50 frames/s per call, and the inbound path delivers ≥ 95 % of 50 frames/s.

`--smoke` (for the test suite) runs every part with 1-3 calls, short windows and 0.5 s responses; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `python bench/webrtc_media.py`

import aiohttp  # noqa: E402

from bench._gateway import free_port  # noqa: E402
from bench._webrtc_peers import (  # noqa: E402
    RETRIES,
    Peer,
    Sizes,
    answer_times,
    control,
    idle_memory,
    phase,
    row,
    send_path_microbench,
)
from bench._webrtc_tracks import voiced  # noqa: E402

FULL = Sizes()
SMOKE = Sizes(
    response_seconds=0.5,  # several response.done -> response.create turns per window
    warmup_s=0.5,
    window_s=1.0,
    settle_s=0.3,
    phases=(1, 2),
    up=(3,),
    down=(1,),
    idle_calls=2,
    idle_settle_s=0.5,
    answer_rounds=1,
    answer_offers=2,
    answer_pause_s=0.2,
    profile_calls=2,
    profile_warmup_s=0.5,
    profile_s=1.0,
)


def ratio(numerator: float, denominator: float) -> float:
    """CPU time is read in clock ticks (10 ms): a short window (a smoke run's) can read 0."""
    return numerator / denominator if denominator else math.nan


async def _ready(base: str, child: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if child.poll() is not None:
            raise RuntimeError(f"the gateway child exited with {child.returncode} before it was ready")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(base + "/ready", timeout=1)  # noqa: S310, ASYNC210
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the gateway child was not ready within 60 s")


async def run(http: aiohttp.ClientSession, base: str, key: str, pid: int, sizes: Sizes) -> None:
    print((__doc__ or "").split("\n\n")[1])
    print(f"\nhost: {os.cpu_count()} cores; gateway pinned to core 0, client peers to core 1\n")
    per_call = await idle_memory(http, base, key, sizes)
    print(
        f"memory per idle call (gateway RSS delta / {sizes.idle_calls} connected calls): {per_call:.2f} MiB\n"
    )
    results = []
    for n in sizes.phases:
        for bare in (True, False):
            results.append(await phase(http, base, key, pid, n, sizes, bare=bare))
            print(row(results[-1]), flush=True)
    # The largest N that holds: search upwards from the last phase's N if it held, else downwards.
    top = sizes.phases[-1]
    largest = top if results[-1]["holds"] else None
    for n in sizes.up if largest else sizes.down:
        result = await phase(http, base, key, pid, n, sizes, bare=False)
        print(row(result), flush=True)
        if result["holds"]:
            largest = max(largest or 0, n)
            if n < top:
                break
        elif n > top:
            break
    print(f"\nlargest N that held real time (of those tried): {largest}")
    print("\nratios gateway / bare (CPU per session-second):")
    for n in sizes.phases:
        g = next(r for r in results if r["n"] == n and not r["bare"])
        b = next(r for r in results if r["n"] == n and r["bare"])
        print(
            f"  N={n:3d}: CPU x{ratio(g['cpu_per_session_s'], b['cpu_per_session_s']):.2f}; "
            f"≈ {ratio(1, g['cpu_per_session_s']):.0f} gateway sessions per core vs "
            f"{ratio(1, b['cpu_per_session_s']):.0f} bare; "
            f"inbound p50 {g['in_ms'][0] - b['in_ms'][0]:+.1f} ms"
        )
    await control(http, base, "fast_level", on="0")
    slow = await phase(http, base, key, pid, top, sizes, bare=False)
    await control(http, base, "fast_level", on="1")
    print(f"\nA/B at N={top} with aiortc's pure-Python audio level:\n{row(slow)}")
    client, server, aiortc_part = await answer_times(http, base, key, sizes)
    print(f"\nSDP answer time, {sizes.answer_offers} concurrent offers x{sizes.answer_rounds}, p50/p99:")
    print(f"  client-measured POST        {client[0]:7.1f} / {client[1]:7.1f} ms")
    print(f"  gateway handler (metric)    {server[0]:7.1f} / {server[1]:7.1f} ms")
    print(f"  aiortc offer -> answer SDP  {aiortc_part[0]:7.1f} / {aiortc_part[1]:7.1f} ms")
    await profile(http, base, key, sizes)
    print(f"\nPOSTs retried after a refusal: {len(RETRIES)} {sorted(set(RETRIES))[:3]}")
    print("\nsend path, per 20 ms frame (this process):")
    print("\n".join(send_path_microbench()))


async def profile(http: aiohttp.ClientSession, base: str, key: str, sizes: Sizes) -> None:
    await asyncio.sleep(1)
    peers = [Peer(voiced(3.0), bare=False) for _ in range(sizes.profile_calls)]
    for p in peers:
        await p.connect(http, base, key)
    await asyncio.sleep(sizes.profile_warmup_s)
    await control(http, base, "profile_start")
    await asyncio.sleep(sizes.profile_s)
    stats: str = (await control(http, base, "profile_stop"))["profile"]
    await asyncio.gather(*(p.close() for p in peers))
    print(
        f"\nwhere the CPU goes: gateway event-loop thread, N={sizes.profile_calls}, {sizes.profile_s:g} s,"
        " top functions by own time"
    )
    print("(Opus encode and decode run on other threads: see the per-frame costs below)")
    print("\n".join(line for line in stats.splitlines() if line.strip())[:4000])


async def main(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any peer
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                __file__,
                "--serve",
                str(port),
                f"sqlite+aiosqlite:///{tmp}/b.db",
                str(sizes.response_seconds),
            ],
            cwd=tmp,
        )
        os.sched_setaffinity(0, {1})
        try:
            await _ready(base, child)
            async with aiohttp.ClientSession() as http:
                key = (await (await http.post(base + "/bench/key")).json())["key"]
                await run(http, base, key, child.pid, sizes)
        finally:
            child.terminate()
            child.wait(10)


def _arguments() -> Any:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every part with 1-3 calls (test run)")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the child: port, database URL, seconds
    return parser.parse_args()


if __name__ == "__main__":
    args = _arguments()
    if args.serve:
        from bench._webrtc_serve import serve

        serve(int(args.serve[0]), args.serve[1], float(args.serve[2]))
    else:
        asyncio.run(main(SMOKE if args.smoke else FULL))
