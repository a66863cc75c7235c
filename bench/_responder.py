"""The benches' stand-in for the speech pipeline, on the gateway's own bus: every `response.create` is
answered with `response_seconds` of synthetic voiced audio (16 kHz, 20 ms chunks published at real time),
then `response.done`; `response.cancel` and `session.close` stop the session's stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bench._webrtc_tracks import voiced

if TYPE_CHECKING:
    from media_gateway.pipeline.bus import Bus


@contextlib.asynccontextmanager
async def voiced_responder(bus: Bus, response_seconds: float) -> AsyncIterator[None]:
    """Answer on `bus` while the context is open."""
    from media_gateway.pipeline.messages import INPUT_TOPIC, REPLY_TO_HEADER, audio_headers, event_payload

    subscription = await bus.subscribe(INPUT_TOPIC)
    streams: dict[str, asyncio.Task[None]] = {}
    chunk = voiced(response_seconds)

    async def stream(reply_to: str, session_id: str, response_id: str) -> None:
        start = time.perf_counter()
        for seq, offset in enumerate(range(0, len(chunk), 640)):
            delay = start + seq * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = audio_headers(16_000, response_id=response_id, seq=str(seq))
            await bus.publish(reply_to, session_id, chunk[offset : offset + 640], headers)
        payload, headers = event_payload("response.done", response_id=response_id, status="completed")
        await bus.publish(reply_to, session_id, payload, headers)

    async def run() -> None:
        async for message in subscription:
            if message.headers.get("kind") != "event":
                continue
            event = json.loads(message.payload)
            reply_to = message.headers[REPLY_TO_HEADER]
            if event["type"] == "response.create":
                task = asyncio.create_task(stream(reply_to, message.key, event["response_id"]))
                streams[message.key] = task
            elif event["type"] in ("response.cancel", "session.close"):
                running = streams.pop(message.key, None)
                if running is not None:
                    running.cancel()
                if event["type"] == "response.cancel":
                    payload, headers = event_payload(
                        "response.done", response_id=event["response_id"], status="cancelled"
                    )
                    await bus.publish(reply_to, message.key, payload, headers)

    runner = asyncio.create_task(run())
    try:
        yield
    finally:
        runner.cancel()
        for task in streams.values():
            task.cancel()
