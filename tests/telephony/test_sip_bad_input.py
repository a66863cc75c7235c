"""What a SIP endpoint on a network meets besides well-formed calls, sent as raw UDP datagrams (and by sipp
for a whole call): garbage, requests missing mandatory headers, offers the gateway cannot answer, sources
outside the allow-list, unknown methods and dialogs; and the in-dialog requests of real trunks: OPTIONS
keep-alives, CANCEL before the answer, a re-INVITE putting the call on hold and back. Each gets its SIP
answer, the endpoint keeps serving, and a call already up keeps its media flowing."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from openai import NotFoundError

from media_gateway.app_keys import METRICS, SIP
from media_gateway.transports.sip import message as sip
from tests.conftest import GatewayFactory
from tests.support.sip_peers import G729_OFFER, SippCaller
from tests.telephony.conftest import SESSION, Application, Line, sip_line, until

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Probe(asyncio.DatagramProtocol):
    """A raw SIP/RTP peer on its own UDP port: sends what a test writes, keeps what comes back."""

    received: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    transport: asyncio.DatagramTransport | None = None
    port: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes | str, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data.encode() if isinstance(data, str) else data, ("127.0.0.1", port))

    async def response(self, seconds: float = 3) -> sip.SipMessage:
        """The next SIP response (RTP and requests skipped)."""
        async with asyncio.timeout(seconds):
            while True:
                data = await self.received.get()
                if data.startswith(b"SIP/2.0"):
                    return sip.parse(data)

    async def final(self, seconds: float = 5) -> sip.SipMessage:
        while True:
            response = await self.response(seconds)
            if response.status >= 200:
                return response

    def drain(self) -> list[bytes]:
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Probe, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


def request(
    method: str,
    probe: Probe,
    *,
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str = "",
    body: str = "",
    content_type: str = "application/sdp",
    drop: tuple[str, ...] = (),
    branch: str | None = None,
) -> str:
    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:{probe.port};branch={branch or sip.new_branch()}",
        "Max-Forwards": "70",
        "From": f"<sip:probe@127.0.0.1:{probe.port}>;tag=probe1",
        "To": "<sip:agent@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID": call_id or secrets.token_hex(8),
        "CSeq": f"{cseq} {method}",
        "Contact": f"<sip:probe@127.0.0.1:{probe.port}>",
    }
    if body:
        headers["Content-Type"] = content_type
    lines = [f"{method} sip:agent@127.0.0.1 SIP/2.0"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name not in drop]
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def offer(port: int, direction: str = "sendrecv", codecs: str = "0 101") -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {codecs}\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )


async def test_garbage_missing_headers_unknown_methods_and_dialogs_get_their_answers(
    line: Line, probe: Probe
) -> None:
    port = line.sip_port
    bad_before = line.gateway.app[METRICS].telephony.sip_bad_messages._value.get()
    for garbage in (b"\x00\xff" * 50, b"GET / HTTP/1.1\r\n\r\n", b"INVITE sip:x SIP/2.0\r\nVia x\r\n\r\n"):
        probe.send(garbage, port)
    probe.send(request("OPTIONS", probe, drop=("Call-ID", "CSeq")), port)
    answer = await probe.final()
    assert answer.status == 400
    assert "Call-Id" in answer.reason or "call-id" in answer.reason.lower()
    probe.send(request("OPTIONS", probe), port)  # a trunk's keep-alive
    answer = await probe.final()
    assert answer.status == 200
    assert "INVITE" in answer.get("allow")
    probe.send(request("SUBSCRIBE", probe), port)
    assert (await probe.final()).status == 405
    probe.send(request("BYE", probe, to_tag="nope"), port)
    assert (await probe.final()).status == 481
    probe.send(request("INVITE", probe, cseq=1).replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), port)
    assert (await probe.final()).status == 400
    bad_after = line.gateway.app[METRICS].telephony.sip_bad_messages._value.get()
    assert bad_after - bad_before >= 5


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("", "application/sdp", 488),  # no offer: late offers are not supported
        ("hello", "application/sdp", 400),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "application/sdp", 400),  # no connection address
        ("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n", "text/plain", 415),
        ("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n", "application/sdp", 488),
    ],
    ids=["no-offer", "not-sdp", "no-address", "not-sdp-type", "srtp-only"],
)
async def test_invites_the_gateway_cannot_answer_are_refused(
    line: Line, probe: Probe, body: str, content_type: str, status: int
) -> None:
    probe.send(request("INVITE", probe, body=body, content_type=content_type), line.sip_port)
    assert (await probe.final()).status == status
    assert line.gateway.app[SIP].get("") is None


async def test_an_offer_of_unsupported_codecs_only_gets_488_from_sipp(line: Line, tmp_path: Path) -> None:
    result = await SippCaller(workdir=tmp_path, port=line.sip_port, offer=G729_OFFER, expect_status=488).run()
    assert result.exit_code == 0, result.log_tail
    assert result.final_status == 488


async def test_sources_outside_the_allow_list_get_403(gateway_factory: GatewayFactory, probe: Probe) -> None:
    gateway = await gateway_factory(sip_port=0, sip_allowed_sources="10.0.0.0/8, 192.168.0.0/16")
    probe.send(request("INVITE", probe, body=offer(probe.port)), gateway.app[SIP].port)
    assert (await probe.final()).status == 403
    allowed = await gateway_factory(sip_port=0, sip_allowed_sources="127.0.0.0/8")
    probe.send(request("OPTIONS", probe), allowed.app[SIP].port)
    assert (await probe.final()).status == 200


async def test_cancel_before_the_answer_ends_the_call_cancelled(
    line: Line, application: Application, probe: Probe
) -> None:
    call_id, branch = secrets.token_hex(8), sip.new_branch()
    probe.send(
        request("INVITE", probe, call_id=call_id, body=offer(probe.port), branch=branch), line.sip_port
    )
    incoming = await application.next_call()
    probe.send(request("CANCEL", probe, call_id=call_id, branch=branch), line.sip_port)
    statuses = {(await probe.final()).status, (await probe.final()).status}
    assert statuses == {200, 487}
    await until(lambda: line.gateway.app[SIP].get(incoming.data.call_id) is None, 5)
    record = await line.gateway.repositories.calls.get(incoming.data.call_id)
    assert record is not None
    assert (record.status, record.session_id) == ("cancelled", None)
    with pytest.raises(NotFoundError, match="not a live SIP call"):
        await line.client.realtime.calls.accept(incoming.data.call_id, **SESSION)


async def rtp_rate(probe: Probe, seconds: float) -> float:
    """RTP packets per second arriving at the probe over `seconds`."""
    probe.drain()
    await asyncio.sleep(seconds)
    return sum(1 for data in probe.drain() if data[:1] == b"\x80") / seconds


async def test_hold_and_resume_by_reinvite_while_bad_input_leaves_the_call_alone(
    line: Line, application: Application, probe: Probe
) -> None:
    call_id = secrets.token_hex(8)
    probe.send(request("INVITE", probe, call_id=call_id, body=offer(probe.port)), line.sip_port)
    incoming = await application.next_call()
    await line.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
    answer = await probe.final()
    assert answer.status == 200
    assert b"a=sendrecv" in answer.body
    to_tag = answer.to_tag
    probe.send(request("ACK", probe, call_id=call_id, to_tag=to_tag), line.sip_port)
    assert 45 <= await rtp_rate(probe, 1.0) <= 55

    # Garbage and strangers' requests meanwhile: the call's media does not notice.
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        probe.send(b"\x13\x37" * 700, line.sip_port)
        probe.send(request("BYE", probe, to_tag="other"), line.sip_port)
        await asyncio.sleep(0.01)
    assert 45 <= await rtp_rate(probe, 1.0) <= 55

    probe.send(
        request("INVITE", probe, call_id=call_id, cseq=2, to_tag=to_tag, body=offer(probe.port, "sendonly")),
        line.sip_port,
    )
    held = await probe.final()
    assert (held.status, b"a=recvonly" in held.body) == (200, True)
    probe.send(request("ACK", probe, call_id=call_id, cseq=2, to_tag=to_tag), line.sip_port)
    assert await rtp_rate(probe, 1.0) <= 2  # on hold: the gateway stops sending
    probe.send(
        request("INVITE", probe, call_id=call_id, cseq=3, to_tag=to_tag, body=offer(probe.port)),
        line.sip_port,
    )
    resumed = await probe.final()
    assert (resumed.status, b"a=sendrecv" in resumed.body) == (200, True)
    assert 45 <= await rtp_rate(probe, 1.0) <= 55
    probe.send(request("BYE", probe, call_id=call_id, cseq=4, to_tag=to_tag), line.sip_port)
    assert (await probe.final()).status == 200
    await until(lambda: line.gateway.app[SIP].get(incoming.data.call_id) is None, 5)
    record = await line.gateway.repositories.calls.get(incoming.data.call_id)
    assert record is not None
    assert record.status == "ended"


async def test_a_caller_that_vanishes_is_hung_up(
    gateway_factory: GatewayFactory, application: Application, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No RTP for the timeout (production: 30 s; 1 s here, the one setting shortened) → BYE, `failed`; no
    ACK for the 200 within 64·T1 (32 s; 1 s here) → BYE too. The probe sends no RTP at all."""
    monkeypatch.setattr("media_gateway.transports.sip.calls.TRANSACTION_TIMEOUT", 1.0)
    line = await sip_line(gateway_factory, application, sip_rtp_timeout_seconds=1.0)
    for acknowledge in (True, False):
        call_id = secrets.token_hex(8)
        probe.send(request("INVITE", probe, call_id=call_id, body=offer(probe.port)), line.sip_port)
        incoming = await application.next_call()
        await line.client.realtime.calls.accept(incoming.data.call_id, **SESSION)
        answer = await probe.final()
        if acknowledge:
            probe.send(request("ACK", probe, call_id=call_id, to_tag=answer.to_tag), line.sip_port)
        async with asyncio.timeout(6):
            while True:
                data = await probe.received.get()
                if data.startswith(b"BYE "):
                    break
        bye = sip.parse(data)
        probe.send(sip.response_to(bye, 200).encode(), line.sip_port)
        gone = incoming.data.call_id
        await until(lambda: line.gateway.app[SIP].get(gone) is None, 5)  # noqa: B023 - awaited here
        record = await line.gateway.repositories.calls.get(gone)
        assert record is not None
        assert record.status == "failed"
    await line.client.close()


async def test_a_database_failure_answers_the_invite_500_instead_of_ringing_forever(
    line: Line, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from media_gateway.persistence.repositories.calls import CallRepository

    async def locked(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(CallRepository, "create", locked)
    probe.send(request("INVITE", probe, body=offer(probe.port)), line.sip_port)
    assert (await probe.final()).status == 500
    await until(lambda: len(line.gateway.app[SIP]._by_id) == 0, 5)
