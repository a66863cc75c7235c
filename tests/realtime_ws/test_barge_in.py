"""Barge-in over WebSocket: speech during a response cancels it, and the assistant item keeps only the
audio that was actually delivered."""

from __future__ import annotations

import base64

import pytest

from media_gateway.codecs import PCM24
from tests.conftest import Gateway
from tests.realtime_ws.test_turns import TRANSCRIBE
from tests.speech.audio import padded, spoken
from tests.support.realtime import connect, pcm24k


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_speaking_during_a_response_cancels_and_truncates_it(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}}}
        )
        await client.wait_for("session.updated")
        await client.append_audio(pcm24k(padded(spoken("what is the date today"))), 960)
        created = await client.wait_for("response.created", timeout=60)
        response_id = created["response"]["id"]
        first_delta = await client.wait_for("response.output_audio.delta", timeout=60)
        item_id = first_delta["item_id"]

        # The user talks over the reply.
        await client.append_audio(pcm24k(padded(spoken("stop please"), before_ms=200)), 960)
        started = await client.wait_for("input_audio_buffer.speech_started")
        done = await client.wait_for("response.done")
        assert done["response"]["id"] == response_id
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        assert done["response"]["output"][0]["status"] == "incomplete"
        types = [event["type"] for event in client.events]
        assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
        assert started["item_id"] != item_id

        delivered = sum(
            len(base64.b64decode(e["delta"]))
            for e in client.of_type("response.output_audio.delta")
            if e["response_id"] == response_id
        )
        delivered_ms = int(PCM24.duration_ms(delivered))
        # No audio of the cancelled response arrives after its response.done.
        after = types[types.index("response.done") :]
        assert all(
            e["response_id"] != response_id
            for e in client.events[len(types) - len(after) :]
            if e["type"] == "response.output_audio.delta"
        )
        # The client truncates at what it played; more than was delivered is refused.
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": delivered_ms + 1000,
                "event_id": "too_far",
            }
        )
        error = await client.wait_for("error")
        assert error["error"]["event_id"] == "too_far"
        played_ms = max(0, delivered_ms - 100)
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": played_ms,
            }
        )
        truncated = await client.wait_for("conversation.item.truncated")
        assert truncated["audio_end_ms"] == played_ms
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await client.wait_for("conversation.item.retrieved")
        assert retrieved["item"]["status"] == "incomplete"

        # The interrupting turn is answered normally.
        second = await client.wait_for("response.done", timeout=60)
        assert second["response"]["status"] == "completed"
