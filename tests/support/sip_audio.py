"""Audio helpers for tests that drive real SIP peers: G.711 decoding, the audio of captured RTP, WAV files
prepared for a peer to play (μ-law 20 ms payloads, 48 kHz stereo for Opus, silence padding) and measures for
assertions (level, correlation with the source)."""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from media_gateway.codecs import OutputAudioEncoder, PcmResampler
from media_gateway.codecs.resample import mono_to_stereo
from tests.support.sip_pcap import PCMU_FRAME_BYTES, RtpPacket


def _ulaw_table() -> NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = (((codes & 0x0F) << 3) + 0x84) << exponent
    return np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_table() -> NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


_G711 = {"pcmu": _ulaw_table(), "pcma": _alaw_table()}


def decode_g711(data: bytes, law: str = "pcmu") -> bytes:
    """G.711 μ-law (`pcmu`) or A-law (`pcma`) bytes → s16le PCM at the same rate (ITU-T G.711 tables)."""
    return _G711[law][np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def rtp_audio(
    packets: Iterable[RtpPacket], payload_type: int = 0, law: str = "pcmu", ssrc: int | None = None
) -> bytes:
    """The audio of one payload type's G.711 packets (of one SSRC, or of all) as 8 kHz s16le PCM, placed by
    RTP timestamp (which may wrap) from the earliest, silence where packets are missing."""
    selected = [p for p in packets if p.payload_type == payload_type and ssrc in (None, p.ssrc)]
    if not selected:
        return b""
    first = selected[0].timestamp
    offsets = [((p.timestamp - first + 2**31) & 0xFFFFFFFF) - 2**31 for p in selected]
    low = min(offsets)
    end = max(at - low + len(p.payload) for at, p in zip(offsets, selected, strict=True))
    pcm = np.zeros(end, dtype="<i2")
    for at, p in zip(offsets, selected, strict=True):
        pcm[at - low : at - low + len(p.payload)] = np.frombuffer(decode_g711(p.payload, law), dtype="<i2")
    return pcm.tobytes()


def read_wav(path: Path) -> tuple[bytes, int, int]:
    """A 16-bit PCM WAV: (s16le samples, sample rate, channels)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * wav.getsampwidth()}-bit WAV, 16-bit expected")
        return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels()


def read_wav_mono(path: Path) -> tuple[bytes, int]:
    """A 16-bit WAV as mono s16le (channels averaged) and its sample rate."""
    pcm, rate, channels = read_wav(path)
    if channels == 1:
        return pcm, rate
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.int32)
    return samples.mean(axis=1).astype("<i2").tobytes(), rate


def write_wav(path: Path, pcm: bytes, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Mono s16le PCM at another rate (the gateway's own resampler)."""
    if from_rate == to_rate:
        return pcm
    resampler = PcmResampler(from_rate, to_rate)
    return resampler.push(pcm) + resampler.flush()


def pcmu_payloads(pcm: bytes, sample_rate: int) -> list[bytes]:
    """Mono s16le PCM at any rate → 20 ms PCMU payloads (160 bytes; the last padded with μ-law silence)."""
    encoder = OutputAudioEncoder({"type": "audio/pcmu"})
    ulaw = encoder.encode(pcm, sample_rate) + encoder.flush()
    if len(ulaw) % PCMU_FRAME_BYTES:
        ulaw += b"\xff" * (PCMU_FRAME_BYTES - len(ulaw) % PCMU_FRAME_BYTES)
    return [ulaw[at : at + PCMU_FRAME_BYTES] for at in range(0, len(ulaw), PCMU_FRAME_BYTES)]


def wav_to_pcmu_payloads(path: Path) -> list[bytes]:
    """A 16-bit WAV (any rate; stereo is mixed down) → 20 ms PCMU payloads."""
    pcm, rate = read_wav_mono(path)
    return pcmu_payloads(pcm, rate)


def prepare_wav(
    source: Path,
    target: Path,
    *,
    rate: int = 48_000,
    channels: int = 2,
    before_ms: int = 0,
    after_ms: int = 0,
) -> Path:
    """`source` resampled to `rate` (mono or stereo), with silence before and after: e.g. 48 kHz stereo for
    a softphone sending Opus, padded so it does not hang up when the file ends."""
    pcm, source_rate = read_wav_mono(source)
    pcm = resample(pcm, source_rate, rate)
    pcm = bytes(2 * (rate * before_ms // 1000)) + pcm + bytes(2 * (rate * after_ms // 1000))
    if channels == 2:
        pcm = mono_to_stereo(pcm)
    elif channels != 1:
        raise ValueError("mono or stereo only")
    return write_wav(target, pcm, rate, channels)


def samples(pcm: bytes) -> NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def rms(pcm: bytes) -> float:
    values = samples(pcm)
    return float(np.sqrt(np.mean(values**2))) if values.size else 0.0


def correlation(reference: bytes, received: bytes) -> tuple[float, int]:
    """How much of `reference` (mono s16le) is in `received` (same rate), at the best alignment: the peak of
    the normalized cross-correlation, 1.0 when `received` holds it unchanged (any level, any delay, silence
    around it), and the lag in samples at which it starts in `received`."""
    a, b = samples(reference), samples(received)
    if not a.size or not b.size:
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(a.size + b.size)))
    spectrum = np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size))
    xcorr = np.fft.irfft(spectrum, size)
    lags = np.concatenate([np.arange(0, b.size), np.arange(-a.size + 1, 0)])
    values = np.concatenate([xcorr[: b.size], xcorr[size - a.size + 1 :]])
    best = int(np.argmax(values))
    lag = int(lags[best])
    # Normalise by the energy of the part of `received` that lines up with `reference`.
    start = max(lag, 0)
    window = b[start : start + a.size - max(-lag, 0)]
    norm = float(np.sqrt(np.sum(a**2) * np.sum(window**2)))
    return (float(values[best]) / norm if norm else 0.0), lag
