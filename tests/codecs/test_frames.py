from __future__ import annotations

from fractions import Fraction

import pytest
from av.audio.frame import AudioFrame

from media_gateway.codecs import AudioFormatError, FrameResampler, PlaybackFramer
from tests.codecs.signals import peak, sine, snr_db


def rtc_frames(layout: str, seconds: float = 1.0, freq: float = 440.0) -> list[AudioFrame]:
    """48 kHz packed s16 frames of 20 ms with pts, as aiortc's Opus decoder yields them."""
    channels = 2 if layout == "stereo" else 1
    pcm = sine(48000, seconds, freq=freq, channels=channels)
    size = 960 * 2 * channels
    frames = []
    for n, i in enumerate(range(0, len(pcm), size)):
        frame = AudioFrame(format="s16", layout=layout, samples=960)
        frame.planes[0].update(pcm[i : i + size])
        frame.sample_rate = 48000
        frame.pts = n * 960
        frame.time_base = Fraction(1, 48000)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_48k_to_16k_frames(layout: str) -> None:
    resampler = FrameResampler(48000, layout)
    out = [f for frame in rtc_frames(layout) for f in resampler.push(frame)] + resampler.flush()
    assert all(len(f) == 640 for f in out)
    assert len(out) == 50
    pcm = b"".join(out)
    assert snr_db(pcm, 16000) > 50  # stereo downmix keeps the level: (L + R) / 2
    assert abs(peak(pcm, skip=320) - 10000) < 50


def test_push_pcm_and_layout_change() -> None:
    resampler = FrameResampler(48000, "stereo")
    out = resampler.push_pcm(sine(48000, 0.5, channels=2))
    out += [f for frame in rtc_frames("mono", 0.5) for f in resampler.push(frame)]
    out += resampler.flush()
    assert len(out) == 50
    with pytest.raises(AudioFormatError):
        resampler.push_pcm(b"\x00" * 6)  # 1.5 stereo samples


@pytest.mark.parametrize("rate", [16000, 22050, 24000])
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_playback_frames(rate: int, layout: str) -> None:
    framer = PlaybackFramer(48000, layout)
    src = sine(rate, 1.0)
    frames = [f for i in range(0, len(src), 882) for f in framer.push(src[i : i + 882], rate)]
    frames += framer.flush()
    assert len(frames) == 50
    assert [f.pts for f in frames] == [960 * n for n in range(50)]
    for f in frames:
        assert (f.samples, f.sample_rate, f.format.name, f.layout.name) == (960, 48000, "s16", layout)
        assert f.time_base == Fraction(1, 48000)
    mono = b"".join(bytes(f.planes[0])[: 960 * 2 * f.layout.nb_channels] for f in frames)
    if layout == "stereo":
        mono = b"".join(mono[i : i + 2] for i in range(0, len(mono), 4))
    assert snr_db(mono, 48000) > 50


def test_playback_pts_runs_across_flush() -> None:
    framer = PlaybackFramer()
    first = framer.push(sine(24000, 0.05), 24000) + framer.flush()
    second = framer.push(sine(16000, 0.05), 16000) + framer.flush()
    assert [f.pts for f in first + second] == [960 * n for n in range(6)]
    assert framer.flush() == []
