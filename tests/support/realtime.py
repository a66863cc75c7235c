"""A raw realtime WebSocket client for tests: every frame it receives passes the conformance gate."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from openai import AsyncOpenAI

from media_gateway.codecs.resample import G711Encoder, PcmResampler
from tests.speech.audio import padded, spoken
from tests.support.conformance import GATE


class RealtimeClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def send_raw(self, data: str) -> None:
        await self.ws.send_str(data)

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:  # noqa: ASYNC109
        message = await self.ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"expected a text frame, got {message.type!r} ({message.data!r})")
        event = GATE.check(message.data)
        self.events.append(event)
        return event

    async def wait_for(self, event_type: str, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Receive until an event of `event_type` arrives (events before it stay in `events`)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no {event_type} within {timeout} s; got {[e['type'] for e in self.events]}"
                )
            event = await self.recv(timeout=remaining)
            if event["type"] == event_type:
                return event

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]

    async def append_audio(
        self, encoded: bytes, chunk_bytes: int, *, realtime: bool = False, chunk_ms: int = 20
    ) -> None:
        for start in range(0, len(encoded), chunk_bytes):
            chunk = encoded[start : start + chunk_bytes]
            await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})
            if realtime:
                await asyncio.sleep(chunk_ms / 1000)


def pcm24k(pcm16k: bytes) -> bytes:
    """16 kHz speech as the `audio/pcm` input format (24 kHz s16le)."""
    resampler = PcmResampler(16_000, 24_000)
    return resampler.push(pcm16k) + resampler.flush()


def pcmu8k(pcm16k: bytes) -> bytes:
    """16 kHz speech as a telephony bridge sends it: G.711 μ-law at 8 kHz."""
    resampler = PcmResampler(16_000, 8_000)
    pcm8k = resampler.push(pcm16k) + resampler.flush()
    return G711Encoder("pcm_mulaw").encode(pcm8k)


@asynccontextmanager
async def connect(
    base_url: str, credential: str, query: str = "?model=gpt-realtime", *, subprotocol: bool = False
) -> AsyncIterator[RealtimeClient]:
    url = base_url.replace("http://", "ws://") + "/v1/realtime" + query
    headers: dict[str, str] = {}
    protocols: tuple[str, ...] = ()
    if subprotocol:
        protocols = ("realtime", f"openai-insecure-api-key.{credential}")
    else:
        headers["Authorization"] = f"Bearer {credential}"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=headers, protocols=protocols, max_msg_size=64 * 1024 * 1024) as ws,
    ):
        yield RealtimeClient(ws)


async def sdk_spoken_turn(
    base_url: str, key: str, sentence: str, session: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One spoken turn with the official `openai` SDK, pointed at the gateway by URL only: a session.update
    (input transcription, plus `session`), the sentence appended as 24 kHz PCM in 100 ms chunks, then events
    until response.done. Every event it got, each validated by the conformance gate (the SDK itself does
    not validate what it receives)."""
    ws_base = base_url.replace("http://", "ws://") + "/v1"
    client = AsyncOpenAI(api_key=key, base_url=f"{base_url}/v1", websocket_base_url=ws_base)
    events: list[dict[str, Any]] = []

    async def receive_until(event_type: str) -> dict[str, Any]:
        while True:
            event = GATE.check(await asyncio.wait_for(connection.recv_bytes(), 60))
            events.append(event)
            if event["type"] == event_type:
                return event

    update = {"type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}}
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await receive_until("session.created")
        await connection.session.update(session={**update, **(session or {})})
        await receive_until("session.updated")
        audio = pcm24k(padded(spoken(sentence)))
        for start in range(0, len(audio), 4800):
            await connection.input_audio_buffer.append(
                audio=base64.b64encode(audio[start : start + 4800]).decode()
            )
        await receive_until("response.done")
    await client.close()
    return events
