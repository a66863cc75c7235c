"""SIP calls bench: how many concurrent PCMU calls one core holds in real time, next to WebRTC, same run.

    .venv/bin/python bench/sip_calls.py               # prints a report; no asserts; ~3-4 min on 2 cores
    .venv/bin/python bench/sip_calls.py --sweep 40,50  # other N; --no-webrtc: the SIP part only
    .venv/bin/python bench/sip_calls.py --smoke       # every part with 1-2 calls, short windows (tests)

Setup. The gateway runs in a child process (`--serve`, pinned to core 0) built by `build_app` with
`MEDIA_GATEWAY_SPEECH_PIPELINE=none`, its SIP endpoint on, PCMU only, and the dispatch rule: every call is
answered with a session of one API key, `turn_detection: null`. Speech both ways all the time, as in the
WebRTC bench: the callers send speech continuously, so every inbound frame reaches the bus; the child sends
each call's session `response.create` when the call is answered and again on every `response.done` (what
an application's sideband connection would send, minus its WebSocket: one event per 4 s), and a responder
on the bus answers each with 4 s of synthetic voice at real time (it runs in the child, so its bus traffic
is counted, as in the WebRTC bench). The load generator runs in this process, pinned to core 1: N SIP
callers written on asyncio UDP (INVITE with a PCMU offer, ACK, BYE; `bench/_sip_callers.py`), each
sending pre-encoded μ-law speech every 20 ms and counting, not decoding, the RTP that comes back. The
baseline, in the same child: a bare SIP endpoint whose calls only do the codec and socket work (receive
RTP, decode μ-law to 16 kHz frames, encode a 440 Hz tone to μ-law, send RTP every 20 ms, one paced task
per call; `bench/_sip_serve.py`). Both processes run at nice -15 and so does this session's autogroup
(without it, Linux weighs a nice only within a session, and other sessions' jobs share the core as
equals); the children's SQLite files are on a tmpfs when there is one.

Measured over a steady window per N: the child's CPU (all threads, /proc), per call-second and as a share
of its core; the RTP packets/s each call receives (real time is 50/s ±3 %); packets lost (sequence gaps)
and late (more than 60 ms behind their slot on the stream's clock); the child's event-loop lag (a 20 ms
timer's lateness); the 16 kHz frames the gateway's calls hand to their sessions; this process's CPU and
its own sending lag (the load generator's headroom), and the rest of the machine's CPU ("other").
"Holds real time": the child's CPU stays under 90 % of its core, every call receives 97-103 % of 50
packets/s, and the inbound path delivers ≥ 95 % of 50 frames/s per call (the WebRTC bench's rule). The
sweep stops at the first N that does not hold (measured once more when it was not CPU-bound: the machine
is shared). The WebRTC figure then comes from `bench/webrtc_media.py`'s own child and phases (Opus,
aiortc peers on core 1) and its search for the largest N, with shorter windows, under the same pinning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `python bench/sip_calls.py`

import aiohttp  # noqa: E402

from bench import _sip_callers as callers_  # noqa: E402
from bench import webrtc_media  # noqa: E402
from bench._gateway import SERVER_NICE, _pinned, cpu_seconds, free_port  # noqa: E402
from bench._steps import MAX_CPU, MIN_SENT, machine_busy_seconds  # noqa: E402
from bench._webrtc_peers import Sizes, phase  # noqa: E402
from bench._webrtc_peers import row as webrtc_row  # noqa: E402

MIN_IN = 0.95  # of 50 inbound frames/s per call (as bench/webrtc_media.py)
MAX_RATE = 1.03  # of 50 packets/s: faster means a burst catching up, not real time
PAYLOADS = callers_.pcmu_payloads()  # what every caller says, looped


@dataclass(frozen=True)
class Plan:
    sweep: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 100, 120, 150, 200)
    response_seconds: float = 4.0
    warmup_s: float = 3.0
    window_s: float = 6.0
    settle_s: float = 1.0
    retry: bool = True  # measure a failing N again when it was not CPU-bound
    webrtc: Sizes = field(
        default_factory=lambda: Sizes(
            warmup_s=2.0, window_s=4.0, settle_s=1.0, phases=(10, 20), up=(30, 40, 60), down=(15, 12)
        )
    )


FULL = Plan()
SMOKE = Plan(
    sweep=(1, 2),
    response_seconds=0.5,
    warmup_s=0.5,
    window_s=1.0,
    settle_s=0.2,
    retry=False,
    webrtc=Sizes(
        response_seconds=0.5, warmup_s=0.5, window_s=1.0, settle_s=0.3, phases=(1, 2), up=(), down=()
    ),
)


@dataclass
class Result:
    n: int
    bare: bool
    connected: int
    seconds: float
    cpu: float  # child CPU s over the window
    loadgen: float  # this process's CPU s
    other: float  # the rest of the machine, busy CPU s
    in_frames: int
    sent: int  # packets the callers sent
    pacing: callers_.Pacing
    responses: int
    reply_share: float  # of the frames the gateway's calls sent, those carrying reply audio (not silence)
    loop_lag: tuple[float, float]  # the child's event loop lateness, p99 and max, s

    @property
    def core(self) -> float:
        return self.cpu / self.seconds

    @property
    def per_call_s(self) -> float:
        return self.cpu / (self.n * self.seconds)

    @property
    def rate(self) -> float:
        return statistics.fmean(self.pacing.rates) / 50 if self.pacing.rates else 0.0

    @property
    def rate_min(self) -> float:
        return min(self.pacing.rates, default=0.0) / 50

    @property
    def rate_max(self) -> float:
        return max(self.pacing.rates, default=0.0) / 50

    @property
    def in_rate(self) -> float:
        return self.in_frames / (self.n * self.seconds * 50)

    @property
    def sent_rate(self) -> float:
        return self.sent / (self.n * self.seconds * 50)

    def why_not(self) -> list[str]:
        why = []
        if self.connected < self.n:
            why.append(f"{self.n - self.connected} not connected")
        if self.core >= MAX_CPU:
            why.append("cpu")
        if self.rate_min < MIN_SENT or self.rate_max > MAX_RATE:
            why.append("out rate")
        if self.in_rate < MIN_IN:
            why.append("inbound")
        return why

    @property
    def holds(self) -> bool:
        return not self.why_not()

    def row(self) -> str:
        lateness = self.pacing.lateness
        p99 = sorted(lateness)[int(len(lateness) * 0.99)] * 1000 if lateness else float("nan")
        lag = self.pacing.send_lag
        lag99 = sorted(lag)[int(len(lag) * 0.99)] * 1000 if lag else float("nan")
        why = self.why_not()
        verdict = "holds" if not why else "FALLS BEHIND: " + ", ".join(why)
        if self.loadgen / self.seconds > 0.9 or lag99 > 20:
            verdict += " (load generator bound?)"
        return (
            f"{'bare RTP' if self.bare else 'gateway':8} N={self.n:3d}  "
            f"CPU {self.per_call_s:.4f} s/call-s (core {self.core * 100:3.0f} %)  "
            f"out {self.rate * 50:4.1f}/s per call (min {self.rate_min * 50:4.1f})  "
            f"lost {self.pacing.lost} late {self.pacing.late} (p99 {p99:4.1f} ms)  "
            f"loop lag p99/max {self.loop_lag[0] * 1000:.0f}/{self.loop_lag[1] * 1000:.0f} ms  "
            f"in {self.in_rate * 100:3.0f} %  "
            f"load gen {self.loadgen / self.seconds * 100:3.0f} % (sent {self.sent_rate * 100:3.0f} %, "
            f"lag p99 {lag99:4.1f} ms)  other {self.other / self.seconds * 100:3.0f} %  {verdict}"
        )


async def _info(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.post(base + "/bench/info") as response:
        return dict(await response.json())


async def measure(
    http: aiohttp.ClientSession,
    base: str,
    pid: int,
    signalling: callers_.Signalling,
    n: int,
    plan: Plan,
    *,
    bare: bool,
) -> Result:
    info = await _info(http, base)
    target = ("127.0.0.1", int(info["bare" if bare else "sip"]))
    calls = [callers_.Caller(i, PAYLOADS, signalling) for i in range(n)]
    live = "bare_calls" if bare else "calls"
    try:
        await callers_.connect_all(calls, target)
        await asyncio.sleep(plan.warmup_s)
        before = await _info(http, base)
        cpu0, me0, busy0, t0 = (
            cpu_seconds(pid),
            cpu_seconds(os.getpid()),
            machine_busy_seconds(),
            time.monotonic(),
        )
        sent0 = sum(c.sent for c in calls)
        for c in calls:
            c.record()
        await asyncio.sleep(plan.window_s)
        recorded = [c.stop_recording() for c in calls]
        cpu1, me1, busy1, t1 = (
            cpu_seconds(pid),
            cpu_seconds(os.getpid()),
            machine_busy_seconds(),
            time.monotonic(),
        )
        sent1 = sum(c.sent for c in calls)
        after = await _info(http, base)
        seconds = t1 - t0
        frames = "bare_in_frames" if bare else "in_frames"
        return Result(
            n=n,
            bare=bare,
            connected=min(int(before[live]), int(after[live])),
            seconds=seconds,
            cpu=cpu1 - cpu0,
            loadgen=me1 - me0,
            other=max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (me1 - me0)),
            in_frames=int(after[frames]) - int(before[frames]),
            sent=sent1 - sent0,
            pacing=callers_.pacing(recorded, seconds),
            responses=int(after["responses"]) - int(before["responses"]),
            reply_share=(int(after["reply_frames_out"]) - int(before["reply_frames_out"]))
            / max(1, int(after["frames_out"]) - int(before["frames_out"])),
            loop_lag=(float(after["loop_lag_p99"]), float(after["loop_lag_max"])),
        )
    finally:
        await asyncio.gather(*(c.hang_up(target) for c in calls), return_exceptions=True)
        for _ in range(100):  # the calls' sessions closed before the next N
            if int((await _info(http, base))[live]) == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(plan.settle_s)


@contextlib.asynccontextmanager
async def child(
    script: Path, tmp: str, response_seconds: float, label: str
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`script --serve PORT DB SECONDS`, pinned to core 0 (nice -15); its base URL once ready. Its output
    goes to a log; what it logged as errors is summed up when it ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tmp) / f"{label}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [
                *_pinned((0,)),
                sys.executable,
                str(script),
                "--serve",
                str(port),
                f"sqlite+aiosqlite:///{tmp}/{label}.db",
                str(response_seconds),
            ],
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await webrtc_media._ready(base, process)
        yield base, process
    except BaseException:
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        process.terminate()
        process.wait(15)
        print(_errors_logged(log_path.read_text(errors="replace")))


def _errors_logged(text: str) -> str:
    """How many errors the child logged, by log event, and the exceptions they carried (last lines)."""
    kinds: Counter[str] = Counter()
    for line in text.splitlines():
        if event := re.search(r"\[error\s*\]\s*(.+?)(\s{2,}|\s\[|$)", line):
            kinds[event.group(1)] += 1
        elif re.match(r"^[\w.]+(Error|Exception): ", line):
            kinds[line[:100]] += 1
    if not kinds:
        return "gateway child's log: no errors"
    return "gateway child's log, errors: " + "; ".join(f"{k} x{v}" for k, v in kinds.most_common(6))


async def sip_part(plan: Plan, tmp: str) -> tuple[list[Result], int | None]:
    results: list[Result] = []
    largest: int | None = None
    async with child(Path(__file__), tmp, plan.response_seconds, "sip") as (base, process):
        signalling = await callers_.Signalling.open()
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.sleep(plan.settle_s)
                cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
                await asyncio.sleep(plan.window_s)
                idle = (cpu_seconds(process.pid) - cpu0) / (time.monotonic() - t0)
                print(f"child with no call: CPU {idle * 100:.1f} % of its core", flush=True)
                for n in plan.sweep:
                    for bare in (True, False):
                        result = await measure(http, base, process.pid, signalling, n, plan, bare=bare)
                        print(result.row(), flush=True)
                        if not bare and not result.holds and result.core < MAX_CPU and plan.retry:
                            print(f"  (N={n} failed without being CPU-bound: measured once more)", flush=True)
                            result = await measure(http, base, process.pid, signalling, n, plan, bare=False)
                            print(result.row(), flush=True)
                        results.append(result)
                    if not results[-1].holds:
                        break
                    largest = n
        finally:
            signalling.close()
    if signalling.hung_up_by_far_end:
        print(f"calls the gateway hung up on (BYE from it): {signalling.hung_up_by_far_end}")
    return results, largest


async def webrtc_part(sizes: Sizes, tmp: str) -> tuple[list[dict[str, Any]], int | None]:
    """`bench/webrtc_media.py`'s bare/gateway phases and its search for the largest N, short windows."""
    script = Path(webrtc_media.__file__)
    async with (
        child(script, tmp, sizes.response_seconds, "webrtc") as (base, process),
        aiohttp.ClientSession() as http,
    ):
        key = (await (await http.post(base + "/bench/key")).json())["key"]
        results = []
        for n in sizes.phases:
            for bare in (True, False):
                results.append(await phase(http, base, key, process.pid, n, sizes, bare=bare))
                print(webrtc_row(results[-1]), flush=True)
        top = sizes.phases[-1]
        # On from the last phase as bench/webrtc_media.py searches: upwards while N holds, else downwards
        # until one holds.
        for n in sizes.up if results[-1]["holds"] else sizes.down:
            result = await phase(http, base, key, process.pid, n, sizes, bare=False)
            print(webrtc_row(result), flush=True)
            results.append(result)
            if result["holds"] == (n < top):
                break
        gateway = [r for r in results if not r["bare"]]
        failed = min((r["n"] for r in gateway if not r["holds"]), default=None)
        held = [r["n"] for r in gateway if r["holds"] and (failed is None or r["n"] < failed)]
        largest = max(held, default=None)
    return results, largest


AUTOGROUP = Path("/proc/self/autogroup")
TMPFS = Path("/dev/shm")  # noqa: S108 - the databases' directory is made with tempfile in it


@contextlib.contextmanager
def _autogroup_nice() -> Iterator[str]:
    """With autogroup scheduling (Linux, on by default), a process's nice weighs only against the processes
    of its own session: other sessions' jobs (a test suite) share a core with the child as equals. Setting the
    nice of this session's group (root) for the run gives the child and this process the priority `nice`
    means; the group's nice is put back afterwards."""
    try:
        before = AUTOGROUP.read_text().split()[-1]
        AUTOGROUP.write_text(str(SERVER_NICE))
    except (OSError, IndexError) as exc:
        yield f"autogroup nice not set ({exc}): other sessions' load competes with the child as an equal"
        return
    try:
        yield f"session's autogroup at nice {AUTOGROUP.read_text().split()[-1]}"
    finally:
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(before)


def _load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def main(plan: Plan, scheduling: str, tmp: str, *, webrtc: bool = True) -> None:
    os.sched_setaffinity(0, {1})
    with contextlib.suppress(OSError):  # as the child's: other users' jobs share this machine
        os.setpriority(os.PRIO_PROCESS, 0, SERVER_NICE)
    print((__doc__ or "").split("\n\n")[1])
    print(
        f"\nhost: {os.cpu_count()} cores; gateway child pinned to core 0, load generator (this process) to"
        f" core 1, both at nice {os.getpriority(os.PRIO_PROCESS, 0)}, {scheduling}; {_load_line()}\n"
    )
    started = time.monotonic()
    print(
        f"1. SIP, PCMU: bare RTP endpoint, then the gateway, per N; windows of {plan.window_s:g} s after "
        f"{plan.warmup_s:g} s"
    )
    sip, sip_largest = await sip_part(plan, tmp)
    print(f"\nlargest N that held real time (SIP, PCMU): {sip_largest}")
    print(
        f"INVITEs made again: {len(callers_.RETRIES)} (final statuses {sorted(set(callers_.RETRIES))[:4]};"
        " 408: no answer in 10 s, cancelled)"
    )
    print("\nratios gateway / bare RTP (CPU per call-second):")
    for gateway in (r for r in sip if not r.bare):
        floor = next(r for r in sip if r.bare and r.n == gateway.n)
        print(
            f"  N={gateway.n:3d}: CPU x{webrtc_media.ratio(gateway.per_call_s, floor.per_call_s):.2f}; "
            f"≈ {webrtc_media.ratio(1, gateway.per_call_s):.0f} gateway calls per core vs "
            f"{webrtc_media.ratio(1, floor.per_call_s):.0f} bare; "
            f"reply audio in {gateway.reply_share * 100:.0f} % of the packets out, "
            f"{gateway.responses} responses done in the window"
        )
    webrtc_results: list[dict[str, Any]] = []
    webrtc_largest: int | None = None
    if webrtc:
        print(
            f"\n2. WebRTC, Opus (bench/webrtc_media.py's phases): windows of {plan.webrtc.window_s:g} s "
            f"after {plan.webrtc.warmup_s:g} s"
        )
        webrtc_results, webrtc_largest = await webrtc_part(plan.webrtc, tmp)
        print(f"\nlargest N that held real time (WebRTC, of those tried): {webrtc_largest}")
    print("\nsummary, same run, one core:")
    print(f"  SIP PCMU calls held in real time: {sip_largest} (sweep {', '.join(map(str, plan.sweep))})")
    if webrtc:
        tried = sorted({r["n"] for r in webrtc_results if not r["bare"]})
        print(f"  WebRTC calls held in real time: {webrtc_largest} (tried {', '.join(map(str, tried))})")
    for n in sorted({r.n for r in sip if not r.bare} & {r["n"] for r in webrtc_results if not r["bare"]}):
        s = next(r for r in sip if not r.bare and r.n == n)
        w = next(r for r in webrtc_results if not r["bare"] and r["n"] == n)
        note = "" if s.holds and w["holds"] else " (a core that fell behind: its figure is a floor)"
        print(
            f"  N={n:3d}: CPU per call-second SIP {s.per_call_s:.4f} s, WebRTC {w['cpu_per_session_s']:.4f} s"
            f" (SIP / WebRTC x{webrtc_media.ratio(s.per_call_s, w['cpu_per_session_s']):.2f}){note}"
        )
    print(f"\n{_load_line()}; run took {time.monotonic() - started:.0f} s")


def _arguments() -> Any:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every part with 1-2 calls (test run)")
    parser.add_argument(
        "--sweep",
        help="the N to try, comma-separated (default: %(default)s)",
        default=",".join(map(str, FULL.sweep)),
    )
    parser.add_argument("--no-webrtc", action="store_true", help="the SIP part only (no WebRTC figure)")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the child: port, database URL, seconds
    return parser.parse_args()


if __name__ == "__main__":
    args = _arguments()
    if args.serve:
        from bench._sip_serve import serve

        serve(int(args.serve[0]), args.serve[1], float(args.serve[2]))
    else:
        plan = SMOKE if args.smoke else replace(FULL, sweep=tuple(int(n) for n in args.sweep.split(",")))
        # The children's SQLite files in memory where there is a tmpfs: on a disk shared with other jobs,
        # commits wait on fsync, and the gateway's writes then fail with "database is locked".
        shm = TMPFS if TMPFS.is_dir() else None
        with _autogroup_nice() as scheduling, tempfile.TemporaryDirectory(dir=shm) as tmp:
            asyncio.run(main(plan, scheduling, tmp, webrtc=not args.no_webrtc))
