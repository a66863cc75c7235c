"""RTP as files, for tests that drive real SIP peers: classic libpcap files of RTP written without scapy (for
sipp's `play_pcap_audio`), read back (from tcpdump's captures) into RTP packets, and RFC 4733 telephone
events. `tests/support/sip_audio.py` makes the payloads and decodes them.

Only what the tests need: IPv4 over Ethernet, Linux cooked (SLL, SLL2), BSD loopback or raw IP link layers;
no fragments, no IPv6."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

PCMU_FRAME_BYTES = 160  # 20 ms of 8 kHz G.711
SAMPLES_PER_FRAME = 160
FRAME_MS = 20
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 events 0-15, in order
_PCAP_EPOCH = 1_700_000_000  # the first packet's capture time in written files (any fixed time will do)
_LINKTYPE_NULL, _LINKTYPE_ETHERNET, _LINKTYPE_RAW, _LINKTYPE_SLL, _LINKTYPE_SLL2 = 0, 1, 101, 113, 276


@dataclass(frozen=True)
class UdpDatagram:
    """One captured UDP datagram; `time` is the capture time in seconds."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes
    time: float = 0.0  # capture time (seconds), 0 when not from a capture
    src_port: int = 0
    dst_port: int = 0


@dataclass(frozen=True)
class TelephoneEvent:
    """An RFC 4733 telephone-event payload, with the RTP timestamp that identifies its event."""

    event: int
    end: bool
    volume: int
    duration: int
    timestamp: int

    @property
    def digit(self) -> str:
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else f"<{self.event}>"


# --- RTP ----------------------------------------------------------------------------------------------------


def encode_rtp(packet: RtpPacket) -> bytes:
    """The RTP packet on the wire (version 2, no padding, extension or CSRCs)."""
    second = (0x80 if packet.marker else 0) | (packet.payload_type & 0x7F)
    header = struct.pack(
        "!BBHII", 0x80, second, packet.sequence & 0xFFFF, packet.timestamp & 0xFFFFFFFF, packet.ssrc
    )
    return header + packet.payload


def parse_rtp(data: bytes, *, time: float = 0.0, src_port: int = 0, dst_port: int = 0) -> RtpPacket | None:
    """An RTP packet, or None for anything else (RTCP, STUN, too short, not version 2)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", data)
    if 72 <= second & 0x7F <= 76:  # RTCP SR/RR/SDES/BYE/APP, multiplexed on the port
        return None
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if first & 0x20 and data:  # padding
        end -= data[-1]
    if offset > end:
        return None
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=bool(second & 0x80),
        payload=data[offset:end],
        time=time,
        src_port=src_port,
        dst_port=dst_port,
    )


def encode_telephone_event(event: int, *, end: bool, duration: int, volume: int = 10) -> bytes:
    return struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration)


def parse_telephone_event(packet: RtpPacket) -> TelephoneEvent | None:
    if len(packet.payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", packet.payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration, packet.timestamp)


def dtmf_packets(
    digits: str,
    *,
    ssrc: int,
    first_sequence: int,
    first_timestamp: int,
    payload_type: int = 101,
    digit_ms: int = 100,
    gap_ms: int = 100,
) -> list[tuple[int, RtpPacket]]:
    """RFC 4733 packets for `digits`, each with its send time in ms from the first: per digit one packet per
    20 ms with a growing duration (the first with the marker bit), the end packet three times, then `gap_ms`
    of nothing. All packets of a digit carry the timestamp of its start; timestamps continue across gaps."""
    out: list[tuple[int, RtpPacket]] = []
    sequence, timestamp, at_ms = first_sequence, first_timestamp, 0
    updates = max(1, digit_ms // FRAME_MS)
    for digit in digits:
        event = DTMF_EVENTS.index(digit.upper())
        for n in range(1, updates + 3):
            number = min(n, updates)
            payload = encode_telephone_event(event, end=n >= updates, duration=number * SAMPLES_PER_FRAME)
            packet = RtpPacket(payload_type, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc, n == 1, payload)
            out.append((at_ms + (n - 1) * FRAME_MS, packet))
            sequence += 1
        at_ms += (updates + 2) * FRAME_MS + gap_ms
        timestamp += (updates * FRAME_MS + 2 * FRAME_MS + gap_ms) * 8
    return out


def telephone_events(packets: Iterable[RtpPacket], payload_type: int = 101) -> list[TelephoneEvent]:
    return [e for p in packets if p.payload_type == payload_type and (e := parse_telephone_event(p))]


def dtmf_digits(packets: Iterable[RtpPacket], payload_type: int = 101) -> str:
    """The digits the RFC 4733 packets carry: one per event (a distinct RTP timestamp), in order."""
    digits: dict[int, str] = {}
    for event in telephone_events(packets, payload_type):
        digits.setdefault(event.timestamp, event.digit)
    return "".join(digits.values())


# --- pcap files ---------------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload: bytes, src_port: int, dst_port: int, ident: int) -> bytes:
    """Ethernet + IPv4 + UDP from 127.0.0.1 to 127.0.0.1, with valid checksums."""
    src = dst = bytes([127, 0, 0, 1])
    length = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    udp = struct.pack("!HHHH", src_port, dst_port, length, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ethernet = b"\0" * 12 + b"\x08\x00"
    return ethernet + ip + udp


def write_udp_pcap(
    path: Path, datagrams: Sequence[tuple[float, bytes]], *, src_port: int, dst_port: int
) -> None:
    """A classic libpcap file (microseconds, Ethernet) of loopback UDP datagrams, each at its time (s)."""
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
        for number, (at, payload) in enumerate(datagrams):
            frame = _udp_frame(payload, src_port, dst_port, number)
            usec = round(at * 1_000_000)
            out.write(
                struct.pack(
                    "<IIII", _PCAP_EPOCH + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)
                )
            )
            out.write(frame)


def write_rtp_pcap(
    path: Path,
    payloads: Sequence[bytes],
    *,
    digits: str = "",
    payload_type: int = 0,
    dtmf_payload_type: int = 101,
    src_port: int,
    dst_port: int,
    ssrc: int = 0x5EED_CA11,
    gap_ms: int = 100,
    digit_ms: int = 100,
    first_sequence: int = 0,
    first_timestamp: int = 0,
) -> list[RtpPacket]:
    """RTP for sipp's `play_pcap_audio` (it rewrites addresses and ports, and sends at the capture times): one
    packet per 20 ms payload (timestamp +160, sequence +1, marker on the first), then after `gap_ms` the RFC
    4733 events of `digits` (0-9 * # A-D) on the same SSRC, timestamps continuing (both wrap: start near 2**16
    or 2**32 to test that). Returns the packets, each with its send time (`time`, seconds from the first)."""
    packets = [
        (
            n * FRAME_MS,
            RtpPacket(
                payload_type,
                (first_sequence + n) & 0xFFFF,
                (first_timestamp + n * SAMPLES_PER_FRAME) & 0xFFFFFFFF,
                ssrc,
                n == 0,
                payload,
            ),
        )
        for n, payload in enumerate(payloads)
    ]
    start_ms = len(payloads) * FRAME_MS + (gap_ms if payloads else 0)
    events = dtmf_packets(
        digits,
        ssrc=ssrc,
        first_sequence=first_sequence + len(payloads),
        first_timestamp=first_timestamp + start_ms * 8,
        payload_type=dtmf_payload_type,
        digit_ms=digit_ms,
        gap_ms=gap_ms,
    )
    packets += [(start_ms + at, packet) for at, packet in events]
    write_udp_pcap(
        path, [(at / 1000, encode_rtp(p)) for at, p in packets], src_port=src_port, dst_port=dst_port
    )
    return [replace(p, time=at / 1000, src_port=src_port, dst_port=dst_port) for at, p in packets]


def _ipv4_udp(data: bytes, time: float) -> UdpDatagram | None:
    if len(data) < 20 or data[0] >> 4 != 4 or data[9] != 17:
        return None
    if struct.unpack_from("!H", data, 6)[0] & 0x3FFF:  # a fragment
        return None
    header = 4 * (data[0] & 0x0F)
    total = struct.unpack_from("!H", data, 2)[0]
    src_port, dst_port, length = struct.unpack_from("!HHH", data, header)
    payload = data[header + 8 : min(header + length, total)]
    src, dst = (".".join(map(str, data[at : at + 4])) for at in (12, 16))
    return UdpDatagram(time, (src, src_port), (dst, dst_port), payload)


def _network_layer(linktype: int, frame: bytes) -> bytes | None:
    if linktype == _LINKTYPE_ETHERNET:
        offset, ethertype = 12, struct.unpack_from("!H", frame, 12)[0]
        while ethertype == 0x8100:  # VLAN tags
            offset += 4
            ethertype = struct.unpack_from("!H", frame, offset)[0]
        return frame[offset + 2 :] if ethertype == 0x0800 else None
    if linktype == _LINKTYPE_SLL:
        return frame[16:] if struct.unpack_from("!H", frame, 14)[0] == 0x0800 else None
    if linktype == _LINKTYPE_SLL2:
        return frame[20:] if struct.unpack_from("!H", frame, 0)[0] == 0x0800 else None
    if linktype == _LINKTYPE_NULL:
        return frame[4:]
    if linktype == _LINKTYPE_RAW:
        return frame
    raise ValueError(f"unsupported pcap link type {linktype}")


def read_pcap(source: Path | bytes) -> list[UdpDatagram]:
    """The IPv4 UDP datagrams of a classic libpcap file (either byte order, micro- or nanosecond times); a
    truncated last record (a capture stopped mid-write) is ignored."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise ValueError("not a classic pcap file (pcapng is not supported: capture with -F pcap)")
    order, unit = formats[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    out: list[UdpDatagram] = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < captured:
            break
        network = _network_layer(linktype, frame)
        datagram = _ipv4_udp(network, seconds + fraction * unit) if network else None
        if datagram is not None:
            out.append(datagram)
    return out


def read_rtp_pcap(source: Path | bytes) -> list[RtpPacket]:
    """The RTP packets among a pcap file's UDP datagrams."""
    packets = (
        parse_rtp(d.payload, time=d.time, src_port=d.src[1], dst_port=d.dst[1]) for d in read_pcap(source)
    )
    return [p for p in packets if p is not None]
