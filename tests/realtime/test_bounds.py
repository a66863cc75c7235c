"""Every queue between the pipeline and the listener is bounded, and says what happens at its bound."""

from __future__ import annotations

import asyncio
from typing import Any

from media_gateway.pipeline.messages import PipelineAudio, PipelineEvent
from media_gateway.realtime.dispatcher import (
    AUDIO_DROPPED,
    MAX_AUDIO_MESSAGES,
    MAX_EVENT_MESSAGES,
    SessionInbox,
)
from media_gateway.realtime.playout import MAX_QUEUED_AUDIO_SECONDS, DeltaPlayout
from media_gateway.transports.webrtc.outbound import MAX_QUEUED_FRAMES, PacedAudioTrack

SECOND_16K = bytes(32_000)


def audio(response_id: str) -> PipelineAudio:
    return PipelineAudio("sess_1", bytes(6400), 16_000, {"response_id": response_id})


def event(n: int) -> PipelineEvent:
    return PipelineEvent("sess_1", "response.text.delta", {"response_id": "resp_a", "delta": str(n)})


async def test_session_inbox_drops_audio_at_its_bound_and_says_so_once_per_response() -> None:
    inbox = SessionInbox()
    for _ in range(MAX_AUDIO_MESSAGES + 10):
        inbox.offer(audio("resp_a"))
    inbox.offer(audio("resp_b"))
    assert inbox.dropped_audio == 11
    messages = [await inbox.get() for _ in range(len(inbox))]
    markers = [m for m in messages if isinstance(m, PipelineEvent)]
    assert [(m.type, m.data["response_id"]) for m in markers] == [
        (AUDIO_DROPPED, "resp_a"),
        (AUDIO_DROPPED, "resp_b"),
    ]
    assert sum(isinstance(m, PipelineAudio) for m in messages) == MAX_AUDIO_MESSAGES


async def test_session_inbox_never_drops_a_control_event_it_overflows_instead() -> None:
    inbox = SessionInbox()
    for n in range(MAX_EVENT_MESSAGES):
        inbox.offer(event(n))
    received = [await inbox.get() for _ in range(MAX_EVENT_MESSAGES)]
    assert [m.data["delta"] for m in received if m is not None] == [str(n) for n in range(MAX_EVENT_MESSAGES)]
    for n in range(MAX_EVENT_MESSAGES + 1):
        inbox.offer(event(n))
    assert inbox.overflowed
    assert await inbox.get() is None  # the consumer ends the session rather than lose an event


async def test_delta_playout_refuses_audio_past_its_bound() -> None:
    sent: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        sent.append(event)

    playout = DeltaPlayout({"type": "audio/pcmu"}, emit, response_id="resp_a", item_id="item_a")
    try:
        for _ in range(int(MAX_QUEUED_AUDIO_SECONDS) + 1):
            assert playout.play(SECOND_16K, 16_000)
        assert not playout.play(SECOND_16K, 16_000)
        assert playout.queued_ms >= MAX_QUEUED_AUDIO_SECONDS * 1000
    finally:
        playout.stop()
        await asyncio.sleep(0)


async def test_paced_track_refuses_audio_past_its_bound() -> None:
    track = PacedAudioTrack()
    try:
        while len(track._queue) < MAX_QUEUED_FRAMES:  # the bound itself is the subject
            assert track.play("resp_a", SECOND_16K * 10, 16_000)
        assert not track.play("resp_a", SECOND_16K, 16_000)
        assert not track.play("resp_b", SECOND_16K, 16_000)
    finally:
        track.stop()
