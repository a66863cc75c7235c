"""The SIP test peers of tests/support against each other, without the gateway: proof that what a gateway test
will use works with real programs. sipp calls sipp (which echoes RTP) with speech and RFC 4733 digits from a
pcap written here, tcpdump captures what comes back; sipp's caller variants meet an answerer that rejects,
hangs up or transfers; baresip calls baresip with Opus and records what it hears."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.sip_audio import (
    correlation,
    decode_g711,
    read_wav_mono,
    resample,
    rms,
    rtp_audio,
    wav_to_pcmu_payloads,
)
from tests.support.sip_baresip import OPUS, Baresip
from tests.support.sip_pcap import dtmf_digits, read_rtp_pcap, telephone_events, write_rtp_pcap
from tests.support.sip_peers import G729_OFFER, RtpCapture, SippAnswerer, SippCaller

DIGITS = "1234#"


def espeak(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=30)
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caller's question, as espeak-ng writes it (22 050 Hz mono)."""
    return espeak(tmp_path_factory.mktemp("speech") / "question.wav", "what time is it")


@pytest.fixture(scope="module")
def reply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak(tmp_path_factory.mktemp("speech") / "reply.wav", "it is ten past nine")


async def test_written_pcap_reads_as_rtp_in_tshark(tmp_path: Path, speech: Path) -> None:
    """An independent decoder agrees with the pcap writer and reader: valid IP and UDP checksums, RTP with
    sequence numbers and timestamps that wrap, RFC 4733 events with three end packets per digit."""
    payloads = wav_to_pcmu_payloads(speech)
    pcap = tmp_path / "call.pcap"
    sent = write_rtp_pcap(
        pcap,
        payloads,
        digits="9*D",
        src_port=40000,
        dst_port=40002,
        first_sequence=65_500,
        first_timestamp=2**32 - 4000,
    )
    fields = ["rtp.seq", "rtp.timestamp", "rtp.p_type", "rtpevent.event_id", "rtpevent.end_of_event"]
    fields += ["ip.checksum.status", "udp.checksum.status"]
    process = await asyncio.create_subprocess_exec(
        "tshark", "-r", str(pcap), "-d", "udp.port==40002,rtp",
        "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
        "-T", "fields", *[arg for field in fields for arg in ("-e", field)],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    rows = [line.split("\t") for line in out.decode().splitlines()]
    assert [(int(r[0]), int(r[1]), int(r[2])) for r in rows] == [
        (p.sequence, p.timestamp, p.payload_type) for p in sent
    ]
    assert {(r[5], r[6]) for r in rows} == {("1", "1")}  # both checksums good
    events = [(int(r[3]), r[4]) for r in rows if r[3]]
    assert [e for e, end in events if end == "1"] == [9] * 3 + [10] * 3 + [15] * 3
    assert [p.sequence for p in read_rtp_pcap(pcap)] == [p.sequence for p in sent]
    assert dtmf_digits(read_rtp_pcap(pcap)) == "9*D"


async def test_sipp_call_echoes_speech_and_digits(tmp_path: Path, speech: Path) -> None:
    """sipp calls a sipp that echoes RTP: the INVITE carries the caller's headers and the SDP offer, the
    speech comes back sample for sample, the digits come back as RFC 4733 events."""
    payloads = wav_to_pcmu_payloads(speech)
    pcap = tmp_path / "call.pcap"
    sent = write_rtp_pcap(pcap, payloads, digits=DIGITS, src_port=40000, dst_port=40002)
    answerer = SippAnswerer(workdir=tmp_path / "answerer")
    await answerer.start()
    credential = 'Digest username="alice", realm="gw", response="0123456789abcdef"'
    caller = SippCaller(
        workdir=tmp_path / "caller",
        port=answerer.sip_port,
        caller="alice",
        called="agent",
        headers={"X-Customer": "42", "Proxy-Authorization": credential},
        pcap=pcap,
        pause_ms=round(sent[-1].time * 1000) + 500,
    )
    started = time.monotonic()
    async with RtpCapture(caller.media_port, pcap_path=tmp_path / "echo.pcap") as capture:
        result = await caller.run()
    answered = await answerer.wait(timeout_s=5)
    seconds = time.monotonic() - started

    assert result.exit_code == 0, result.log_tail
    assert answered.exit_code == 0, answered.log_tail
    assert result.final_status == 200
    assert [m.first_line.split()[0] for m in result.messages if m.direction == "sent"] == [
        "INVITE",
        "ACK",
        "BYE",
    ]
    (invite,) = answered.received("INVITE")
    assert invite.first_line == f"INVITE sip:agent@127.0.0.1:{answerer.sip_port} SIP/2.0"
    assert (invite.header("From") or "").startswith("<sip:alice@127.0.0.1:")
    assert invite.header("X-Customer") == "42"
    assert invite.header("Proxy-Authorization") == credential
    assert f"m=audio {caller.media_port} RTP/AVP 0 101" in invite.body
    assert "a=rtpmap:101 telephone-event/8000" in invite.body

    echoed = capture.packets
    assert len(echoed) == len(sent) == len(payloads) + 7 * len(DIGITS)
    assert [p.sequence for p in echoed] == [p.sequence for p in sent]
    assert {p.src_port for p in echoed} == {answerer.media_port}
    heard, lag = correlation(b"".join(decode_g711(p) for p in payloads), rtp_audio(echoed))
    assert heard > 0.99, heard
    assert dtmf_digits(echoed) == DIGITS
    assert sum(e.end for e in telephone_events(echoed)) == 3 * len(DIGITS)
    print(
        f"sipp echo: {len(sent)} packets sent, {len(echoed)} echoed, corr {heard:.4f} at lag {lag}, "
        f"digits {dtmf_digits(echoed)!r}, {seconds:.1f} s"
    )


CALLER_VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (answerer options, caller options)
    "busy": ({"status": 486}, {"expect_status": 486}),
    "declined": ({"status": 603}, {"expect_status": 603}),
    "no-common-codec": ({"status": 488}, {"expect_status": 488, "offer": G729_OFFER}),
    "server-hangs-up": ({"hangup": "server"}, {"hangup": "server"}),
    "refer-then-server-bye": ({"hangup": "refer"}, {"hangup": "refer"}),
    "refer-then-caller-bye": (
        {"hangup": "refer", "after_refer": "caller"},
        {"hangup": "refer", "after_refer": "caller"},
    ),
    "refer-notify-then-server-bye": (
        {"hangup": "refer", "expect_notify": True},
        {"hangup": "refer", "notify_refer": True},
    ),
}


@pytest.mark.parametrize("variant", list(CALLER_VARIANTS))
async def test_sipp_caller_variants(tmp_path: Path, variant: str) -> None:
    """Each way a server can end a call, met by the caller scenario that expects it."""
    answerer_options, caller_options = CALLER_VARIANTS[variant]
    answerer = SippAnswerer(workdir=tmp_path / "answerer", pause_ms=300, **answerer_options)
    await answerer.start()
    caller = SippCaller(workdir=tmp_path / "caller", port=answerer.sip_port, wait_ms=5000, **caller_options)
    result = await caller.run()
    answered = await answerer.wait(timeout_s=5)

    assert result.exit_code == 0, result.log_tail
    assert answered.exit_code == 0, answered.log_tail
    assert result.final_status == answerer.status
    sent = [m.method for m in result.messages if m.direction == "sent" and m.status is None]
    if answerer.status != 200:
        assert sent == ["INVITE", "ACK"]
        (ack,) = answered.received("ACK")
        assert ack.header("Via") == answered.received("INVITE")[0].header("Via")  # the INVITE's transaction
    if variant == "no-common-codec":
        assert "m=audio" in result.sent("INVITE")[0].body
        assert "RTP/AVP 18\n" in result.sent("INVITE")[0].body.replace("\r\n", "\n")
    if answerer.hangup == "server":
        assert [m.first_line.split()[0] for m in result.messages if m.direction == "received"][-1] == "BYE"
    if answerer.hangup == "refer":
        assert result.refer_to == "<sip:desk@127.0.0.1>"
        assert result.responses("REFER", "sent")[0].status == 202
        assert [m.method for m in answered.received("NOTIFY")] == (["NOTIFY"] if caller.notify_refer else [])
        bye = "sent" if caller.after_refer == "caller" else "received"
        assert [m.first_line.split()[0] for m in result.messages if m.direction == bye][-1] == "BYE"


async def test_sipp_caller_reports_an_unexpected_answer(tmp_path: Path) -> None:
    """A caller expecting 200 that gets 486 fails (exit code 1) and says what it got and what it expected."""
    answerer = SippAnswerer(workdir=tmp_path / "answerer", status=486)
    await answerer.start()
    result = await SippCaller(workdir=tmp_path / "caller", port=answerer.sip_port).run()
    await answerer.wait(timeout_s=5)
    assert result.exit_code == 1
    assert result.final_status == 486
    assert "Aborting call on unexpected message" in result.errors


async def test_baresip_calls_baresip_with_opus(tmp_path: Path, speech: Path, reply: Path) -> None:
    """baresip calls an auto-answering baresip offering Opus only: each records what the other played, and
    the digits pressed arrive as RFC 4733 events."""
    callee = Baresip(workdir=tmp_path / "callee", user="bot", codecs=[OPUS], audio=reply, answer="auto")
    caller = Baresip(workdir=tmp_path / "caller", user="alice", codecs=[OPUS], audio=speech, lead_ms=300)
    started = time.monotonic()
    await asyncio.gather(callee.start(), caller.start())
    try:
        await caller.dial(callee.uri)
        established = await caller.wait_event("CALL_ESTABLISHED")
        await callee.wait_event("CALL_ESTABLISHED")
        await asyncio.sleep(2.5)  # both WAVs (~1.1 s and ~1.4 s of speech) play out
        await caller.send_dtmf("12#")
        await asyncio.sleep(0.5)
        await caller.hangup()
        closed = await callee.wait_event("CALL_CLOSED")
        await caller.wait_event("CALL_CLOSED")
    finally:
        await asyncio.gather(caller.stop(), callee.stop())
    seconds = time.monotonic() - started

    assert caller.audio_codec == callee.audio_codec == "opus 48000Hz 2ch"
    assert callee.dtmf_received() == "12#"
    figures = []
    for listener, source in ((callee, speech), (caller, reply)):
        heard, rate = listener.recorded_audio()
        played, played_rate = read_wav_mono(source)
        score, lag = correlation(resample(played, played_rate, 16_000), resample(heard, rate, 16_000))
        assert rate == 48_000
        assert rms(heard) > 300, rms(heard)
        assert score > 0.9, (listener.user, score)
        figures.append(f"{listener.user} heard corr {score:.3f} (lag {lag / 16:.0f} ms)")
    # Each heard the other, not itself.
    own, own_rate = read_wav_mono(speech)
    heard, rate = caller.recorded_audio()
    assert correlation(resample(own, own_rate, 16_000), resample(heard, rate, 16_000))[0] < 0.5
    print(
        f"baresip opus: established {established.time - started:.2f} s, closed {closed.time - started:.2f} s"
        f" ({closed.data.get('param')}), {', '.join(figures)}, digits {callee.dtmf_received()!r},"
        f" {seconds:.1f} s"
    )
