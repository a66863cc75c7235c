"""The playback position a media stream's marks give, including what a provider does that the Twilio
simulator of the other tests does not: Twilio echoes the marks a `clear` dropped, at once, and those echoes
are not playback."""

from __future__ import annotations

import json

import numpy as np

from media_gateway.transports.twilio.playout import MARK_MS, MarkedPlayout


class Listener:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    def playout_started(self, response_id: str) -> None:
        self.started.append(response_id)

    def playout_stopped(self, response_id: str) -> None:
        self.stopped.append(response_id)


def tone(ms: int) -> bytes:
    t = np.arange(16 * ms) / 16_000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()


def sent_marks(frames: list[str]) -> list[str]:
    return [json.loads(f)["mark"]["name"] for f in frames if json.loads(f)["event"] == "mark"]


def test_echoed_marks_are_the_position_and_a_clear_drops_the_rest() -> None:
    frames: list[str] = []
    pending: list[int] = []
    sink = MarkedPlayout(frames.append, "MZ1", marks=pending.append)
    listener = Listener()
    sink.set_listener(listener)

    assert sink.play("r1", tone(1000), 16_000)
    marks = sent_marks(frames)
    assert len(marks) == 1000 // MARK_MS - 1  # the last partial chunk waits for more audio or finish
    assert listener.started == ["r1"]
    for name in marks[:3]:
        sink.acknowledge(name)
    assert sink.played_ms("r1") == 3 * MARK_MS

    assert sink.clear() == "r1"
    assert json.loads(frames[-1]) == {"event": "clear", "streamSid": "MZ1"}
    for name in marks[3:]:  # what Twilio sends back after a clear: not playback
        sink.acknowledge(name)
    assert sink.played_ms("r1") == 3 * MARK_MS
    assert listener.stopped == []  # a cleared response is not reported stopped (the engine clears it)
    assert sum(pending) == 0  # every pending mark accounted for
    assert sink.clear() is None  # nothing left to clear


def test_finish_reports_stopped_when_the_last_mark_comes_back() -> None:
    frames: list[str] = []
    sink = MarkedPlayout(frames.append, "MZ2")
    listener = Listener()
    sink.set_listener(listener)
    sink.play("r1", tone(250), 16_000)
    sink.finish("r1")
    marks = sent_marks(frames)
    assert sink.queued_ms("r1") == 250
    for name in marks[:-1]:
        sink.acknowledge(name)
    assert listener.stopped == []
    sink.acknowledge(marks[-1])
    assert listener.stopped == ["r1"]
    assert sink.played_ms("r1") == 250
    # A response with no audio at all is over at once.
    sink.finish("r2")
    assert listener.stopped == ["r1", "r2"]
