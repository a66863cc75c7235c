"""The SIP user agent's pieces on their own: message parsing, SDP offer/answer, RTP and its statistics,
RFC 4733 digits, Standard Webhooks signatures (verified by the official `openai` SDK)."""

from __future__ import annotations

import json

import pytest
from openai import OpenAI

from media_gateway.transports.sip import message as sip
from media_gateway.transports.sip import rtp, sdp, webhook

INVITE = (
    "INVITE sip:+15550100@gw.example SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Alice" <sip:+15551234@trunk.example>;tag=1928301774\r\n'
    "t: <sip:+15550100@gw.example>\r\n"
    "i: a84b4c76e66710\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.10:5060>\r\n"
    "Proxy-Authorization: Digest username=alice, response=deadbeef\r\n"
    "X-Customer: 42\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{body}"
)
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 18 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "m=video 51372 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def invite(body: str = OFFER) -> bytes:
    return INVITE.format(length=len(body.encode()), body=body).encode()


def test_an_invite_parses_with_compact_headers_and_several_vias() -> None:
    message = sip.parse(invite())
    assert (message.method, message.uri) == ("INVITE", "sip:+15550100@gw.example")
    assert message.call_id == "a84b4c76e66710"
    assert message.cseq == (314159, "INVITE")
    assert message.from_tag == "1928301774"
    assert message.to_tag == ""
    assert len(message.get_all("via")) == 2
    assert message.branch == "z9hG4bK776asdhds"
    assert sip.user_of(message.get("from")) == "+15551234"
    assert sip.user_of(message.uri) == "+15550100"
    assert message.body.startswith(b"v=0")
    assert sip.missing_headers(message) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01garbage",
        b"HELLO WORLD\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n",  # a header line without a colon
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",
        b"INVITE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n\xff\xfe: y\r\n\r\n",
        b"X" * 70_000,
    ],
)
def test_what_is_not_a_sip_message_raises_a_parse_error(data: bytes) -> None:
    with pytest.raises(sip.SipParseError):
        sip.parse(data)


def test_a_response_copies_the_transaction_headers_and_adds_the_tag() -> None:
    request = sip.parse(invite())
    response = sip.parse(sip.response_to(request, 180, to_tag="abc").encode())
    assert (response.status, response.reason) == (180, "Ringing")
    assert response.get_all("via") == request.get_all("via")
    assert response.to_tag == "abc"
    assert response.call_id == request.call_id
    assert response.get("cseq") == "314159 INVITE"
    assert sip.response_to(request, 100, to_tag="abc").get("to") == request.get("to")  # 100 has no tag


def test_the_offer_negotiates_pcmu_and_telephone_events_and_declines_video() -> None:
    negotiated = sdp.negotiate(OFFER.encode())
    assert (negotiated.codec.name, negotiated.codec.payload_type) == ("pcmu", 0)
    assert negotiated.dtmf_payload_type == 101
    assert (negotiated.remote_address, negotiated.remote_port) == ("192.0.2.10", 49170)
    assert negotiated.direction == "sendrecv"
    answer = sdp.answer(negotiated, "198.51.100.7", 40002).decode()
    assert "m=audio 40002 RTP/AVP 0 101\r\n" in answer
    assert "a=rtpmap:0 PCMU/8000\r\n" in answer
    assert "a=rtpmap:101 telephone-event/8000\r\n" in answer
    assert "m=video 0 RTP/AVP 96\r\n" in answer  # declined in kind, as RFC 3264 §6 asks
    assert "c=IN IP4 198.51.100.7\r\n" in answer


def test_the_offerers_order_wins_and_opus_is_taken_when_first() -> None:
    offer = OFFER.replace("RTP/AVP 18 0 101", "RTP/AVP 111 8 0 101").replace(
        "a=rtpmap:101", "a=rtpmap:111 opus/48000/2\r\na=rtpmap:101"
    )
    assert sdp.negotiate(offer.encode()).codec == sdp.Codec("opus", 111, 48000, 2)
    assert sdp.negotiate(offer.encode(), ("pcma", "pcmu")).codec.name == "pcma"


@pytest.mark.parametrize(
    ("offer", "status", "words"),
    [
        (OFFER.replace("RTP/AVP 18 0 101", "RTP/AVP 18 101"), 488, "codecs 18"),
        (OFFER.replace("RTP/AVP 18 0 101", "RTP/SAVP 0 101"), 488, "RTP/SAVP"),
        (OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 not-an-address"), 488, "not an IP address"),
        (OFFER.replace("m=audio 49170", "m=audio 99999"), 400, "bad media port"),
        ("hello", 400, "v=0"),
        (OFFER.split("m=audio")[0], 488, "no audio"),
    ],
)
def test_offers_without_usable_audio_are_refused(offer: str, status: int, words: str) -> None:
    with pytest.raises(sdp.SdpError, match=words) as caught:
        sdp.negotiate(offer.encode())
    assert caught.value.status == status


def test_hold_is_a_sendonly_offer_or_the_zero_address() -> None:
    held = sdp.negotiate(OFFER.replace("a=fmtp:101 0-16", "a=fmtp:101 0-16\r\na=sendonly").encode())
    assert (held.direction, held.on_hold) == ("recvonly", True)  # the answer to sendonly
    assert sdp.negotiate(OFFER.replace("a=fmtp:101 0-16", "a=fmtp:101 0-16\r\na=inactive").encode()).on_hold
    assert sdp.negotiate(OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0").encode()).on_hold


def test_rtp_round_trips_and_skips_csrcs_extensions_and_padding() -> None:
    packet = rtp.RtpPacket(0, 65535, 4294967295, 0x1234, b"\xff" * 160, marker=True)
    assert rtp.parse(packet.encode()) == packet
    raw = bytearray(packet.encode())
    raw[0] |= 0x10 | 0x20 | 0x01  # one CSRC, an extension and padding
    body = raw[12:]
    raw = raw[:12] + b"\x00\x00\x00\x01" + b"\xbe\xde\x00\x01" + b"\x00\x00\x00\x00" + body + b"\x00\x00\x03"
    assert rtp.parse(bytes(raw)).payload == b"\xff" * 160
    for bad in (b"", b"\x80" * 11, b"\x40" + b"\x00" * 20):
        with pytest.raises(rtp.RtpError):
            rtp.parse(bad)


def test_stats_count_gaps_late_packets_and_jitter() -> None:
    stats = rtp.RtpStats(8000)
    arrivals = {0: 0.0, 1: 0.020, 3: 0.060, 2: 0.065, 4: 0.085}  # 2 arrives after 3: late
    results = [stats.accept(rtp.RtpPacket(0, seq, seq * 160, 7, b""), at) for seq, at in arrivals.items()]
    assert results == [True, True, True, False, True]
    assert (stats.received, stats.late, stats.lost) == (5, 1, 0)
    assert 0 < stats.jitter_ms < 5


def test_telephone_events_between_audio_packets_are_not_counted_lost() -> None:
    stats = rtp.RtpStats(8000)
    for sequence, payload_type in enumerate([0, 0, 101, 101, 101, 101, 0, 0]):
        timing = payload_type == 0
        packet = rtp.RtpPacket(payload_type, sequence, 160 * sequence if timing else 320, 7, b"")
        stats.accept(packet, sequence * 0.02, timing=timing)
    stats.accept(rtp.RtpPacket(101, 5, 320, 7, b""), 0.2, timing=False)  # an end packet repeated
    assert (stats.lost, stats.late) == (0, 0)


def test_a_digit_counts_once_per_event() -> None:
    receiver = rtp.DtmfReceiver()
    digits = []
    for timestamp, event in ((1000, 1), (2000, 11), (3000, 16)):
        for end in (0, 0, 0x80, 0x80, 0x80):
            packet = rtp.RtpPacket(101, 0, timestamp, 9, bytes([event, end | 10, 0, 160]))
            if (digit := receiver.push(packet)) is not None:
                digits.append(digit)
    assert digits == ["1", "#"]  # event 16 is not a DTMF key


def test_webhooks_verify_with_the_official_sdk_and_never_carry_credentials() -> None:
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="
    headers = sip.parse(invite()).headers
    event = webhook.incoming_call_event("rtc_123", headers)
    body = json.dumps(event).encode()
    signed = webhook.signature_headers(body, secret, webhook_id=event["id"], timestamp=event["created_at"])
    unwrapped = OpenAI(api_key="unused").webhooks.unwrap(body, signed, secret=secret)
    assert unwrapped.type == "realtime.call.incoming"
    assert unwrapped.data.call_id == "rtc_123"
    names = [header.name for header in unwrapped.data.sip_headers]
    assert "X-Customer" in names
    assert "Proxy-Authorization" not in names
    with pytest.raises(Exception, match="signature"):
        OpenAI(api_key="unused").webhooks.unwrap(body + b" ", signed, secret=secret)
    stored = webhook.redacted_headers(headers)
    assert {"name": "Proxy-Authorization", "value": "[redacted]"} in stored
    assert "deadbeef" not in json.dumps(stored)
