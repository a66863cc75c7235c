"""The UDP port range WebRTC media uses (`webrtc_udp_ports`), so that it can be published and firewalled.

aioice binds port 0 (an ephemeral port chosen by the kernel) for every host candidate, and lets the
kernel choose the local port of a TURN-over-UDP allocation too. ice.py binds those sockets through a
`PortRange` instead: each bind tries the range's ports in turn, starting after the last port handed out
(so a port just released is the last to be reused), skips ports some other socket holds, and raises
`PortsExhausted` when every port of the range is taken. That error is an `ApiError`: the signaling
answers the offer 503 `ice_ports_exhausted` (media_gateway/signaling/calls.py re-raises an `ApiError`
from the answer as is).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from media_gateway.observability.logging import get_logger
from media_gateway.signaling.errors import ApiError

log = get_logger(__name__)

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)


class PortsExhausted(ApiError):
    """No port of the range is free: the call cannot get its media socket."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(
            503,
            f"No free UDP port for WebRTC media in this gateway's range {low}-{high}; try again later.",
            code="ice_ports_exhausted",
            error_type="server_error",
        )


class PortRange:
    """An inclusive range of UDP ports, handed out cycling and skipping ports in use (process-wide)."""

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high <= 65535:
            raise ValueError(f"bad UDP port range {low}-{high}")
        self.low = low
        self.high = high
        self._next = low

    @classmethod
    def parse(cls, spec: str) -> PortRange:
        """`LOW-HIGH`, as in `webrtc_udp_ports`."""
        low, separator, high = spec.partition("-")
        if not separator:
            raise ValueError(f"a UDP port range is LOW-HIGH, not {spec!r}")
        return cls(int(low), int(high))

    def __len__(self) -> int:
        return self.high - self.low + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def __repr__(self) -> str:
        return f"PortRange({self.low}-{self.high})"

    def bind(self, family: socket.AddressFamily, address: str) -> socket.socket:
        """A UDP socket bound to `address` on the next free port of the range.

        Raises `PortsExhausted` when every port is in use on that address, and the `OSError` of any other
        bind failure (an address this host does not have, say), which is not the range's business."""
        size = len(self)
        start = self._next - self.low
        for offset in range(size):
            port = self.low + (start + offset) % size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            except BaseException:
                sock.close()
                raise
            self._next = port + 1 if port < self.high else self.low
            return sock
        log.warning("webrtc.udp_ports_exhausted", address=address, low=self.low, high=self.high)
        raise PortsExhausted(self.low, self.high)

    async def datagram_endpoint(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        address: str,
        *,
        family: socket.AddressFamily | None = None,
        remote_addr: tuple[Any, ...] | None = None,
    ) -> tuple[asyncio.DatagramTransport, _ProtocolT]:
        """`loop.create_datagram_endpoint` on a socket of the range bound to `address` (and connected to
        `remote_addr`, which must be an IP address of `family`, when given)."""
        if family is None:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = self.bind(family, address)
        try:
            if remote_addr is not None:
                sock.connect(remote_addr)  # UDP: no packet is sent; the kernel filters what is received
            return await asyncio.get_running_loop().create_datagram_endpoint(protocol_factory, sock=sock)
        except BaseException:
            sock.close()
            raise
