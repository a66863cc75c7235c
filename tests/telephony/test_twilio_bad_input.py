"""Media streams that are not what Twilio sends, from a raw WebSocket client: each is refused or dropped
clearly (Twilio has no error channel: close codes and logs), and the gateway goes on serving calls."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

import aiohttp
import pytest

from media_gateway.app_keys import SESSIONS
from media_gateway.codecs import OutputAudioEncoder
from tests.conftest import Gateway
from tests.http.test_client_secrets import mint
from tests.speech.audio import padded, spoken
from tests.support.deployment import metrics

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def start_frame(token: str | None, encoding: str = "audio/x-mulaw") -> str:
    parameters = {"token": token} if token is not None else {}
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ" + secrets.token_hex(16),
            "start": {
                "streamSid": "MZ" + secrets.token_hex(16),
                "accountSid": "AC" + secrets.token_hex(16),
                "callSid": "CA" + secrets.token_hex(16),
                "tracks": ["inbound"],
                "customParameters": parameters,
                "mediaFormat": {"encoding": encoding, "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media_frames(pcm16k: bytes) -> list[str]:
    encoder = OutputAudioEncoder({"type": "audio/pcmu"})
    mulaw = encoder.encode(pcm16k, 16_000) + encoder.flush()
    return [
        json.dumps(
            {"event": "media", "media": {"track": "inbound", "payload": base64.b64encode(chunk).decode()}}
        )
        for chunk in (mulaw[i : i + 160] for i in range(0, len(mulaw), 160))
    ]


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    async with asyncio.timeout(15):
        async for _ in ws:
            pass
    return ws.close_code


async def refused_count(gateway: Gateway) -> float:
    return (await metrics(gateway.base_url)).get(
        ("gateway_telephony_calls_total", (("outcome", "refused"), ("transport", "twilio"))), 0.0
    )


def url(gateway: Gateway) -> str:
    return gateway.base_url.replace("http://", "ws://") + "/v1/telephony/twilio"


@pytest.mark.parametrize(
    ("case", "token", "encoding", "code"),
    [
        ("no token", None, "audio/x-mulaw", 1008),
        ("a forged client secret", "ek_" + secrets.token_urlsafe(24), "audio/x-mulaw", 1008),
        ("a-law audio", "valid", "audio/x-alaw", 1003),
    ],
)
async def test_a_stream_that_cannot_be_a_call_is_closed(
    gateway: Gateway, case: str, token: str | None, encoding: str, code: int
) -> None:
    key = await gateway.create_api_key()
    if token == "valid":
        token = (await (await mint(gateway, key)).json())["value"]
    before = await refused_count(gateway)
    async with aiohttp.ClientSession() as http, http.ws_connect(url(gateway)) as ws:
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send_str(start_frame(token, encoding))
        assert await closed_with(ws) == code, case
    assert await refused_count(gateway) == before + 1
    assert len(gateway.app[SESSIONS]) == 0  # no session was opened


async def test_garbage_instead_of_a_stream_is_closed(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url(gateway)) as ws:
        for n in range(25):
            await ws.send_str("not json" if n % 2 else '{"event": "media", "media": {"payload": "%%%"}}')
        assert await closed_with(ws) == 1008


async def test_garbage_during_a_call_is_dropped_and_the_call_goes_on(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    token = (await (await mint(gateway, key)).json())["value"]
    speech = media_frames(padded(spoken("hello world"), before_ms=300, after_ms=1500))
    async with aiohttp.ClientSession() as http, http.ws_connect(url(gateway)) as ws:
        await ws.send_str(start_frame(token))
        for bad in (
            "not json",
            json.dumps({"event": "media", "media": {"payload": "@@not base64@@"}}),
            json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}),
            json.dumps({"event": "mark"}),
            json.dumps({"event": "something new", "x": 1}),
        ):
            await ws.send_str(bad)
        await ws.send_bytes(b"\x00\x01binary")
        for frame in speech:
            await ws.send_str(frame)
            await asyncio.sleep(0.002)
        replies: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not any(r["event"] == "mark" for r in replies):
                message = await ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT, message
                replies.append(json.loads(message.data))
        await ws.send_str(json.dumps({"event": "stop", "stop": {}}))
        assert await closed_with(ws) is not None
    assert any(r["event"] == "media" for r in replies)  # the reply was spoken on the stream
    samples = await metrics(gateway.base_url)
    assert samples[("gateway_telephony_bad_frames_total", (("transport", "twilio"),))] >= 4
    assert samples[("gateway_telephony_calls_total", (("outcome", "ended"), ("transport", "twilio")))] >= 1
