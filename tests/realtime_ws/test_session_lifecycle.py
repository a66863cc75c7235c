"""A session's life beyond one turn: transcription-only sessions, reconnecting with the same client
secret, closing mid-response, replies the pipeline starts by itself, and the time zone of answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from media_gateway.app_keys import BUS, ENGINE, SESSIONS
from media_gateway.pipeline.messages import audio_headers, event_payload
from tests.conftest import Gateway, GatewayFactory
from tests.http.test_client_secrets import mint
from tests.speech.audio import padded, spoken, spoken_clock, word_errors, words
from tests.support.realtime import RealtimeClient, connect, pcm24k


def user_text(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        **extra,
    }


async def wait_status(gateway: Gateway, session_id: str, status: str) -> None:
    for _ in range(100):
        record = await gateway.repositories.sessions.get(session_id)
        if record is not None and record.status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {session_id} never became {status}")


# --- transcription sessions -----------------------------------------------------------------------


async def test_a_transcription_session_transcribes_and_never_responds(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    sentence = "please turn on the kitchen lights"
    async with connect(gateway.base_url, key, "?intent=transcription") as client:
        created = await client.recv()
        assert created["session"]["type"] == "transcription"
        await client.append_audio(pcm24k(padded(spoken(sentence))), 960)
        completed = await client.wait_for("conversation.item.input_audio_transcription.completed", 60)
        assert word_errors(sentence, completed["transcript"]) / len(words(sentence)) <= 0.34
        with pytest.raises(TimeoutError):
            await client.wait_for("response.created", timeout=5)
        assert not [event for event in client.events if event["type"].startswith("response.")]
        await client.send({"type": "response.create", "event_id": "rc_transcribe"})
        error = await client.wait_for("error")
        assert error["error"]["event_id"] == "rc_transcribe"
        assert error["error"]["code"] == "invalid_session_type"
        assert "response.create" in error["error"]["message"]  # releases the Agents SDKs' sequencers


# --- reconnecting ---------------------------------------------------------------------------------


async def added_item(client: RealtimeClient, event: dict[str, Any]) -> str:
    await client.send(event)
    done = await client.wait_for("conversation.item.done")
    return str(done["item"]["id"])


async def test_reconnecting_with_the_same_secret_keeps_the_conversation_in_order(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    minted = await (await mint(gateway, key)).json()
    secret, session_id = minted["value"], minted["session"]["id"]
    async with connect(gateway.base_url, secret) as client:
        await client.recv()
        fox = await added_item(client, user_text("repeat after me the quick brown fox"))
        first = await added_item(
            client,
            {
                "type": "conversation.item.create",
                "previous_item_id": "root",
                "item": {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": "you repeat things"}],
                },
            },
        )
        between = await added_item(
            client,
            {
                "type": "conversation.item.create",
                "previous_item_id": first,
                "item": {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "ready"}],
                },
            },
        )
    live_order = [first, between, fox]
    await wait_status(gateway, session_id, "closed")

    async with connect(gateway.base_url, secret) as client:
        assert (await client.recv())["session"]["id"] == session_id
        for item_id in live_order:
            await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
            retrieved = await client.wait_for("conversation.item.retrieved")
            assert retrieved["item"]["id"] == item_id
        session = gateway.app[SESSIONS].get(session_id)
        assert session is not None
        assert [item["id"] for item in session.conversation.items] == live_order
        stored = await gateway.repositories.items.list_for_session(session_id)
        assert [item.id for item in stored] == live_order
        # The next response answers the last user message, which the first connection created.
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        done = await client.wait_for("response.done", timeout=60)
        assert done["response"]["output"][0]["content"][0]["text"] == "the quick brown fox"


# --- closing mid-response -------------------------------------------------------------------------

LONG_REPLY = "tell me a story"  # the example skill's twelve sentences


async def assistant_item_status(gateway: Gateway, item_id: str) -> str:
    record = await gateway.repositories.items.get(item_id)
    assert record is not None
    return record.status


@pytest.mark.parametrize("close_after_seconds", [0.0, 2.5])
async def test_a_session_closed_mid_response_stores_its_item_incomplete(
    gateway: Gateway, close_after_seconds: float
) -> None:
    """Closed while the pipeline still speaks (0 s), and while only paced delivery remains (2.5 s: the
    pipeline has finished synthesising, the audio drain is running)."""
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(user_text(LONG_REPLY))
        await client.wait_for("conversation.item.done")
        await client.send({"type": "response.create"})
        added = await client.wait_for("response.output_item.added")
        await client.wait_for("response.output_audio.delta", timeout=30)
        await asyncio.sleep(close_after_seconds)
        assert not client.of_type("response.done")
    item_id = added["item"]["id"]
    for _ in range(100):
        if await assistant_item_status(gateway, item_id) != "in_progress":
            break
        await asyncio.sleep(0.05)
    assert await assistant_item_status(gateway, item_id) == "incomplete"
    await asyncio.sleep(3.0)  # nothing left running may complete it after the close
    assert await assistant_item_status(gateway, item_id) == "incomplete"


# --- replies the pipeline starts by itself ----------------------------------------------------------------


async def pipeline_says(gateway: Gateway, session_id: str, response_id: str, text: str) -> None:
    """What a pipeline publishes when it speaks unprompted (an OVOS timer going off, a reminder)."""
    bus = gateway.app[BUS]
    topic = gateway.app[ENGINE].reply_topic
    for event_type, fields in (
        ("response.started", {}),
        ("response.text.delta", {"delta": text}),
    ):
        payload, headers = event_payload(event_type, response_id=response_id, **fields)
        await bus.publish(topic, session_id, payload, headers)
    tone = (np.sin(np.arange(16_000) * 2 * np.pi * 440 / 16_000) * 8000).astype(np.int16).tobytes()
    await bus.publish(topic, session_id, tone, audio_headers(response_id=response_id, seq="0"))
    payload, headers = event_payload("response.done", response_id=response_id, status="completed", message="")
    await bus.publish(topic, session_id, payload, headers)


async def test_a_reply_nobody_asked_for_arrives_as_a_whole_response(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        session_id = (await client.recv())["session"]["id"]
        await pipeline_says(gateway, session_id, "resp_timer_1", "Your timer is done.")
        done = await client.wait_for("response.done")
        assert done["response"]["id"] == "resp_timer_1"
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Your timer is done."
        assert [e["response_id"] for e in client.of_type("response.output_audio.delta")] != []
        assert client.of_type("response.created")[0]["response"]["id"] == "resp_timer_1"


async def test_a_reply_nobody_asked_for_waits_for_the_response_in_progress(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        session_id = (await client.recv())["session"]["id"]
        await client.send(user_text("repeat after me one two three four five six seven eight"))
        await client.wait_for("conversation.item.done")
        await client.send({"type": "response.create"})
        first = await client.wait_for("response.created")
        await pipeline_says(gateway, session_id, "resp_reminder_1", "Remember the milk.")
        await client.wait_for("response.done")
        second = await client.wait_for("response.done")
        assert second["response"]["id"] == "resp_reminder_1"
        created = [e["response"]["id"] for e in client.of_type("response.created")]
        assert created == [first["response"]["id"], "resp_reminder_1"]
        done_types = [e["type"] for e in client.events if e["type"] in ("response.created", "response.done")]
        assert done_types == ["response.created", "response.done", "response.created", "response.done"]


# --- what the session tells the pipeline --------------------------------------------------------------------


async def test_answers_about_the_time_use_the_gateway_time_zone(gateway_factory: GatewayFactory) -> None:
    zone = ZoneInfo("Asia/Kathmandu")  # UTC+05:45: hour and minute both differ from UTC's
    gateway = await gateway_factory(timezone="Asia/Kathmandu")
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(user_text("what time is it"))
        await client.wait_for("conversation.item.done")
        before = datetime.now(UTC).astimezone(zone)
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        done = await client.wait_for("response.done", timeout=60)
        after = datetime.now(UTC).astimezone(zone)
    told = spoken_clock(done["response"]["output"][0]["content"][0]["text"])
    assert told in {(t.hour % 12 or 12, t.minute) for t in (before, after)}
