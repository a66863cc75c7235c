"""Malformed offers and bad requests: each gets the right status and an OpenAI-shaped error, no peer
connection or session is left behind, and the gateway keeps serving good calls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from media_gateway.app_keys import CALLS, SESSIONS
from tests.conftest import Gateway
from tests.webrtc.client import CallClient

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def offer_of(setup: Callable[[RTCPeerConnection], Any]) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        setup(pc)
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        return pc.localDescription.sdp
    finally:
        await pc.close()


def without(sdp: str, pattern: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not re.match(pattern, line))


def multipart(parts: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value, content_type in parts:
        form.add_field(name, value, content_type=content_type)
    return form


async def test_malformed_offers_are_refused_and_the_server_keeps_serving(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    good = await offer_of(lambda pc: (pc.addTransceiver("audio"), pc.createDataChannel("oai-events")))
    video_only = await offer_of(lambda pc: pc.addTransceiver("video"))
    data_only = await offer_of(lambda pc: pc.createDataChannel("oai-events"))
    sdp_type = "application/sdp"
    bearer = {"Authorization": f"Bearer {key}"}
    unsupported = re.sub(r"(?m)^m=audio (\d+) (\S+) .*$", r"m=audio \1 \2 96", good)
    unsupported = without(unsupported, r"a=(rtpmap|fmtp|rtcp-fb):(?!96 )")
    unsupported = re.sub(r"a=rtpmap:96 \S+", "a=rtpmap:96 speex/16000", unsupported)
    cases: list[tuple[str, Any, dict[str, str], int, str | None]] = [
        ("empty body", b"", {"Content-Type": sdp_type}, 400, "invalid_offer"),
        ("whitespace", b"  \r\n ", {"Content-Type": sdp_type}, 400, "invalid_offer"),
        ("not sdp", b"hello world", {"Content-Type": sdp_type}, 400, "invalid_offer"),
        ("invalid utf-8", b"v=0\r\n\xff\xfe", {"Content-Type": sdp_type}, 400, "invalid_offer"),
        ("truncated", good[: len(good) // 5].encode(), {"Content-Type": sdp_type}, 400, None),
        ("video only", video_only.encode(), {"Content-Type": sdp_type}, 400, "no_audio_media"),
        ("data channel only", data_only.encode(), {"Content-Type": sdp_type}, 400, "no_audio_media"),
        (
            "audio rejected (port 0)",
            re.sub(r"(?m)^m=audio \d+", "m=audio 0", good).encode(),
            {"Content-Type": sdp_type},
            400,
            "no_audio_media",
        ),
        ("unsupported codecs", unsupported.encode(), {"Content-Type": sdp_type}, 400, "unsupported_codecs"),
        (
            "no ICE credentials",
            without(good, r"a=ice-(ufrag|pwd):").encode(),
            {"Content-Type": sdp_type},
            400,
            "invalid_offer",
        ),
        (
            "no DTLS fingerprint",
            without(good, r"a=fingerprint:").encode(),
            {"Content-Type": sdp_type},
            400,
            "invalid_offer",
        ),
        (
            "garbage attribute",
            good.replace("a=rtpmap:", "a=rtpmap:x", 1).encode(),
            {"Content-Type": sdp_type},
            400,
            "invalid_offer",
        ),
        ("json content type", good.encode(), {"Content-Type": "application/json"}, 415, None),
        ("text/plain", good.encode(), {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        ("huge body", b"v=0\r\n" + b"a=x\r\n" * 300_000, {"Content-Type": sdp_type}, 413, None),
        ("sdp over 128 KiB", (good + "a=x\r\n" * 30_000).encode(), {"Content-Type": sdp_type}, 413, None),
        (
            "garbage multipart",
            b"--nope\r\n\r\n\x00\x01garbage",
            {"Content-Type": "multipart/form-data; boundary=zzz"},
            400,
            None,
        ),
        (
            "multipart without sdp",
            multipart([("session", b'{"type":"realtime"}', "application/json")]),
            {},
            400,
            "missing_required_parameter",
        ),
        (
            "bad session JSON",
            multipart([("sdp", good.encode(), sdp_type), ("session", b"{not json", "application/json")]),
            {},
            400,
            "invalid_json",
        ),
        (
            "session not an object",
            multipart([("sdp", good.encode(), sdp_type), ("session", b"[1, 2]", "application/json")]),
            {},
            400,
            "invalid_type",
        ),
        (
            "beta session shape",
            multipart(
                [
                    ("sdp", good.encode(), sdp_type),
                    ("session", json.dumps({"input_audio_format": "pcm16"}).encode(), "application/json"),
                ]
            ),
            {},
            400,
            None,
        ),
    ]
    auth_cases: list[tuple[str, dict[str, str], int]] = [
        ("no authorization", {}, 401),
        ("wrong API key", {"Authorization": "Bearer sk_not_a_real_key_0000000000000000"}, 401),
        ("forged client secret", {"Authorization": "Bearer ek_forged0000000000000000000000"}, 401),
        ("basic auth", {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ]
    async with aiohttp.ClientSession() as http:
        url = gateway.base_url + "/v1/realtime/calls"
        checked = 0
        for name, body, headers, status, code in cases:
            response = await http.post(url, data=body, headers={**bearer, **headers})
            payload = await response.json()
            assert response.status == status, (name, payload)
            print(
                f"{name:28} {response.status} {payload['error']['code']}: {payload['error']['message'][:70]}"
            )
            assert set(payload["error"]) == {"message", "type", "param", "code"}, name
            assert payload["error"]["message"], name
            if code is not None:
                assert payload["error"]["code"] == code, (name, payload)
            assert response.headers["Access-Control-Allow-Origin"] == "*", name
            checked += 1
        for name, headers, status in auth_cases:
            response = await http.post(url, data=good.encode(), headers={**headers, "Content-Type": sdp_type})
            payload = await response.json()
            assert response.status == status, (name, payload)
            assert payload["error"]["type"] == "invalid_request_error", name
            checked += 1
    assert checked >= 25
    assert len(gateway.app[CALLS]) == 0
    assert len(gateway.app[SESSIONS]) == 0

    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
    finally:
        await client.close()
