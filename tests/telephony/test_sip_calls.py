"""SIP calls into the gateway from real peers: sipp as the trunk (an INVITE with PCMU and telephone-events,
speech and RFC 4733 digits replayed from a pcap, BYE), following OpenAI's SIP flow. The test plays the
application: it receives the `realtime.call.incoming` webhook (verified with the official `openai` SDK),
decides the call with the SDK's `realtime.calls.accept/reject/refer/hangup`, and watches the session on a
sideband WebSocket (`?call_id=`). The RTP the gateway sends back is captured on the loopback interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent

from media_gateway.app_keys import SIP
from media_gateway.speech.tts import FliteSynthesizer
from tests.conftest import Gateway, GatewayFactory
from tests.speech.audio import spoken_clock, word_errors
from tests.support.realtime import connect
from tests.support.sip_audio import correlation, resample, rtp_audio, wav_to_pcmu_payloads
from tests.support.sip_pcap import dtmf_digits, write_rtp_pcap
from tests.support.sip_peers import RtpCapture, SippCaller
from tests.telephony.test_twilio import QUESTION, collect, of_type, wav_8k

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WEBHOOK_SECRET = "whsec_" + "dGVzdC13ZWJob29rLXNpZ25pbmcta2V5"
SESSION: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {"type": "server_vad"},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
        },
        "output": {"format": {"type": "audio/pcmu"}},
    },
}


@dataclass
class Application:
    """The developer's webhook endpoint: verifies each webhook with the SDK and queues its event."""

    url: str = ""
    events: asyncio.Queue[RealtimeCallIncomingWebhookEvent] = field(default_factory=asyncio.Queue)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = AsyncOpenAI(api_key="unused").webhooks.unwrap(
                body, dict(request.headers), secret=WEBHOOK_SECRET
            )
        except Exception:
            self.refused += 1
            return web.Response(status=400)
        assert isinstance(event, RealtimeCallIncomingWebhookEvent)
        await self.events.put(event)
        return web.Response(status=200)

    async def next_call(self, seconds: float = 10) -> RealtimeCallIncomingWebhookEvent:
        return await asyncio.wait_for(self.events.get(), seconds)


@pytest.fixture
async def application() -> AsyncIterator[Application]:
    app = Application()
    server = web.Application()
    server.router.add_post("/webhook", app.handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhook"  # type: ignore[union-attr]
    yield app
    await runner.cleanup()


@dataclass
class Line:
    gateway: Gateway
    key: str
    client: AsyncOpenAI

    @property
    def sip_port(self) -> int:
        return self.gateway.app[SIP].port


@pytest.fixture
async def line(gateway_factory: GatewayFactory, application: Application) -> AsyncIterator[Line]:
    gateway = await gateway_factory(
        sip_port=0,
        sip_webhook_url=application.url,
        sip_webhook_secret=WEBHOOK_SECRET,
    )
    key = await gateway.create_api_key()
    client = AsyncOpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0)
    yield Line(gateway, key, client)
    await client.close()


def speech_pcap(path: Path, wav: Path, caller: SippCaller, *, digits: str = "", silence_ms: int = 0) -> Path:
    payloads = wav_to_pcmu_payloads(wav) + [b"\xff" * 160] * (silence_ms // 20)
    write_rtp_pcap(path, payloads, digits=digits, src_port=caller.media_port, dst_port=40000)
    return path


async def watch(line: Line, call_id: str, events: list[dict[str, Any]]) -> None:
    async with connect(line.gateway.base_url, line.key, query=f"?call_id={call_id}") as client:
        await collect(client, events)


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_sipp_call_is_announced_accepted_answered_and_hears_its_digits(
    line: Line, application: Application, tmp_path: Path
) -> None:
    caller = SippCaller(
        workdir=tmp_path,
        port=line.sip_port,
        caller="+15551234",
        called="+15550100",
        headers={"X-Customer": "42", "Proxy-Authorization": "Digest username=alice, response=s3cr3tdigest"},
        pause_ms=14_000,
    )
    question = wav_8k(tmp_path / "question.wav", QUESTION)
    caller.pcap = speech_pcap(tmp_path / "call.pcap", question, caller, digits="1234#", silence_ms=6000)
    events: list[dict[str, Any]] = []
    async with RtpCapture(caller.media_port) as capture:
        call = asyncio.create_task(caller.run())
        incoming = await application.next_call()
        call_id = incoming.data.call_id
        headers = {h.name: h.value for h in incoming.data.sip_headers}
        await line.client.realtime.calls.accept(call_id, **SESSION)
        watcher = asyncio.create_task(watch(line, call_id, events))
        result = await call
        await until(lambda: watcher.done(), 10)
    packets = capture.packets

    assert result.exit_code == 0, result.log_tail
    # The webhook: the call id, the INVITE's headers, no credentials.
    assert headers["X-Customer"] == "42"
    assert "Proxy-Authorization" not in headers
    assert "+15551234" in headers["From"]
    # The session heard the question, answered it, and got the digits pressed after it.
    (heard,) = of_type(events, "conversation.item.input_audio_transcription.completed")
    assert word_errors(QUESTION, heard["transcript"]) == 0, heard["transcript"]
    done = of_type(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    reply = done["output"][0]["content"][0]["transcript"]
    assert spoken_clock(reply) is not None, reply
    assert [e["event"] for e in of_type(events, "input_audio_buffer.dtmf_event_received")] == list("1234#")
    # What came back on the line is that reply: PCMU from the gateway, flite's voice saying it.
    audio_packets = [p for p in packets if p.payload_type == 0]
    heard_audio = np.frombuffer(rtp_audio(audio_packets), dtype=np.int16).astype(np.float64)
    expected_pcm = FliteSynthesizer("slt").synthesize(reply)
    assert_contains_speech(heard_audio, expected_pcm)
    markers = sum(1 for p in audio_packets if p.marker)
    assert 1 <= markers <= 3  # one per talk spurt, not one per packet
    assert dtmf_digits(packets) == ""  # the gateway sends no digits back
    # BYE ended the call; its row has the outcome and the INVITE's headers, credentials redacted.
    await until(lambda: line.gateway.app[SIP].get(call_id) is None, 5)
    record = await line.gateway.repositories.calls.get(call_id)
    assert record is not None
    assert (record.status, record.meta["from"], record.meta["to"]) == ("ended", "+15551234", "+15550100")
    stored = {h["name"]: h["value"] for h in record.meta["sip_headers"]}
    assert stored["Proxy-Authorization"] == "[redacted]"
    assert "s3cr3tdigest" not in str(record.meta)
    print(f"\nsip: reply {reply!r}: {len(audio_packets)} RTP packets back, {markers} marked")


def assert_contains_speech(heard: np.ndarray[Any, np.dtype[np.float64]], expected_pcm: bytes) -> None:
    """The line carried the expected speech: as loud and as long, and the same waveform (at 8 kHz)."""
    expected_8k = resample(expected_pcm, 16_000, 8_000) if len(expected_pcm) else b""
    voiced = heard[np.abs(heard) > 200]
    assert len(voiced) > 0.2 * len(expected_8k) / 2
    score, _ = correlation(expected_8k, heard.astype(np.int16).tobytes())
    assert score > 0.8, score


Decide = Callable[[Line, str], Awaitable[None]]


@pytest.mark.parametrize(
    ("decide", "expect_status", "status"),
    [
        (lambda line, call_id: line.client.realtime.calls.reject(call_id, status_code=486), 486, "rejected"),
        (lambda line, call_id: line.client.realtime.calls.reject(call_id), 603, "rejected"),
    ],
    ids=["reject-486", "reject-default-603"],
)
async def test_a_rejected_call_gets_the_status_the_application_chose(
    line: Line, application: Application, tmp_path: Path, decide: Decide, expect_status: int, status: str
) -> None:
    caller = SippCaller(workdir=tmp_path, port=line.sip_port, expect_status=expect_status)
    call = asyncio.create_task(caller.run())
    incoming = await application.next_call()
    await decide(line, incoming.data.call_id)
    result = await call
    assert result.exit_code == 0, result.log_tail
    assert result.final_status == expect_status
    await until(lambda: line.gateway.app[SIP].get(incoming.data.call_id) is None, 5)
    record = await line.gateway.repositories.calls.get(incoming.data.call_id)
    assert record is not None
    assert (record.status, record.session_id) == (status, None)


async def test_refer_sends_the_target_and_hangup_sends_bye(
    line: Line, application: Application, tmp_path: Path
) -> None:
    referred = SippCaller(
        workdir=tmp_path / "refer", port=line.sip_port, hangup="refer", after_refer="caller"
    )
    (tmp_path / "refer").mkdir()
    call = asyncio.create_task(referred.run())
    incoming = await application.next_call()
    await line.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
    await line.client.realtime.calls.refer(incoming.data.call_id, target_uri="tel:+14155550123")
    result = await call
    assert result.exit_code == 0, result.log_tail
    assert result.refer_to is not None
    assert "tel:+14155550123" in result.refer_to

    (tmp_path / "bye").mkdir()
    hung_up = SippCaller(workdir=tmp_path / "bye", port=line.sip_port, hangup="server")
    call = asyncio.create_task(hung_up.run())
    incoming = await application.next_call()
    await line.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
    await line.client.realtime.calls.hangup(incoming.data.call_id)
    result = await call
    assert result.exit_code == 0, result.log_tail
    assert result.received("BYE")
    record = await line.gateway.repositories.calls.get(incoming.data.call_id)
    assert record is not None
    assert record.status == "ended"
