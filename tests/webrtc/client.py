"""A real aiortc client peer for tests: sends PCM as a paced audio track, opens `oai-events`, records
the reply audio. Every data-channel event it receives passes the conformance gate."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame

from media_gateway.codecs.frames import PlaybackFramer
from tests.support.conformance import GATE

SILENCE_16K_FRAME = bytes(640)


class PcmTrack(MediaStreamTrack):
    """16 kHz mono PCM played as a 48 kHz audio track at real time; silence when nothing is queued."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._framer = PlaybackFramer(48_000, "mono")
        self._frames: list[AudioFrame] = []
        self._start: float | None = None
        self._count = 0
        self.silence = self._framer.push(bytes(640 * 3), 16_000)[0]

    def say(self, pcm16k: bytes) -> float:
        """Queue speech; returns its duration in seconds."""
        self._frames += self._framer.push(pcm16k, 16_000) + self._framer.flush()
        return len(pcm16k) / 32_000

    @property
    def pending(self) -> int:
        return len(self._frames)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * 0.02
        if due > now:
            await asyncio.sleep(due - now)
        frame = self._frames.pop(0) if self._frames else self.silence
        frame.pts = self._count * 960
        frame.time_base = Fraction(1, 48_000)
        self._count += 1
        return frame


class CallClient:
    def __init__(self, *, data_channel: bool = True, audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = PcmTrack()
        if audio:
            self.pc.addTrack(self.track)
        self.channel = self.pc.createDataChannel("oai-events") if data_channel else None
        self.events: list[dict[str, Any]] = []
        self._new_event = asyncio.Event()
        self.received = bytearray()  # inbound audio, 48 kHz mono s16 (left channel)
        self.opened = asyncio.Event()
        self.response: aiohttp.ClientResponse | None = None
        self.location = ""
        self._tasks: list[asyncio.Task[None]] = []
        if self.channel is not None:
            self.channel.on("open", self.opened.set)
            self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, message: str | bytes) -> None:
        assert isinstance(message, str), "the gateway sends events as text messages"
        self.events.append(GATE.check(message))
        self._new_event.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                samples = frame.to_ndarray().reshape(-1)
                channels = frame.layout.nb_channels
                self.received += samples[::channels].astype(np.int16).tobytes()

        self._tasks.append(asyncio.create_task(read()))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def connect(
        self,
        base_url: str,
        credential: str,
        *,
        path: str = "/v1/realtime/calls",
        timeout: float = 10,  # noqa: ASYNC109
    ) -> None:
        sdp = await self.offer()
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                base_url + path,
                data=sdp.encode(),
                headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/sdp"},
            )
            body = await response.text()
        assert response.status == 201, body
        assert response.content_type == "application/sdp"
        self.location = response.headers["Location"]
        self.response = response
        await self.accept(body)
        if self.channel is not None:
            await asyncio.wait_for(self.opened.wait(), timeout)

    @property
    def call_id(self) -> str:
        return self.location.rsplit("/", 1)[-1]

    def send(self, event: dict[str, Any]) -> None:
        assert self.channel is not None
        self.channel.send(json.dumps(event))

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]

    async def wait_for(
        self,
        event_type: str,
        timeout: float = 30.0,  # noqa: ASYNC109
        where: Callable[[dict[str, Any]], bool] = lambda event: True,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["type"] == event_type and where(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event_type} in {timeout} s; got {[e['type'] for e in self.events]}")
            self._new_event.clear()
            try:
                await asyncio.wait_for(self._new_event.wait(), remaining)
            except TimeoutError:
                continue

    def received_rms(self, since: int = 0) -> float:
        samples = np.frombuffer(bytes(self.received[since:]), dtype=np.int16).astype(np.float64)
        return float(np.sqrt((samples**2).mean())) if len(samples) else 0.0

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
