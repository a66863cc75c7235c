"""A full spoken turn over WebRTC: speech on the audio track, events on `oai-events`, the reply on RTP."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway
from tests.speech.audio import padded, spoken, word_errors, words
from tests.webrtc.client import CallClient

TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_spoken_turn_over_webrtc(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    sentence = "what time is it"
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        assert client.location.startswith("/v1/realtime/calls/rtc_")
        created = await client.wait_for("session.created")
        assert client.events[0] is created
        client.send(
            {
                "type": "session.update",
                "event_id": "evt_update",
                "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}},
            }
        )
        await client.wait_for("session.updated")
        heard_before = len(client.received)
        client.track.say(padded(spoken(sentence)))
        started = await client.wait_for("input_audio_buffer.speech_started")
        stopped = await client.wait_for("input_audio_buffer.speech_stopped")
        assert started["item_id"] == stopped["item_id"]
        transcript = await client.wait_for("conversation.item.input_audio_transcription.completed")
        assert word_errors(sentence, transcript["transcript"]) / len(words(sentence)) <= 0.25
        done = await client.wait_for("response.done", timeout=60)
        response_id = done["response"]["id"]
        assert done["response"]["status"] == "completed"
        play_started = await client.wait_for("output_audio_buffer.started")
        play_stopped = await client.wait_for("output_audio_buffer.stopped", timeout=30)
        assert play_started["response_id"] == play_stopped["response_id"] == response_id
        types = [event["type"] for event in client.events]
        assert "response.output_audio.delta" not in types
        assert types.index("response.content_part.added") < types.index("output_audio_buffer.started")
        assert types.index("response.done") < types.index("output_audio_buffer.stopped")
        # The reply was heard on the inbound track: non-silent audio arrived.
        assert client.received_rms(heard_before) > 100
        record = await gateway.repositories.calls.get(client.call_id)
        assert record is not None
        assert record.status == "connected"
        items = await gateway.repositories.items.list_for_session(record.session_id)
        assert [item.role for item in items][:2] == ["user", "assistant"]
    finally:
        await client.close()
