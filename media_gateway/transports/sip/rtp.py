"""RTP packets (RFC 3550), receive statistics and RFC 4733 telephone-events.

`RtpStats` keeps what an operator needs to judge a line: packets received, lost (sequence gaps), late
(arriving after a newer packet was already played, so dropped), and the interarrival jitter estimate of
RFC 3550 §6.4.1 / appendix A.8 in milliseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct("!BBHII")
DTMF_EVENTS: Final = "0123456789*#ABCD"


class RtpError(ValueError):
    """Not an RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def encode(self) -> bytes:
        return (
            HEADER.pack(
                0x80,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            + self.payload
        )


def parse(data: bytes) -> RtpPacket:
    if len(data) < HEADER.size:
        raise RtpError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError("not RTP version 2")
    offset = HEADER.size + 4 * (first & 0x0F)  # CSRC list
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: its length is the last byte
        end -= data[-1]
    if offset > end:
        raise RtpError("truncated packet")
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & 0x80))


class RtpStats:
    """Receive statistics of one RTP stream (one SSRC at a time; a new SSRC restarts the sequence)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.late = 0
        self.lost = 0
        self.jitter = 0.0  # in timestamp units
        self._ssrc: int | None = None
        self._highest = 0
        self._transit: float | None = None

    def accept(self, packet: RtpPacket, arrival: float, *, timing: bool = True) -> bool:
        """Count `packet` (arrived at `arrival`, seconds); False when it is late (older than one already
        received): the caller drops it instead of playing audio out of order. `timing=False` for RFC 4733
        events: they share the stream's sequence numbers (so a gap is not counted as loss) but keep their
        event's start timestamp and repeat packets, so they neither move the jitter nor count as late."""
        self.received += 1
        if packet.ssrc != self._ssrc:
            self._ssrc, self._highest, self._transit = packet.ssrc, packet.sequence, None
        else:
            delta = (packet.sequence - self._highest) & 0xFFFF
            if delta == 0 or delta >= 0x8000:  # a duplicate, or behind the highest sequence seen
                if timing:
                    self.late += 1
                if delta and self.lost > 0:
                    self.lost -= 1  # counted as lost when the gap opened; it came, but too late
                return False
            self.lost += delta - 1
            self._highest = packet.sequence
        if not timing:
            return True
        transit = arrival * self.clock_rate - packet.timestamp
        if self._transit is not None:
            self.jitter += (abs(transit - self._transit) - self.jitter) / 16
        self._transit = transit
        return True

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate


class DtmfReceiver:
    """RFC 4733 events → digits, each once: an event is one timestamp, sent repeatedly with a growing
    duration and its end packet three times; the digit counts when its first packet arrives."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (ssrc, timestamp) of the last event counted

    def push(self, packet: RtpPacket) -> str | None:
        if len(packet.payload) < 4:
            return None
        event = packet.payload[0]
        key = (packet.ssrc, packet.timestamp)
        if event >= len(DTMF_EVENTS) or key == self._last:
            return None
        self._last = key
        return DTMF_EVENTS[event]
