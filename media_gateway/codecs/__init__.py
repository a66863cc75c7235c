"""Audio codecs and conversions: Opus via PyAV, G.711, resampling and PCM framing."""
