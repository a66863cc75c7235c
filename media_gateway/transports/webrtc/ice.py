"""ICE for the WebRTC transport: the peer configuration, capped gathering, and remote `.local` candidates.

Every workaround for aiortc/aioice lives here; each says what it works around:

* `RTCConfiguration(iceServers=None)` silently adds Google's STUN server, and a STUN server that cannot be
  reached stalls every SDP answer for 5 s. We always pass an explicit list, built from settings only
  (empty by default: host candidates, which is all a LAN or a published port range needs).
* aioice waits up to 5 s (hard-coded default of `Connection.get_component_candidates`) for STUN/TURN
  replies while aiortc builds the answer. `install_gathering_policy` lowers that cap to
  `webrtc_gather_timeout_seconds` and applies the host-address allow-list, which aiortc does not pass
  through to aioice. It patches aioice once per process, in this one place.
* Chromium pages without media permission offer `uuid.local` mDNS candidates; with dnspython 2.9 aioice
  cannot resolve them and `setRemoteDescription` stalls ~1 s. We strip them from the offer: the browser's
  connectivity checks reach our host candidates and aioice learns the browser as a peer-reflexive
  candidate, the same path an offer without candidates takes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from media_gateway.settings import Settings

_GatherFn = Callable[..., Coroutine[Any, Any, list[aioice.Candidate]]]
_ORIGINAL_GATHER: _GatherFn = aioice.ice.Connection.get_component_candidates
_ORIGINAL_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def rtc_configuration(settings: Settings) -> RTCConfiguration:
    """The peer connection configuration: ICE servers from settings only, never `None`."""
    servers = [
        RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
        for server in settings.webrtc_ice_servers
    ]
    policy = (
        RTCIceTransportPolicy.RELAY
        if settings.webrtc_ice_transport_policy == "relay"
        else RTCIceTransportPolicy.ALL
    )
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def install_gathering_policy(
    *, timeout_seconds: float, host_addresses: list[str], include_loopback: bool
) -> None:
    """Cap STUN/TURN gathering and choose the host addresses aioice gathers on (process-wide)."""

    @functools.wraps(_ORIGINAL_GATHER)
    async def gather(
        self: aioice.Connection,
        component: int,
        addresses: list[str],
        timeout: float = 5,  # noqa: ASYNC109
    ) -> list[aioice.Candidate]:
        return await _ORIGINAL_GATHER(self, component, addresses, timeout=min(timeout, timeout_seconds))

    allowed = set(host_addresses)

    def host_addresses_of(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = _ORIGINAL_HOST_ADDRESSES(use_ipv4, use_ipv6)
        if allowed:
            found = [address for address in found if address in allowed]
        # aioice skips 127.0.0.1 on purpose; a host whose only interface is lo has no candidate at all.
        if include_loopback and use_ipv4 and "127.0.0.1" not in found:
            found.append("127.0.0.1")
        return found

    aioice.ice.Connection.get_component_candidates = gather  # type: ignore[method-assign]
    aioice.ice.get_host_addresses = host_addresses_of


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
