"""Turn latency of `bench.ws_sessions` with the in-process pipeline: sessions speak in real time over the
WebSocket and time the events that follow the end of their speech."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp

from bench import _gateway, _load
from bench._audio import Audio, append_json, chunked, noise


@dataclass
class Turn:
    stopped: float | None = None
    transcribed: float | None = None
    first_delta: float | None = None


@dataclass
class _LatencySession:
    ws: aiohttp.ClientWebSocketResponse
    events: list[tuple[float, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _latency_session(url: str, key: str, audio: Audio, turns: int, delay: float) -> list[Turn]:
    await asyncio.sleep(delay)
    speech = [append_json(c) for c in chunked(audio.latency_speech)]
    quiet = [append_json(c) for c in chunked(noise(2000, 7))]
    results: list[Turn] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}, max_msg_size=64 * 1024 * 1024) as ws,
    ):
        session = _LatencySession(ws)

        async def receive() -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                kind = json.loads(message.data)["type"]
                session.events.append((time.monotonic(), kind))
                if kind in ("response.done", "session.updated"):
                    session.done.set()

        receiver = asyncio.create_task(receive())
        update = {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "realtime", **update}}))
        await asyncio.wait_for(session.done.wait(), 10)
        deadline = time.monotonic()
        quiet_index = 0

        async def send(text: str) -> None:
            nonlocal deadline
            now = time.monotonic()
            if deadline > now:
                await asyncio.sleep(deadline - now)
            await ws.send_str(text)
            deadline += _load.PERIOD

        async def send_quiet() -> None:
            nonlocal quiet_index
            await send(quiet[quiet_index % len(quiet)])
            quiet_index += 1

        for _ in range(turns):
            for _ in range(25):  # 500 ms of quiet before the speech
                await send_quiet()
            session.done.clear()
            mark = len(session.events)
            end_of_speech = 0.0
            for index, text in enumerate(speech):
                await send(text)
                if index == audio.latency_last_chunk:
                    end_of_speech = time.monotonic()
            give_up = time.monotonic() + 20
            while not session.done.is_set() and time.monotonic() < give_up:
                await send_quiet()
            for _ in range(10):  # 200 ms more quiet
                await send_quiet()
            turn = Turn()
            for t, kind in session.events[mark:]:
                if kind == "input_audio_buffer.speech_stopped" and turn.stopped is None:
                    turn.stopped = t - end_of_speech
                elif (
                    kind == "conversation.item.input_audio_transcription.completed"
                    and turn.transcribed is None
                ):
                    turn.transcribed = t - end_of_speech
                elif kind == "response.output_audio.delta" and turn.first_delta is None:
                    turn.first_delta = t - end_of_speech
            results.append(turn)
        receiver.cancel()
    return results


async def measure_latency(server: _gateway.Server, audio: Audio, sessions: int, turns: int) -> list[Turn]:
    batches = await asyncio.gather(
        *(
            _latency_session(server.ws_url, server.keys[0], audio, turns, delay=i * 0.8)
            for i in range(sessions)
        )
    )
    return [turn for batch in batches for turn in batch]
