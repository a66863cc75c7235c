"""SIP calls into the gateway from real peers: sipp as the trunk (an INVITE with PCMU and telephone-events,
speech and RFC 4733 digits replayed from a pcap, BYE), following OpenAI's SIP flow. The test plays the
application: it receives the `realtime.call.incoming` webhook (verified with the official `openai` SDK),
decides the call with the SDK's `realtime.calls.accept/reject/refer/hangup`, and watches the session on a
sideband WebSocket (`?call_id=`). The RTP the gateway sends back is captured on the loopback interface."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import PermissionDeniedError

from media_gateway.app_keys import SIP
from media_gateway.policy.engine import DEFAULT_POLICY_DIR
from media_gateway.speech.tts import FliteSynthesizer
from tests.conftest import GatewayFactory
from tests.policy.test_call_decisions import policy_dir_with
from tests.speech.audio import spoken_clock, word_errors
from tests.support.realtime import connect
from tests.support.sip_audio import correlation, resample, rtp_audio, wav_to_pcmu_payloads
from tests.support.sip_pcap import dtmf_digits, write_rtp_pcap
from tests.support.sip_peers import RtpCapture, SippCaller
from tests.telephony.conftest import SESSION, Application, Line, sip_line, until
from tests.telephony.test_twilio import QUESTION, collect, of_type, wav_8k

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def speech_pcap(path: Path, wav: Path, caller: SippCaller, *, digits: str = "", silence_ms: int = 0) -> Path:
    payloads = wav_to_pcmu_payloads(wav) + [b"\xff" * 160] * (silence_ms // 20)
    write_rtp_pcap(path, payloads, digits=digits, src_port=caller.media_port, dst_port=40000)
    return path


async def watch(line: Line, call_id: str, events: list[dict[str, Any]]) -> None:
    async with connect(line.gateway.base_url, line.key, query=f"?call_id={call_id}") as client:
        await collect(client, events)


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
    caller_payloads = wav_to_pcmu_payloads(question)
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
    similarity = assert_contains_speech(heard_audio, expected_pcm)
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
    # The operator's view: the call's outcome, its RTP both ways, its digits and its jitter.
    metrics = await (await line.gateway.client.get("/metrics")).text()
    figures = {
        name: float(value)
        for name, value in re.findall(r"^(gateway_(?:telephony|sip|turn)_\S+) (\S+)$", metrics, re.MULTILINE)
    }
    assert figures['gateway_telephony_calls_total{outcome="ended",transport="sip"}'] == 1
    assert figures['gateway_telephony_dtmf_total{transport="sip"}'] == 5
    assert figures['gateway_sip_rtp_packets_total{direction="in"}'] >= len(caller_payloads)
    assert figures['gateway_sip_rtp_packets_total{direction="out"}'] >= len(audio_packets)
    assert figures["gateway_sip_rtp_jitter_seconds_count"] == 1
    assert figures["gateway_sip_rtp_lost_packets_total"] == 0
    assert figures["gateway_turn_seconds_count"] == 1  # the spoken question: end of speech → first audio
    assert 0 < figures["gateway_turn_seconds_sum"] < 10
    print(
        f"\nsip: reply {reply!r}: {len(audio_packets)} RTP packets back, {markers} marked, correlation "
        f"{similarity:.3f} with the reply spoken; jitter "
        f"{figures['gateway_sip_rtp_jitter_seconds_sum'] * 1000:.2f} ms; end of speech → first audio "
        f"{figures['gateway_turn_seconds_sum'] * 1000:.0f} ms"
    )


def assert_contains_speech(heard: np.ndarray[Any, np.dtype[np.float64]], expected_pcm: bytes) -> float:
    """The line carried the expected speech: as loud and as long, and the same waveform (at 8 kHz)."""
    expected_8k = resample(expected_pcm, 16_000, 8_000) if len(expected_pcm) else b""
    voiced = heard[np.abs(heard) > 200]
    assert len(voiced) > 0.2 * len(expected_8k) / 2
    score, _ = correlation(expected_8k, heard.astype(np.int16).tobytes())
    assert score > 0.8, score
    return score


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


async def test_the_connect_policy_decides_on_the_callers_source_and_number(
    gateway_factory: GatewayFactory, application: Application, tmp_path: Path
) -> None:
    """The shipped policies with call allow-lists in the `realtime` scope's data (MEDIA_GATEWAY_POLICY_DIR):
    the source must be in 10.0.0.0/8, so the call from 127.0.0.1 is refused at /accept (it keeps ringing:
    the application then rejects it); with the loopback allowed and a caller pattern, the call from +1555…
    is answered."""
    data = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())
    scope = data["ovos_gateway"]["config"]["scopes"]["realtime"]
    scope["calls"] = {"sources": ["10.0.0.0/8"]}
    denying = await sip_line(
        gateway_factory, application, policy_dir=policy_dir_with(data, tmp_path / "deny")
    )
    caller = SippCaller(workdir=tmp_path, port=denying.sip_port, caller="+15551234", expect_status=603)
    call = asyncio.create_task(caller.run())
    incoming = await application.next_call()
    with pytest.raises(PermissionDeniedError, match=r"call source 127\.0\.0\.1 is not allowed"):
        await denying.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
    await denying.client.realtime.calls.reject(incoming.data.call_id)
    assert (await call).final_status == 603

    scope["calls"] = {"sources": ["127.0.0.0/8"], "callers": ["+1555*"]}
    allowing = await sip_line(
        gateway_factory, application, policy_dir=policy_dir_with(data, tmp_path / "allow")
    )
    (tmp_path / "second").mkdir()
    caller = SippCaller(workdir=tmp_path / "second", port=allowing.sip_port, caller="+15551234", pause_ms=500)
    call = asyncio.create_task(caller.run())
    incoming = await application.next_call()
    await allowing.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
    result = await call
    assert result.exit_code == 0, result.log_tail
    await denying.client.close()
    await allowing.client.close()
