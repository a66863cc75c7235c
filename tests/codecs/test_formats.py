from __future__ import annotations

import pytest

from media_gateway.codecs import PCM24, PCMA, PCMU, AudioFormat, AudioFormatError, chunk_audio


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "audio/pcm", "rate": 24000}, PCM24),
        ({"type": "audio/pcm"}, PCM24),
        ({"type": "audio/pcmu"}, PCMU),
        ({"type": "audio/pcma"}, PCMA),
        ("audio/pcmu", PCMU),
        ("pcm16", PCM24),
        ("g711_ulaw", PCMU),
        ("g711_alaw", PCMA),
        (PCMA, PCMA),
    ],
)
def test_parse(value: object, expected: AudioFormat) -> None:
    assert AudioFormat.from_session_format(value) is expected  # type: ignore[arg-type]


def test_attributes() -> None:
    assert (PCM24.name, PCM24.sample_rate, PCM24.bytes_per_sample) == ("audio/pcm", 24000, 2)
    assert (PCMU.name, PCMU.sample_rate, PCMU.bytes_per_sample) == ("audio/pcmu", 8000, 1)
    assert (PCMA.name, PCMA.sample_rate, PCMA.bytes_per_sample) == ("audio/pcma", 8000, 1)
    assert PCM24.to_session_format() == {"type": "audio/pcm", "rate": 24000}
    assert PCMU.to_session_format() == {"type": "audio/pcmu"}


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"type": "audio/pcm", "rate": 16000}, "format.rate"),
        ({"type": "audio/opus"}, "format.type"),
        ({"type": "pcm16"}, "format.type"),
        ({}, "format.type"),
        ({"type": "audio/pcmu", "rate": 16000}, "format.rate"),
    ],
)
def test_parse_rejects(value: dict[str, object], param: str) -> None:
    with pytest.raises(AudioFormatError) as info:
        AudioFormat.from_session_format(value)
    assert info.value.code == "invalid_value"
    assert info.value.param == param
    assert info.value.message


def test_duration_math() -> None:
    assert PCM24.duration_ms(48_000) == 1000.0
    assert PCM24.duration_ms(b"\x00" * 960) == 20.0
    assert PCMU.duration_ms(b"\x00" * 160) == 20.0
    assert PCM24.duration_ms(3) == pytest.approx(1 / 24)  # a stray byte is not a sample
    assert PCM24.bytes_for_ms(200) == 9600
    assert PCMA.bytes_for_ms(200) == 1600
    assert PCM24.bytes_for_ms(0.05) == 2  # 1.2 samples → 1 sample
    assert PCM24.bytes_for_ms(-5) == 0
    # truncation: the byte offset of audio_end_ms maps back to the same duration
    assert PCM24.duration_ms(PCM24.bytes_for_ms(1234)) == 1234.0


@pytest.mark.parametrize("fmt", [PCM24, PCMU, PCMA])
def test_chunk_audio(fmt: AudioFormat) -> None:
    data = bytes(range(256)) * (fmt.bytes_for_ms(1030) // 256) + b"\x01" * (fmt.bytes_for_ms(1030) % 256)
    chunks = chunk_audio(data, fmt, max_ms=200)
    assert b"".join(chunks) == data
    assert [fmt.duration_ms(c) for c in chunks] == [200.0] * 5 + [30.0]
    assert all(len(c) % fmt.bytes_per_sample == 0 for c in chunks)
    assert sum(fmt.duration_ms(c) for c in chunks) == fmt.duration_ms(data)


def test_chunk_audio_edges() -> None:
    assert chunk_audio(b"", PCM24) == []
    assert chunk_audio(b"\x00\x00", PCM24, max_ms=200) == [b"\x00\x00"]
    # 0.1 ms at 24 kHz is 2.4 samples: pieces of 2 whole samples
    assert [len(c) for c in chunk_audio(b"\x00" * 10, PCM24, max_ms=0.1)] == [4, 4, 2]
    with pytest.raises(AudioFormatError):
        chunk_audio(b"\x00" * 3, PCM24)
    with pytest.raises(ValueError, match="shorter than one sample"):
        chunk_audio(b"\x00" * 4, PCMU, max_ms=0.1)
