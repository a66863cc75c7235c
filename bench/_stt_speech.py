"""Test utterances for `bench.stt_models`: sentences spoken by espeak-ng and flite voices, padded with quiet
noise, as 16 kHz PCM and as the gateway decodes the same audio sent over 8 kHz G.711 μ-law."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from bench._audio import noise, read_wav
from media_gateway.codecs import InputAudioDecoder, PcmResampler

RATE: Final = 16_000
BEFORE_MS, AFTER_MS = 300, 500  # quiet noise around each utterance: server VAD's prefix padding and silence

# What people say to a voice assistant: questions about time and date, names, numbers, short commands.
SENTENCES: Final = (
    "what time is it",
    "what is the date today",
    "what day is it today",
    "what is your name",
    "my name is bob",
    "help me make a choice",
    "set a timer for ten minutes",
    "turn off the lights in the kitchen",
    "what is the weather like tomorrow",
    "play some music",
    "stop",
    "what is five plus seven",
    "call bob at three thirty",
    "remind me to buy milk at six fifteen",
    "how many days until friday",
    "set the volume to twenty percent",
    "tell me a joke",
    "what can you do",
    "cancel that",
    "what is the capital of france",
    "add eggs and bread to my shopping list",
    "who are you",
    "count from one to five",
    "yes please",
    "no thank you",
    "what is the temperature outside",
    "wake me up at seven tomorrow morning",
    "how old are you",
)
# (engine, voice): espeak-ng accents and a variant, flite's 16 kHz voices.
VOICES: Final = (
    ("espeak-ng", "en-us"),
    ("espeak-ng", "en-gb"),
    ("espeak-ng", "en-us+f3"),
    ("espeak-ng", "en-gb-x-rp"),
    ("flite", "slt"),
    ("flite", "rms"),
    ("flite", "awb"),
    ("flite", "kal16"),
)
CONDITIONS: Final = ("16k", "8k-ulaw")
CONDITION_NAMES: Final = {
    "16k": "16 kHz PCM",
    "8k-ulaw": "16 kHz -> 8 kHz G.711 mu-law (PyAV pcm_mulaw) -> InputAudioDecoder('audio/pcmu') -> 16 kHz",
}

# One utterance to synthesize: (sentence, (engine, voice), conditions).
Planned: TypeAlias = tuple[str, tuple[str, str], tuple[str, ...]]


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str  # "engine/voice"
    audio: dict[str, bytes]  # condition -> 16 kHz mono s16le, padded


def synthesize(text: str, engine: str, voice: str, path: Path) -> bytes:
    """`text` spoken by `engine` in `voice`, as 16 kHz mono s16le PCM (no padding)."""
    if shutil.which(engine) is None:
        raise SystemExit(f"{engine} is missing: run scripts/install-system-packages.sh")
    if engine == "espeak-ng":
        command = [engine, "-v", voice, "-s", "150", "-w", str(path), text]
    else:
        command = [engine, "-voice", voice, "-t", text, "-o", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return read_wav(path, RATE)


def padded(pcm: bytes, seed: int) -> bytes:
    return noise(BEFORE_MS, seed, rate=RATE) + pcm + noise(AFTER_MS, seed + 1, rate=RATE)


def mulaw_8k(pcm16k: bytes) -> bytes:
    """16 kHz PCM as a telephone bridge sends it: 8 kHz G.711 μ-law, encoded by PyAV's pcm_mulaw."""
    resampler = PcmResampler(RATE, 8000)
    pcm8k = resampler.push(pcm16k) + resampler.flush()
    ctx = av.CodecContext.create("pcm_mulaw", "w")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = 8000, "mono", "s16"
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm8k) // 2)
    frame.planes[0].update(pcm8k)
    frame.sample_rate = 8000
    return b"".join(bytes(packet) for packet in ctx.encode(frame))


def gateway_decoded(ulaw: bytes) -> bytes:
    """μ-law appends of 20 ms (160 bytes) through the gateway's decoder, back to 16 kHz PCM."""
    decoder = InputAudioDecoder("audio/pcmu")
    frames = [frame for i in range(0, len(ulaw), 160) for frame in decoder.decode(ulaw[i : i + 160])]
    return b"".join(frames + decoder.flush())


def make_utterances(workdir: Path, plan: Sequence[Planned]) -> list[Utterance]:
    """One utterance per (sentence, voice, conditions) of `plan`."""
    utterances = []
    for i, (text, (engine, voice), conditions) in enumerate(plan):
        pcm = padded(synthesize(text, engine, voice, workdir / f"{i}.wav"), seed=2 * i)
        audio = {}
        for condition in conditions:
            audio[condition] = pcm if condition == "16k" else gateway_decoded(mulaw_8k(pcm))
        utterances.append(Utterance(text, f"{engine}/{voice}", audio))
    return utterances
