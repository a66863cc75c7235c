"""ovos-media-gateway: an OpenAI Realtime API gateway backed by OpenVoiceOS speech infrastructure."""

__version__ = "0.1.0"
