from __future__ import annotations

import av
import pytest
from av.audio.codeccontext import AudioCodecContext

from media_gateway.codecs import PCM24, AudioFormatError, OutputAudioEncoder
from tests.codecs.signals import chirp, max_abs_diff, sine, snr_db

PCM = {"type": "audio/pcm", "rate": 24000}


def g711_decode(codec: str, data: bytes) -> bytes:
    """Decode with PyAV's own decoder, independent of the code under test."""
    ctx = av.CodecContext.create(codec, "r")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate, ctx.layout = 8000, "mono"
    return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in ctx.decode(av.Packet(data)))


def encode_all(fmt: object, rate: int, chunks: list[bytes]) -> bytes:
    encoder = OutputAudioEncoder(fmt)  # type: ignore[arg-type]
    return b"".join(encoder.encode(c, rate) for c in chunks) + encoder.flush()


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000])
def test_pcm24_from_any_rate(rate: int) -> None:
    encoder = OutputAudioEncoder(PCM)
    src = sine(rate, 1.0)
    out = b"".join(encoder.encode(src[i : i + rate // 25], rate) for i in range(0, len(src), rate // 25))
    out += encoder.flush()
    assert len(out) == 48000  # exactly 1 s at 24 kHz
    assert encoder.output_ms == encoder.duration_ms(out) == 1000.0
    assert snr_db(out, 24000) > 50


@pytest.mark.parametrize(("fmt", "codec"), [("audio/pcmu", "pcm_mulaw"), ("audio/pcma", "pcm_alaw")])
@pytest.mark.parametrize("rate", [16000, 22050, 24000])
def test_g711_output(fmt: str, codec: str, rate: int) -> None:
    src = sine(rate, 1.0)
    out = encode_all({"type": fmt}, rate, [src[i : i + 640] for i in range(0, len(src), 640)])
    assert len(out) == 8000  # 1 byte per sample at 8 kHz
    assert OutputAudioEncoder(fmt).duration_ms(out) == 1000.0
    assert snr_db(g711_decode(codec, out), 8000) > 30


@pytest.mark.parametrize("fmt", [PCM, {"type": "audio/pcmu"}])
def test_encode_chunk_boundary_invariance(fmt: dict[str, object]) -> None:
    src = chirp(16000, 1.0)
    whole = encode_all(fmt, 16000, [src])
    pieces = encode_all(fmt, 16000, [src[i : i + 250] for i in range(0, len(src), 250)])
    assert len(whole) == len(pieces)
    if fmt == PCM:
        assert max_abs_diff(whole, pieces) <= 2
    else:
        assert max_abs_diff(g711_decode("pcm_mulaw", whole), g711_decode("pcm_mulaw", pieces)) <= 64


def test_rate_change_keeps_duration() -> None:
    encoder = OutputAudioEncoder(PCM)
    out = encoder.encode(sine(16000, 0.5), 16000)
    out += encoder.encode(sine(22050, 0.5), 22050)
    out += encoder.flush()
    assert len(out) == 24000 * 2  # 0.5 s + 0.5 s at 24 kHz, nothing lost at the switch


def test_same_rate_is_passthrough() -> None:
    encoder = OutputAudioEncoder(PCM)
    src = sine(24000, 0.1)
    assert encoder.encode(src, 24000) == src
    assert encoder.flush() == b""


def test_flush_then_reuse_and_empty() -> None:
    encoder = OutputAudioEncoder("audio/pcma")
    assert encoder.flush() == b""
    assert encoder.encode(b"", 16000) == b""
    first = encoder.encode(sine(16000, 0.2), 16000) + encoder.flush()
    second = encoder.encode(sine(16000, 0.2), 16000) + encoder.flush()
    assert first == second
    assert encoder.output_ms == 400.0


def test_rejects_bad_pcm() -> None:
    encoder = OutputAudioEncoder(PCM)
    with pytest.raises(AudioFormatError):
        encoder.encode(b"\x00" * 3, 16000)
    with pytest.raises(AudioFormatError):
        encoder.encode(b"\x00" * 4, 0)


def test_chunks_for_deltas() -> None:
    encoder = OutputAudioEncoder(PCM)
    out = encoder.encode(sine(16000, 1.05), 16000) + encoder.flush()
    chunks = encoder.chunks(out, max_ms=200)
    assert [PCM24.duration_ms(c) for c in chunks] == [200.0] * 5 + [50.0]
    assert b"".join(chunks) == out
    # truncating at audio_end_ms keeps exactly the delivered bytes
    delivered = b"".join(chunks[:2])
    assert encoder.duration_ms(delivered) == 400.0
    assert PCM24.bytes_for_ms(400) == len(delivered)
