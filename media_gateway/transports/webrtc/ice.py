"""ICE for the WebRTC transport: the peer configuration, gathering, and remote `.local` candidates.

Every workaround for aiortc/aioice lives here (the UDP port range itself is ports.py); each says what it
works around and when it can go. Checked against aiortc 1.16.0 and aioice 0.13.0.

* `RTCConfiguration(iceServers=None)` silently adds Google's STUN server, and a STUN server that cannot be
  reached stalls every SDP answer for 5 s. We always pass an explicit list, built from settings only
  (empty by default: host candidates, which is all a LAN or a published port range needs).
* aioice waits up to 5 s (hard-coded default of `Connection.get_component_candidates`) for STUN/TURN
  replies while aiortc builds the answer; aiortc passes no gathering option through (aiortc#1344,
  aioice#4). `install_gathering_policy` lowers that cap to `webrtc_gather_timeout_seconds` and applies the
  host-address allow-list (and 127.0.0.1, which `aioice.ice.get_host_addresses` skips on purpose).
  Process-wide: the test suite's own aiortc clients get them too. Removable when aiortc exposes a
  gathering timeout and an interface filter.
* aioice binds port 0 for every host candidate (`get_component_candidates`: `local_addr=(address, 0)`)
  and leaves the local port of a TURN/UDP allocation to the kernel (`turn.create_turn_endpoint`:
  `remote_addr=` only), so media ports cannot be published (aioice#47, aiortc#487). With
  `webrtc_udp_ports` both come from a `PortRange`, and a full range refuses the call with 503
  `ice_ports_exhausted` instead of answering without candidates. The upstream `port_range` (aioice PR
  #112, open) covers host candidates only and is not passed through by aiortc: remove our host part when
  both land, the TURN part when aioice binds TURN sockets from a range as well.
* aioice has no 1:1 NAT option (pion's `SetNAT1To1IPs`, mediasoup's `announcedIp`): host candidates
  always carry the bound address. With `webrtc_public_address`, the gateway's host candidates of that
  address family announce it instead, with the bound port. Set `webrtc_host_addresses` to the one
  private address the NAT maps when the host has several.
* The range and the public address apply to the gateway's own peer connections only: `rtc_configuration`
  marks them (`GatewayIceServers`), and `RTCIceGatherer.__init__` is wrapped to remember their aioice
  `Connection`, because aiortc creates it with no way to pass options.
* Chromium pages without media permission offer `uuid.local` mDNS candidates; with dnspython 2.9 aioice
  cannot resolve them and `setRemoteDescription` stalls ~1 s. We strip them from the offer: the browser's
  connectivity checks reach our host candidates and aioice learns the browser as a peer-reflexive
  candidate, the same path an offer without candidates takes. So the gateway never opens aioice's mDNS
  socket (a shared socket on the fixed port 5353, outside any range).

What aioice cannot do (so neither can the gateway): ICE-TCP. aioice gathers UDP host, srflx and relay
candidates only, and pairs a remote candidate only with a local one of the same transport, so a client's
`tcp` candidates are parsed and never used (RFC 6544 is not implemented); TURN TCP allocations (RFC 6062)
neither (aioice#9). What works is TURN *over* TCP or TLS: `turn:host:port?transport=tcp` or
`turns:host:443` in `webrtc_ice_servers` makes the gateway reach its TURN server over TCP (the relayed
candidate is still UDP, relayed by the TURN server), and clients whose UDP is blocked reach the same
TURN server over TCP/TLS from their side. Only one STUN and one TURN entry are used. The local port of a
TURN/TCP connection is the kernel's (an outgoing connection; the range is for UDP).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import ssl as ssl_module
import weakref
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.turn
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import RTCIceGatherer

from media_gateway.observability.logging import get_logger
from media_gateway.settings import Settings
from media_gateway.transports.webrtc.ports import PortRange, PortsExhausted

log = get_logger(__name__)

_ORIGINAL_HOST_ADDRESSES = aioice.ice.get_host_addresses
_ORIGINAL_TURN_ENDPOINT = aioice.turn.create_turn_endpoint
_ORIGINAL_GATHERER_INIT = RTCIceGatherer.__init__
# The aioice 0.13.0 functions re-implemented below; a test pins their source, so that an aioice upgrade
# that changes them is noticed (and the copies brought up to date, or dropped).
UPSTREAM_COPIES = (aioice.ice.Connection.get_component_candidates, aioice.turn.create_turn_endpoint)


class GatewayIceServers(list[RTCIceServer]):
    """The ICE servers of a gateway peer connection: a plain list whose type marks the connection as the
    gateway's (aiortc hands this very list to every `RTCIceGatherer` it creates for the connection)."""


@dataclass(frozen=True)
class _Policy:
    timeout_seconds: float = 5.0
    host_addresses: frozenset[str] = frozenset()
    include_loopback: bool = False
    ports: PortRange | None = None  # gateway connections only
    public_address: str | None = None  # gateway connections only


_policy = _Policy()
_gateway_connections: weakref.WeakSet[aioice.Connection] = weakref.WeakSet()
# Set (in the TURN task's own context) while a gateway connection allocates on its TURN server.
_turn_ports: contextvars.ContextVar[PortRange | None] = contextvars.ContextVar("turn_ports", default=None)


def rtc_configuration(settings: Settings) -> RTCConfiguration:
    """The peer connection configuration: ICE servers from settings only, never `None`."""
    servers = GatewayIceServers(
        RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
        for server in settings.webrtc_ice_servers
    )
    policy = (
        RTCIceTransportPolicy.RELAY
        if settings.webrtc_ice_transport_policy == "relay"
        else RTCIceTransportPolicy.ALL
    )
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def install_gathering_policy(
    *,
    timeout_seconds: float,
    host_addresses: list[str],
    include_loopback: bool,
    udp_ports: str | None = None,
    public_address: str | None = None,
) -> None:
    """Cap STUN/TURN gathering and choose the host addresses aioice gathers on (process-wide); bind the
    gateway's ICE sockets from `udp_ports` ("LOW-HIGH") and announce `public_address` in its host
    candidates. The last call wins."""
    global _policy
    if public_address is not None:
        try:
            public_address = str(ipaddress.ip_address(public_address))
        except ValueError:
            raise ValueError(
                f"MEDIA_GATEWAY_WEBRTC_PUBLIC_ADDRESS must be an IP address, not {public_address!r}"
            ) from None
    _policy = _Policy(
        timeout_seconds=timeout_seconds,
        host_addresses=frozenset(host_addresses),
        include_loopback=include_loopback,
        ports=PortRange.parse(udp_ports) if udp_ports else None,
        public_address=public_address,
    )
    aioice.ice.Connection.get_component_candidates = _component_candidates  # type: ignore[method-assign]
    aioice.ice.get_host_addresses = _host_addresses
    aioice.turn.create_turn_endpoint = _create_turn_endpoint
    RTCIceGatherer.__init__ = _gatherer_init  # type: ignore[method-assign]


def _gatherer_init(
    self: RTCIceGatherer,
    iceServers: list[RTCIceServer] | None = None,
    iceTransportPolicy: RTCIceTransportPolicy = RTCIceTransportPolicy.ALL,
    local_username: str | None = None,
    local_password: str | None = None,
) -> None:
    _ORIGINAL_GATHERER_INIT(self, iceServers, iceTransportPolicy, local_username, local_password)
    if isinstance(iceServers, GatewayIceServers):
        _gateway_connections.add(self._connection)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    found = _ORIGINAL_HOST_ADDRESSES(use_ipv4, use_ipv6)
    if _policy.host_addresses:
        found = [address for address in found if address in _policy.host_addresses]
    # aioice skips 127.0.0.1 on purpose; a host whose only interface is lo has no candidate at all.
    if _policy.include_loopback and use_ipv4 and "127.0.0.1" not in found:
        found.append("127.0.0.1")
    return found


def _same_family(a: str, b: str) -> bool:
    return ipaddress.ip_address(a).version == ipaddress.ip_address(b).version


async def _component_candidates(
    self: aioice.Connection,
    component: int,
    addresses: list[str],
    timeout: float = 5,  # noqa: ASYNC109
) -> list[Candidate]:
    """aioice 0.13.0's `Connection.get_component_candidates`, with four changes: the STUN/TURN wait is
    capped; a gateway connection binds from the port range and announces the public address; and a full
    range raises `PortsExhausted` (aioice drops a failed TURN allocation silently)."""
    policy = _policy
    gateway = self in _gateway_connections
    ports = policy.ports if gateway else None
    public_address = policy.public_address if gateway else None
    timeout = min(timeout, policy.timeout_seconds)
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []

    # Host candidates.
    host_protocols: list[aioice.ice.StunProtocol] = []
    try:
        for address in addresses:
            try:
                if ports is None:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda: aioice.ice.StunProtocol(self), local_addr=(address, 0)
                    )
                else:
                    transport, protocol = await ports.datagram_endpoint(
                        lambda: aioice.ice.StunProtocol(self), address
                    )
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
            except OSError as exc:
                log.info("webrtc.ice_bind_failed", address=address, error=str(exc))
                continue
            host_protocols.append(protocol)
            bound_host, bound_port = transport.get_extra_info("sockname")[:2]
            announced = bound_host
            if public_address is not None and _same_family(public_address, bound_host):
                announced = public_address
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", bound_host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=announced,
                port=bound_port,
                type="host",
            )
            candidates.append(protocol.local_candidate)
    except BaseException:
        for protocol in host_protocols:
            protocol.transport.close()
        raise
    self._protocols += host_protocols

    tasks: list[asyncio.Task[tuple[Candidate, aioice.ice.StunProtocol | None]]] = []

    # Server-reflexive candidates (IPv4 only), through the host sockets.
    if self.stun_server:
        for protocol in host_protocols:
            if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                tasks.append(
                    asyncio.create_task(aioice.ice.server_reflexive_candidate(protocol, self.stun_server))
                )

    # The relayed candidate, its TURN socket bound from the range (see _create_turn_endpoint).
    if self.turn_server:
        context = contextvars.copy_context()
        context.run(_turn_ports.set, ports)
        relayed = aioice.ice.relayed_candidate(
            component=component,
            hide_related_address=self._transport_policy == aioice.TransportPolicy.RELAY,
            protocol_factory=lambda: aioice.ice.StunProtocol(self),
            turn_server=self.turn_server,
            turn_username=self.turn_username,
            turn_password=self.turn_password,
            turn_ssl=self.turn_ssl,
            turn_transport=self.turn_transport,
        )
        tasks.append(asyncio.create_task(relayed, context=context))

    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        exhausted: PortsExhausted | None = None
        for task in done:
            error = task.exception()
            if error is None:
                candidate, relay_protocol = task.result()
                candidates.append(candidate)
                if relay_protocol is not None:
                    self._protocols.append(relay_protocol)
            elif isinstance(error, PortsExhausted):
                exhausted = error
            else:
                log.info("webrtc.ice_server_failed", error=repr(error))
        if pending:
            log.info("webrtc.ice_server_timeout", pending=len(pending), timeout_seconds=timeout)
        if exhausted is not None:
            raise exhausted
    return candidates


async def _create_turn_endpoint(
    protocol_factory: Any,
    server_addr: tuple[str, int],
    username: str | None,
    password: str | None,
    lifetime: int = aioice.turn.DEFAULT_ALLOCATION_LIFETIME,
    channel_refresh_time: int = aioice.turn.DEFAULT_CHANNEL_REFRESH_TIME,
    ssl: bool | ssl_module.SSLContext | None = None,
    transport: str = "udp",
) -> tuple[aioice.turn.TurnTransport, Any]:
    """aioice 0.13.0's `turn.create_turn_endpoint`; over UDP, for a gateway connection with a port range,
    its socket is bound from the range (on the wildcard address: the kernel still picks the source
    address by route) and connected to the TURN server, as `remote_addr=` did."""
    ports = _turn_ports.get()
    if ports is None or transport != "udp":
        return await _ORIGINAL_TURN_ENDPOINT(
            protocol_factory,
            server_addr,
            username,
            password,
            lifetime=lifetime,
            channel_refresh_time=channel_refresh_time,
            ssl=ssl,
            transport=transport,
        )
    loop = asyncio.get_running_loop()
    family, _kind, _proto, _name, remote = (
        await loop.getaddrinfo(server_addr[0], server_addr[1], type=socket.SOCK_DGRAM)
    )[0]
    inner_transport, inner_protocol = await ports.datagram_endpoint(
        lambda: aioice.turn.TurnClientUdpProtocol(
            server_addr,
            username=username,
            password=password,
            lifetime=lifetime,
            channel_refresh_time=channel_refresh_time,
        ),
        "0.0.0.0" if family == socket.AF_INET else "::",  # noqa: S104 (an outgoing socket, as aioice's)
        family=family,
        remote_addr=remote,
    )
    try:
        sock = inner_transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        protocol = protocol_factory()
        turn_transport = aioice.turn.TurnTransport(inner_protocol)
        await turn_transport._connect(protocol)
    except BaseException:
        # Also on the CancelledError of a gathering timeout: the socket must not leak.
        inner_transport.close()
        raise
    return turn_transport, protocol


def strip_mdns_candidates(sdp: str) -> tuple[str, int]:
    """Drop `a=candidate` lines whose address is an mDNS `.local` name; returns the SDP and the count."""
    kept: list[str] = []
    dropped = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().rstrip(".").endswith(".local"):
                dropped += 1
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped
