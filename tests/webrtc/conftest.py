"""WebRTC tests run real aiortc peers against a gateway on loopback (host candidates, no STUN)."""

from __future__ import annotations

import gc

import pytest
from aiortc import RTCPeerConnection


def live_peer_connections() -> int:
    gc.collect()
    return sum(
        1
        for obj in gc.get_objects()
        if isinstance(obj, RTCPeerConnection) and obj.connectionState != "closed"
    )


@pytest.fixture(autouse=True)
def _no_live_peer_connections_left() -> object:
    yield
    assert live_peer_connections() == 0, "a test left a peer connection open"
