from __future__ import annotations

import time

import av
import pytest
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from media_gateway.codecs import AudioFormatError, InputAudioDecoder
from media_gateway.pipeline.messages import FRAME_BYTES
from tests.codecs.signals import chirp, max_abs_diff, samples, sine, snr_db

PCM = {"type": "audio/pcm", "rate": 24000}


def decode_all(fmt: object, chunks: list[bytes]) -> bytes:
    decoder = InputAudioDecoder(fmt)  # type: ignore[arg-type]
    frames = [f for chunk in chunks for f in decoder.decode(chunk)] + decoder.flush()
    assert all(len(f) == FRAME_BYTES for f in frames)
    return b"".join(frames)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def g711_encode(codec: str, pcm8k: bytes) -> bytes:
    """Encode with PyAV's own encoder, independent of the code under test."""
    ctx = av.CodecContext.create(codec, "w")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = 8000, "mono", "s16"
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm8k) // 2)
    frame.planes[0].update(pcm8k)
    frame.sample_rate = 8000
    return b"".join(bytes(p) for p in ctx.encode(frame))


def test_pcm24_frames_and_duration() -> None:
    decoder = InputAudioDecoder(PCM)
    frames = decoder.decode(sine(24000, 1.0))
    frames += decoder.flush()
    assert all(len(f) == 640 for f in frames)
    assert len(frames) == 50
    assert decoder.input_ms == 1000.0
    assert snr_db(b"".join(frames), 16000) > 60


def test_partial_frames_buffered() -> None:
    decoder = InputAudioDecoder(PCM)
    assert decoder.decode(sine(24000, 0.01)) == []  # 10 ms: no complete frame yet
    assert decoder.input_ms == 10.0
    frames = decoder.decode(sine(24000, 0.025))
    assert len(frames) == 1
    tail = decoder.flush()
    assert len(tail) == 1  # 35 ms in total: 1 frame + 15 ms padded
    assert tail[0].endswith(b"\x00\x00" * 50)
    assert decoder.flush() == []
    # a new utterance after flush starts from fresh filter state
    assert len(decoder.decode(sine(24000, 0.04)) + decoder.flush()) == 2


@pytest.mark.parametrize("chunk_ms", [20, 7, 100])
def test_chunk_boundary_invariance(chunk_ms: int) -> None:
    pcm = chirp(24000, 1.0)
    whole = decode_all(PCM, [pcm])
    pieces = decode_all(PCM, split(pcm, 48 * chunk_ms))
    assert len(whole) == len(pieces) == 32000
    assert max_abs_diff(whole, pieces) <= 2


def test_tiny_chunks_invariance() -> None:
    pcm = chirp(24000, 0.2)
    assert max_abs_diff(decode_all(PCM, [pcm]), decode_all(PCM, split(pcm, 2))) <= 2


@pytest.mark.parametrize(("fmt", "codec"), [("audio/pcmu", "pcm_mulaw"), ("audio/pcma", "pcm_alaw")])
def test_g711_decode_matches_encoded_sine(fmt: str, codec: str) -> None:
    encoded = g711_encode(codec, sine(8000, 1.0))
    assert len(encoded) == 8000
    out = decode_all({"type": fmt}, split(encoded, 160))
    assert len(out) == 32000
    assert snr_db(out, 16000) > 30
    decoder = InputAudioDecoder({"type": fmt})
    decoder.decode(encoded[:123])
    assert decoder.input_ms == pytest.approx(123 / 8)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_g711_chunk_boundary_invariance(fmt: str) -> None:
    codec = "pcm_mulaw" if fmt == "audio/pcmu" else "pcm_alaw"
    encoded = g711_encode(codec, chirp(8000, 1.0))
    assert max_abs_diff(decode_all(fmt, [encoded]), decode_all(fmt, split(encoded, 37))) <= 2


def test_odd_length_rejected_state_kept() -> None:
    pcm = chirp(24000, 0.5)
    reference = decode_all(PCM, split(pcm, 960))
    decoder = InputAudioDecoder(PCM)
    frames: list[bytes] = []
    for i, chunk in enumerate(split(pcm, 960)):
        if i == 5:
            with pytest.raises(AudioFormatError) as info:
                decoder.decode(b"\x01" * 961)
            assert info.value.code == "invalid_audio"
            assert "961" in info.value.message
        frames += decoder.decode(chunk)
    frames += decoder.flush()
    assert b"".join(frames) == reference
    assert decoder.input_ms == 500.0


def test_empty_input() -> None:
    decoder = InputAudioDecoder(PCM)
    assert decoder.decode(b"") == []
    assert decoder.flush() == []
    assert decoder.input_ms == 0.0
    g711 = InputAudioDecoder("audio/pcmu")
    assert g711.decode(b"") == []
    assert len(g711.decode(b"\xff" * 320)) == 1  # the decoder still works after an empty append


def test_reset_drops_buffered_audio() -> None:
    decoder = InputAudioDecoder(PCM)
    decoder.decode(sine(24000, 0.03))
    assert decoder.pending_ms > 0
    decoder.reset()
    assert decoder.pending_ms == 0
    assert decoder.flush() == []
    assert decoder.input_ms == 30.0


def test_large_input_linear() -> None:
    chunk = sine(24000, 1.0)  # 48 000 bytes
    small = chunk * 32  # 1.5 MB
    large = chunk * 330  # ~15.1 MiB
    assert len(large) > 15 * 1024 * 1024

    def run(data: bytes) -> tuple[float, int]:
        start = time.perf_counter()
        decoder = InputAudioDecoder(PCM)
        n = len(decoder.decode(data)) + len(decoder.flush())
        return time.perf_counter() - start, n

    small_time, small_frames = run(small)
    large_time, large_frames = run(large)
    assert small_frames == 32 * 50
    assert large_frames == 330 * 50
    # linear: ~10x the work; a quadratic path would be ~100x
    assert large_time < max(small_time, 0.01) * 30, (small_time, large_time)
    assert large_time < 10


def test_many_appends_linear() -> None:
    decoder = InputAudioDecoder(PCM)
    chunk = sine(24000, 0.02)
    frames = 0
    for _ in range(3000):  # one minute of 20 ms appends
        frames += len(decoder.decode(chunk))
    frames += len(decoder.flush())
    assert frames == 3000
    assert decoder.input_ms == pytest.approx(60_000.0)


def test_output_is_mono_s16_at_16k() -> None:
    out = decode_all(PCM, [sine(24000, 0.1, freq=1000.0)])
    ys = samples(out)
    assert len(ys) == 1600
    assert snr_db(out, 16000, freq=1000.0) > 50
