"""The seam for transports that own audio playout (WebRTC, and later SIP).

On a WebSocket the client plays the audio: the engine sends `response.output_audio.delta` events and the
client reports what it played with `conversation.item.truncate`. On WebRTC the *server* plays the audio
on an outgoing track, so the transport hands the engine an `AudioSink`: the engine queues each
response's PCM there instead of sending deltas, and the sink tells the engine when playout of a
response starts and stops, and how much of it has actually been played (what truncation must use).
"""

from __future__ import annotations

from typing import Protocol


class PlayoutListener(Protocol):
    """Implemented by the engine; the sink calls it from its playout task."""

    def playout_started(self, response_id: str) -> None: ...
    def playout_stopped(self, response_id: str) -> None: ...


class AudioSink(Protocol):
    """Implemented by a transport with its own paced audio track."""

    def set_listener(self, listener: PlayoutListener) -> None:
        """Register who is told when a response's audio starts and stops playing."""
        ...

    def play(self, response_id: str, pcm: bytes, sample_rate: int) -> None:
        """Queue mono s16le PCM of one response for playout (any rate; the sink converts)."""
        ...

    def finish(self, response_id: str) -> None:
        """No more audio will come for this response: when its queue drains, report playout_stopped."""
        ...

    def clear(self) -> str | None:
        """Drop all queued audio now. Returns the id of the response whose audio was playing or queued,
        or None when the sink was idle. Does not call playout_stopped for a cleared response."""
        ...

    def played_ms(self, response_id: str) -> int:
        """Milliseconds of this response's audio actually played out so far."""
        ...

    def queued_ms(self, response_id: str) -> int:
        """Milliseconds of this response's audio queued so far (played or not)."""
        ...
