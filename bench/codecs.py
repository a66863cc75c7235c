"""CPU cost of the audio conversions, per 20 ms of audio (one `input_audio_buffer.append` or delta).

Run: `.venv/bin/python -m bench.codecs`. Prints medians over several runs, each beside a baseline measured
in the same run on the same payload (base64 work the transport does anyway), and their ratio. `--smoke` (for
the test suite): one run of 20 events per path; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import base64
import math
import statistics
import time
from collections.abc import Callable
from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from media_gateway.codecs import FrameResampler, InputAudioDecoder, OutputAudioEncoder

EVENTS = 2_000  # 40 s of audio per run
RUNS = 7
SMOKE_EVENTS, SMOKE_RUNS = 20, 1


def sine(rate: int, seconds: float, channels: int = 1) -> bytes:
    n = round(rate * seconds)
    values = [round(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n) for _ in range(channels)]
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


def g711(codec: str, pcm8k: bytes) -> bytes:
    ctx = av.CodecContext.create(codec, "w")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = 8000, "mono", "s16"
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm8k) // 2)
    frame.planes[0].update(pcm8k)
    frame.sample_rate = 8000
    return b"".join(bytes(p) for p in ctx.encode(frame))


def cpu_us_per_event(make: Callable[[], Callable[[int], object]], runs: int, events: int) -> float:
    """Median CPU µs per call over `runs` runs of `events` calls, each run on fresh state."""
    samples = []
    for _ in range(runs):
        step = make()
        start = time.process_time()
        for i in range(events):
            step(i)
        samples.append((time.process_time() - start) / events * 1e6)
    return statistics.median(samples)


def b64_baseline(payload: bytes) -> Callable[[], Callable[[int], object]]:
    """What the transport does for every event anyway: decode the base64 `audio` field, copy the bytes."""
    encoded = base64.b64encode(payload)

    def make() -> Callable[[int], object]:
        return lambda _i: bytes(bytearray(base64.b64decode(encoded)))

    return make


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help=f"{SMOKE_RUNS} run of {SMOKE_EVENTS} events (test run)"
    )
    args = parser.parse_args(argv)
    runs, events = (SMOKE_RUNS, SMOKE_EVENTS) if args.smoke else (RUNS, EVENTS)
    pcm24 = sine(24000, 0.02)  # 960 B
    ulaw = g711("pcm_mulaw", sine(8000, 0.02))  # 160 B
    alaw = g711("pcm_alaw", sine(8000, 0.02))
    pcm16 = sine(16000, 0.02)  # 640 B
    stereo48 = sine(48000, 0.02, channels=2)  # 3840 B

    def rtc_frame(i: int) -> AudioFrame:
        frame = AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(stereo48)
        frame.sample_rate = 48000
        frame.pts, frame.time_base = i * 960, Fraction(1, 48000)
        return frame

    rtc_frames = [rtc_frame(i) for i in range(events)]

    def input_decoder(fmt: str, payload: bytes) -> Callable[[], Callable[[int], object]]:
        def make() -> Callable[[int], object]:
            decoder = InputAudioDecoder(fmt)
            return lambda _i: decoder.decode(payload)

        return make

    def frame_resampler() -> Callable[[int], object]:
        resampler = FrameResampler(48000, "stereo")
        return lambda i: resampler.push(rtc_frames[i])

    def output_encoder(fmt: str) -> Callable[[], Callable[[int], object]]:
        def make() -> Callable[[int], object]:
            encoder = OutputAudioEncoder(fmt)
            return lambda _i: base64.b64encode(encoder.encode(pcm16, 16000))

        return make

    def b64_encode_baseline(payload: bytes) -> Callable[[], Callable[[int], object]]:
        def make() -> Callable[[int], object]:
            return lambda _i: base64.b64encode(bytes(bytearray(payload)))

        return make

    cases: list[tuple[str, Callable[[], Callable[[int], object]], Callable[[], Callable[[int], object]]]] = [
        ("in  pcm 24 kHz -> 16 kHz frames", input_decoder("audio/pcm", pcm24), b64_baseline(pcm24)),
        ("in  pcmu 8 kHz -> 16 kHz frames", input_decoder("audio/pcmu", ulaw), b64_baseline(ulaw)),
        ("in  pcma 8 kHz -> 16 kHz frames", input_decoder("audio/pcma", alaw), b64_baseline(alaw)),
        ("in  48 kHz stereo AudioFrame -> 16 kHz", frame_resampler, b64_baseline(stereo48)),
        ("out 16 kHz -> pcm 24 kHz (+b64)", output_encoder("audio/pcm"), b64_encode_baseline(pcm24)),
        ("out 16 kHz -> pcmu 8 kHz (+b64)", output_encoder("audio/pcmu"), b64_encode_baseline(ulaw)),
    ]
    print(f"av {av.__version__}; CPU µs per 20 ms event, median of {runs} runs x {events} events")
    print(f"{'path':40} {'codec µs':>9} {'baseline µs':>12} {'ratio':>7}")
    for name, codec, baseline in cases:
        codec_us = cpu_us_per_event(codec, runs, events)
        base_us = cpu_us_per_event(baseline, runs, events)
        print(f"{name:40} {codec_us:9.1f} {base_us:12.2f} {codec_us / base_us:7.1f}")
    print("baseline: base64 decode (in) / encode (out) of the same payload plus a bytes copy")


if __name__ == "__main__":
    main()
