"""The load generator of `bench/sip_calls.py`: lightweight SIP callers written directly on asyncio UDP.

One UDP socket carries the SIP of every caller (as a trunk's does): a raw INVITE with a PCMU SDP offer
(retransmitted until a final response), ACK for each 200 (its answer SDP gives the call's media address),
BYE at the end; a BYE from the far end is answered 200. Each call has its own RTP socket and sends
pre-encoded μ-law speech every 20 ms on an absolute schedule (`loop.call_at`), the calls' phases spread
over the 20 ms. What comes back is counted, not decoded: while a window records, each packet's arrival
time, sequence number and timestamp are kept to check the stream's pacing afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from bench._webrtc_tracks import voiced
from media_gateway.codecs.resample import G711Encoder

PERIOD = 0.020  # s between packets, each way
LATE_S = 0.060  # a packet this far behind its slot on the stream's clock is late (a 60 ms jitter buffer)
HEADER = struct.Struct("!BBHII")
SEQ_TS = struct.Struct("!HI")
ANSWER_TIMEOUT = 10.0  # s without a final answer to an INVITE: CANCEL it and call again
RETRIES: list[str] = []  # final statuses of INVITEs made again (408: no answer, cancelled)


def pcmu_payloads(seconds: float = 3.0) -> list[bytes]:
    """Speech-like audio at 8 kHz, μ-law encoded once, as 20 ms payloads (160 bytes) to loop."""
    data = G711Encoder("pcm_mulaw").encode(voiced(seconds, rate=8_000, f0=120.0))
    return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _parse(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """First line, headers (lower-case names, the first of each), body."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers, body


class Signalling(asyncio.DatagramProtocol):
    """The SIP socket of every caller; responses go to the transaction waiting on (Call-ID, CSeq)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.pending: dict[tuple[str, str], asyncio.Future[Response]] = {}
        self.acks: dict[str, bytes] = {}  # Call-ID → the ACK of its 200 (sent again for each 200)
        self.hung_up_by_far_end = 0

    @classmethod
    async def open(cls) -> Signalling:
        loop = asyncio.get_running_loop()
        protocol = cls()
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", 0))
        protocol.port = transport.get_extra_info("sockname")[1]
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, address)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        first, headers, body = _parse(data)
        call_id, cseq = headers.get("call-id", ""), headers.get("cseq", "")
        if first.startswith("SIP/2.0 "):
            status = int(first.split()[1])
            if status < 200:
                return
            if cseq.endswith("INVITE") and status < 300 and call_id in self.acks:
                self.send(self.acks[call_id], (str(addr[0]), int(addr[1])))
            future = self.pending.get((call_id, cseq))
            if future is not None and not future.done():
                future.set_result(Response(status, headers, body))
        elif first.startswith("BYE "):  # the far end hung up
            self.hung_up_by_far_end += 1
            reply = [
                "SIP/2.0 200 OK",
                *(f"{name}: {headers[name.lower()]}" for name in ("Via", "From", "To", "Call-ID", "CSeq")),
                "Content-Length: 0",
            ]
            self.send(("\r\n".join(reply) + "\r\n\r\n").encode(), (str(addr[0]), int(addr[1])))

    async def transaction(self, call_id: str, cseq: str, request: bytes, target: tuple[str, int]) -> Response:
        """Send `request` until its final response (T1 = 0.5 s doubling to 4 s, 32 s in all)."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pending[(call_id, cseq)] = future
        interval = 0.5
        try:
            async with asyncio.timeout(32):
                while True:
                    self.send(request, target)
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(future), interval)
                    interval = min(interval * 2, 4.0)
        finally:
            self.pending.pop((call_id, cseq), None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Caller(asyncio.DatagramProtocol):
    """One call: its dialog, its RTP socket, what it sent and what came back."""

    def __init__(self, index: int, payloads: list[bytes], signalling: Signalling) -> None:
        self.index = index
        self.payloads = payloads
        self.sip = signalling
        self.transport: asyncio.DatagramTransport | None = None
        self.rtp_port = 0
        self.remote: tuple[str, int] | None = None
        self.call_id = ""
        self.tag = ""
        self.to = ""
        self.request_uri = ""
        self.received = 0  # RTP packets from the far end (all of the call)
        self.sent = 0
        self.arrivals: list[tuple[float, int, int]] | None = None  # (arrival, sequence, timestamp)
        self.send_lag: list[float] | None = None  # s behind the schedule, per packet sent, while recording
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)

    # --- RTP ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1
        if self.arrivals is not None and len(data) >= 12:
            sequence, timestamp = SEQ_TS.unpack_from(data, 2)
            self.arrivals.append((time.monotonic(), sequence, timestamp))

    def _tick(self) -> None:
        if self.transport is None or self.remote is None:
            return
        loop = asyncio.get_running_loop()
        due = self._start + self.sent * PERIOD
        if self.send_lag is not None:
            self.send_lag.append(loop.time() - due)
        header = HEADER.pack(0x80, 0, self._sequence, self._timestamp, self._ssrc)
        self.transport.sendto(header + self.payloads[self.sent % len(self.payloads)], self.remote)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + 160) & 0xFFFFFFFF
        self.sent += 1
        self._handle = loop.call_at(self._start + self.sent * PERIOD, self._tick)

    def start_media(self, phase: float) -> None:
        loop = asyncio.get_running_loop()
        self._start = loop.time() + phase
        self._handle = loop.call_at(self._start, self._tick)

    # --- SIP ----------------------------------------------------------------------------------------

    async def call(self, target: tuple[str, int], phase: float) -> int:
        """INVITE `target` until a final response; on 200 the media starts (`phase` s into its 20 ms).
        The final status."""
        loop = asyncio.get_running_loop()
        if self.transport is None:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
            self.rtp_port = transport.get_extra_info("sockname")[1]
        self.call_id = f"{secrets.token_hex(10)}@bench"
        self.tag = secrets.token_hex(6)
        host = f"{target[0]}:{target[1]}"
        self.request_uri = f"sip:bench@{host}"
        offer = (
            "v=0\r\n"
            f"o=- {secrets.randbits(31)} 1 IN IP4 127.0.0.1\r\n"
            "s=bench caller\r\n"
            "c=IN IP4 127.0.0.1\r\n"
            "t=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP 0 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
        ).encode()
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        invite = self._request("INVITE", 1, self.request_uri, f"<sip:bench@{host}>", offer, branch=branch)
        try:
            response = await asyncio.wait_for(
                self.sip.transaction(self.call_id, "1 INVITE", invite, target), ANSWER_TIMEOUT
            )
        except TimeoutError:
            # No final answer (see the bench's report: a gateway call whose setup failed stays ringing):
            # CANCEL it, so that the far end forgets it, and let the caller try again.
            cancel = self._request("CANCEL", 1, self.request_uri, f"<sip:bench@{host}>", branch=branch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sip.transaction(self.call_id, "1 CANCEL", cancel, target), 4)
            return 408
        if response.status != 200:
            return response.status
        self.to = response.headers.get("to", "")
        contact = re.search(r"<([^>]+)>", response.headers.get("contact", ""))
        if contact:
            self.request_uri = contact.group(1)
        self.sip.acks[self.call_id] = self._request("ACK", 1, self.request_uri, self.to)
        self.sip.send(self.sip.acks[self.call_id], target)
        text = response.body.decode()
        address = re.search(r"^c=IN IP[46] (\S+)", text, re.MULTILINE)
        port = re.search(r"^m=audio (\d+) ", text, re.MULTILINE)
        if address is None or port is None:
            raise RuntimeError(f"an answer without a media address: {text!r}")
        self.remote = (address.group(1), int(port.group(1)))
        self.start_media(phase)
        return 200

    async def hang_up(self, target: tuple[str, int]) -> None:
        """Stop sending, BYE (until its answer, 4 s at most), close the RTP socket."""
        if self._handle is not None:
            self._handle.cancel()
        if self.remote is not None:
            bye = self._request("BYE", 2, self.request_uri, self.to)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sip.transaction(self.call_id, "2 BYE", bye, target), 4)
        self.sip.acks.pop(self.call_id, None)
        self.remote = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _request(
        self, method: str, cseq: int, uri: str, to: str, body: bytes = b"", *, branch: str = ""
    ) -> bytes:
        branch = branch or f"z9hG4bK{secrets.token_hex(8)}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:+1555{self.index:07d}@127.0.0.1>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:caller{self.index}@127.0.0.1:{self.sip.port}>",
            "User-Agent: bench-sip-caller",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    # --- recording a window -------------------------------------------------------------------------

    def record(self) -> None:
        self.arrivals, self.send_lag = [], []

    def stop_recording(self) -> tuple[list[tuple[float, int, int]], list[float]]:
        arrivals, lag = self.arrivals or [], self.send_lag or []
        self.arrivals = self.send_lag = None
        return arrivals, lag


async def connect_all(callers: list[Caller], target: tuple[str, int], *, at_once: int = 5) -> None:
    """Call `target` from every caller, `at_once` INVITEs at a time; a refused call is made again (5 tries).
    The calls' media phases are spread evenly over the 20 ms."""

    async def one(caller: Caller) -> None:
        for _attempt in range(5):
            status = await caller.call(target, PERIOD * caller.index / len(callers))
            if status == 200:
                return
            RETRIES.append(str(status))
            await asyncio.sleep(0.2)
        raise RuntimeError(f"call {caller.index} refused 5 times ({RETRIES[-5:]})")

    for start in range(0, len(callers), at_once):
        await asyncio.gather(*(one(c) for c in callers[start : start + at_once]))


@dataclass
class Pacing:
    """What came back in a window, over all calls."""

    rates: list[float] = field(default_factory=list)  # packets/s per call
    lost: int = 0  # sequence gaps
    late: int = 0  # more than LATE_S behind the packet's slot on its stream's clock
    lateness: list[float] = field(default_factory=list)  # s behind the slot, every packet
    send_lag: list[float] = field(default_factory=list)  # the callers' own lateness, every packet sent


def pacing(recorded: list[tuple[list[tuple[float, int, int]], list[float]]], seconds: float) -> Pacing:
    """Per call: the rate; lost packets from the sequence numbers; each packet's lateness against its slot
    (arrival - timestamp / 8 kHz, less the smallest such offset of the call in the window)."""
    result = Pacing()
    for arrivals, lag in recorded:
        result.send_lag += lag
        result.rates.append(len(arrivals) / seconds)
        if not arrivals:
            continue
        sequences = np.array([a[1] for a in arrivals], dtype=np.int64)
        timestamps = np.array([a[2] for a in arrivals], dtype=np.int64)
        times = np.array([a[0] for a in arrivals])
        # Unwrap against the first packet (a window is far shorter than either counter's wrap).
        sequences = (sequences - sequences[0] + 0x8000) % 0x10000 - 0x8000
        timestamps = (timestamps - timestamps[0] + 0x80000000) % 0x100000000 - 0x80000000
        result.lost += int(sequences.max() - sequences.min() + 1 - len(np.unique(sequences)))
        offsets = times - timestamps / 8_000
        late = offsets - offsets.min()
        result.late += int((late > LATE_S).sum())
        result.lateness += late.tolist()
    return result
