"""Audio codecs and conversions: Opus via PyAV, G.711, resampling and PCM framing."""

from media_gateway.codecs.formats import PCM24, PCMA, PCMU, AudioFormat, AudioFormatError, chunk_audio
from media_gateway.codecs.frames import FrameResampler, PlaybackFramer
from media_gateway.codecs.resample import PcmResampler
from media_gateway.codecs.stream import InputAudioDecoder, OutputAudioEncoder

__all__ = [
    "PCM24",
    "PCMA",
    "PCMU",
    "AudioFormat",
    "AudioFormatError",
    "FrameResampler",
    "InputAudioDecoder",
    "OutputAudioEncoder",
    "PcmResampler",
    "PlaybackFramer",
    "chunk_audio",
]
