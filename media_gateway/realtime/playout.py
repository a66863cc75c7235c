"""Where a response's audio goes, and how much of it the listener has: the engine's output seam.

Two kinds of transport deliver audio differently:

* On a WebSocket the *client* plays the audio: the engine sends `response.output_audio.delta` events
  (`DeltaPlayout`, paced at real time plus a small lead) and the client reports what it played with
  `conversation.item.truncate`. "Delivered" is what was sent.
* On WebRTC (and phone transports) the *server* plays the audio on its own paced track: the transport
  hands the engine an `AudioSink`. The engine queues each response's PCM there, says when a response's
  audio is complete (`finish`), and the sink reports when playout of a response starts and stops and how
  much of it has actually been played (what truncation must use). `SinkPlayout` adapts a sink to one
  response.

A `Response` sees only `ResponsePlayout`, so it does not know which transport it runs on.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from media_gateway.codecs import OutputAudioEncoder
from media_gateway.realtime import server_events as ev

Emit = Callable[[dict[str, Any]], Awaitable[None]]

AUDIO_LEAD_SECONDS = 0.5  # how far ahead of real time deltas may be sent
# The most audio one response may hold unsent: the pipeline synthesises faster than real time, so a long
# reply queues up here. Past it `play()` refuses and the response ends as failed (never a silent cut).
MAX_QUEUED_AUDIO_SECONDS = 600.0


class PlayoutListener(Protocol):
    """Implemented by the engine; a sink calls it from its playout task."""

    def playout_started(self, response_id: str) -> None: ...
    def playout_stopped(self, response_id: str) -> None: ...


class AudioSink(Protocol):
    """Implemented by a transport with its own paced audio track."""

    def set_listener(self, listener: PlayoutListener) -> None:
        """Register who is told when a response's audio starts and stops playing."""
        ...

    def play(self, response_id: str, pcm: bytes, sample_rate: int) -> bool:
        """Queue mono s16le PCM of one response for playout (any rate; the sink converts). Returns False,
        queueing nothing, when the sink already holds its maximum of unplayed audio."""
        ...

    def finish(self, response_id: str) -> None:
        """No more audio will come for this response: when its queue drains, report playout_stopped."""
        ...

    def flush(self, response_id: str) -> None:
        """The audio so far ends a spoken passage: play all of it now (a last partial frame padded with
        silence) instead of holding a remainder back for audio that may never come before the listener
        is expected to have heard the passage (a skill waiting for its speech to end)."""
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


class ResponsePlayout(Protocol):
    """One response's audio output, as the response sees it."""

    server_owned: bool
    """True when the server plays the audio (a sink): playout outlives `response.done`."""

    def play(self, pcm: bytes, sample_rate: int) -> bool:
        """Queue PCM; False when the output's bound is reached (nothing was queued)."""
        ...

    def finish(self) -> None:
        """No more audio comes."""
        ...

    def end_passage(self) -> None:
        """The audio so far is a whole spoken passage: none of it waits for more (`AudioSink.flush`)."""
        ...

    async def drained(self) -> None:
        """Return once everything queued has been delivered (sent, or handed to the sink)."""
        ...

    def stop(self) -> None:
        """Deliver nothing more (cancel, failure, close)."""
        ...

    @property
    def delivered_ms(self) -> int:
        """Audio the listener has: sent as deltas, or actually played out by the sink."""
        ...

    @property
    def queued_ms(self) -> int:
        """All audio queued so far, delivered or not."""
        ...

    @property
    def played_ms(self) -> int:
        """Audio the listener has played by now (what a spoken passage's end is checked against)."""
        ...


class SinkPlayout:
    """A transport's `AudioSink`, for one response."""

    server_owned = True

    def __init__(self, sink: AudioSink, response_id: str) -> None:
        self._sink = sink
        self._id = response_id
        self._stopped = False

    def play(self, pcm: bytes, sample_rate: int) -> bool:
        return self._stopped or self._sink.play(self._id, pcm, sample_rate)

    def finish(self) -> None:
        if not self._stopped:
            self._sink.finish(self._id)

    def end_passage(self) -> None:
        if not self._stopped:
            self._sink.flush(self._id)

    async def drained(self) -> None:
        # The sink has everything once `play()` returned: its own track paces it from here, and reports
        # the end with `playout_stopped`, after `response.done` (as upstream's WebRTC sessions do).
        return None

    def stop(self) -> None:
        self._stopped = True

    @property
    def delivered_ms(self) -> int:
        return self._sink.played_ms(self._id)

    @property
    def queued_ms(self) -> int:
        return self._sink.queued_ms(self._id)

    @property
    def played_ms(self) -> int:
        return self._sink.played_ms(self._id)


class DeltaPlayout:
    """`response.output_audio.delta` events in the session's output format, paced by a task it owns.

    Pacing is what makes "the audio actually delivered" meaningful on barge-in: a stopped playout sends
    nothing more, and the item is truncated at what was sent.

    The client plays what it receives in real time, so its playhead is estimated from the send times: it
    advances with the wall clock from the first delta and waits whenever the client ran out of audio (a
    slow synthesis between two sentences), never passing what was sent.
    """

    server_owned = False

    def __init__(self, output_format: dict[str, Any], emit: Emit, *, response_id: str, item_id: str) -> None:
        self._encoder = OutputAudioEncoder(output_format)
        self._emit = emit
        self._response_id = response_id
        self._item_id = item_id
        self._chunks: deque[bytes] = deque()
        self._queued_chunk_ms = 0.0
        self._wake = asyncio.Event()
        self._finished = False
        self._sent_ms = 0.0
        self._encoded_ms = 0.0
        self._started_at = time.monotonic()
        # The client's playhead was at `_anchor_ms` of the response's audio at `_anchor_at`.
        self._anchor_ms = 0.0
        self._anchor_at: float | None = None
        self._task = asyncio.create_task(self._send(), name=f"audio-out:{response_id}")

    def play(self, pcm: bytes, sample_rate: int) -> bool:
        if self._finished or self._task.done():
            return True
        if self._queued_chunk_ms / 1000 >= MAX_QUEUED_AUDIO_SECONDS:
            return False
        self._queue(self._encoder.encode(pcm, sample_rate))
        return True

    def _queue(self, encoded: bytes) -> None:
        if encoded:
            duration = self._encoder.duration_ms(encoded)
            self._chunks.append(encoded)
            self._queued_chunk_ms += duration
            self._encoded_ms += duration
            self._wake.set()

    def finish(self) -> None:
        if not self._finished:
            self._queue(self._encoder.flush())
            self._finished = True
            self._wake.set()

    def end_passage(self) -> None:
        if not self._finished:
            self._queue(self._encoder.flush())

    async def drained(self) -> None:
        self.finish()
        # wait() neither raises the sender's cancellation nor swallows ours: a caller cancelled while
        # waiting stops here instead of going on to complete the response.
        await asyncio.wait([self._task])

    def stop(self) -> None:
        self._finished = True
        self._chunks.clear()
        self._task.cancel()

    @property
    def delivered_ms(self) -> int:
        return int(self._sent_ms)

    @property
    def queued_ms(self) -> int:
        return int(self._encoded_ms)

    @property
    def played_ms(self) -> int:
        return int(self._playhead(time.monotonic()))

    def _playhead(self, now: float) -> float:
        if self._anchor_at is None:
            return 0.0
        return min(self._sent_ms, self._anchor_ms + (now - self._anchor_at) * 1000)

    async def _send(self) -> None:
        while True:
            while not self._chunks:
                if self._finished:
                    return
                self._wake.clear()
                await self._wake.wait()
            chunk = self._chunks.popleft()
            duration = self._encoder.duration_ms(chunk)
            self._queued_chunk_ms -= duration
            # Never more than AUDIO_LEAD_SECONDS ahead of real time since the response began.
            ahead = self._sent_ms / 1000 - (time.monotonic() - self._started_at) - AUDIO_LEAD_SECONDS
            if ahead > 0:
                await asyncio.sleep(ahead)
            await self._emit(
                ev.output_audio_delta(self._response_id, self._item_id, base64.b64encode(chunk).decode())
            )
            now = time.monotonic()
            if self._playhead(now) >= self._sent_ms:  # the client had played everything: it starts again now
                self._anchor_ms, self._anchor_at = self._sent_ms, now
            self._sent_ms += duration
