"""ICE configuration: servers only from settings, capped gathering, mDNS candidates stripped."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from media_gateway.app_keys import METRICS
from media_gateway.settings import load_settings
from media_gateway.transports.webrtc.ice import rtc_configuration, strip_mdns_candidates
from tests.conftest import GatewayFactory
from tests.webrtc.client import CallClient
from tests.webrtc.test_lifecycle import post_offer


def test_ice_servers_come_only_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    default = rtc_configuration(load_settings(_env_file=None))
    assert default.iceServers == []  # never None: aiortc would add Google's STUN server
    monkeypatch.setenv(
        "MEDIA_GATEWAY_WEBRTC_ICE_SERVERS",
        '[{"urls": "stun:stun.example.org:3478"},'
        ' {"urls": ["turns:turn.example.org:443?transport=tcp"], "username": "u", "credential": "p"}]',
    )
    monkeypatch.setenv("MEDIA_GATEWAY_WEBRTC_ICE_TRANSPORT_POLICY", "relay")
    configured = rtc_configuration(load_settings(_env_file=None))
    assert [server.urls for server in configured.iceServers or []] == [
        "stun:stun.example.org:3478",
        ["turns:turn.example.org:443?transport=tcp"],
    ]
    turn = (configured.iceServers or [])[1]
    assert (turn.username, turn.credential) == ("u", "p")
    assert configured.iceTransportPolicy.value == "relay"


def test_mdns_candidates_are_stripped() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2122260223 0b1c2d3e-aaaa-bbbb-cccc-1234567890ab.local 54321 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 192.0.2.10 54322 typ host\r\n"
    )
    stripped, count = strip_mdns_candidates(sdp)
    assert count == 1
    assert ".local" not in stripped
    assert "192.0.2.10" in stripped


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_unanswering_stun_server_costs_only_the_gathering_cap(
    gateway_factory: GatewayFactory,
) -> None:
    # A STUN server that resolves but never answers would block every answer for aioice's 5 s.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        gateway = await gateway_factory(
            webrtc_ice_servers=[{"urls": f"stun:127.0.0.1:{port}"}], webrtc_gather_timeout_seconds=0.5
        )
        key = await gateway.create_api_key()
        client = CallClient()
        try:
            started = time.perf_counter()
            status, answer, _location = await post_offer(gateway.base_url, key, await client.offer())
            elapsed = time.perf_counter() - started
            assert status == 201, answer
            assert 0.4 < elapsed < 1.5
            await client.accept(answer)
            await asyncio.wait_for(client.opened.wait(), 10)
        finally:
            await client.close()
        registry = gateway.app[METRICS].registry
        assert registry.get_sample_value("gateway_webrtc_answer_seconds_count") == 1
    finally:
        silent.close()
