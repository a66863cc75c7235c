"""mDNS `.local` host candidates from browsers, in both Chromium modes.

* **With media permission** (fake microphone, `getUserMedia` granted): Chromium exposes its raw host
  addresses, so the offer has no `.local` candidate and the gateway strips nothing.
* **Without media permission** (a page that never calls `getUserMedia`: a data channel plus a `recvonly`
  audio transceiver, which gives the offer the audio m-line the gateway requires): Chromium hides its
  addresses behind `uuid.local` names. This needs a default route, and nothing else: on Debian's
  Chromium 156 under Playwright no feature flag is needed (`WebRtcHideLocalIpsWithMdns` is on by default).
  The gateway strips those lines (`strip_mdns_candidates`), answers at once, and the browser's
  connectivity checks make aioice learn the browser as a peer-reflexive candidate.

Each mode drives its own page on the gateway's origin (the demo page, so `fetch` is same-origin) with
its own script through `page.evaluate`; the demo page's code is not used. The offer is POSTed after
Chromium finished gathering, so it carries every candidate Chromium has. Chromium comes from Debian
(`scripts/install-system-packages.sh`); Playwright only drives it. A missing browser fails the test: it never
skips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from media_gateway.app_keys import CALLS
from media_gateway.transports.webrtc.registry import LiveCalls
from tests.browser.conftest import DemoGatewayFactory
from tests.support.conformance import GATE

CHROMIUM = Path("/usr/bin/chromium")
MAX_ANSWER_MS = 1000.0  # an unresolvable `.local` candidate costs ~1 s in setRemoteDescription
MAX_CONNECT_MS = 5000.0
STEP_TIMEOUT_MS = 8000  # any one step inside the page

# Playwright already passes --headless, --no-sandbox, --no-first-run, --disable-background-networking,
# --disable-component-update and its own --disable-features list (so none is added here).
COMMON_ARGS = ["--disable-gpu", "--disable-quic", "--disable-sync", "--allow-loopback-in-peer-connection"]
MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

# Runs in the page: mint an `ek_…`, build the peer connection, gather, POST the offer, wait for the data
# channel and `session.created`. Returns everything the test asserts on, or the step that failed.
CALL_SCRIPT = """
async ({withMedia, stepTimeoutMs}) => {
  const result = {steps: [], raw: [], error: null};
  const step = (name) => result.steps.push(name);
  const within = (promise, what) => Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), stepTimeoutMs)),
  ]);
  let pc = null;
  let mic = null;
  try {
    const secret = await fetch("/demo/client_secret", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: "{}",
    });
    if (!secret.ok) throw new Error(`client secret: ${secret.status} ${await secret.text()}`);
    const key = (await secret.json()).value;
    step("secret");

    pc = new RTCPeerConnection();
    window.mdnsCall = pc;
    if (withMedia) {
      mic = await navigator.mediaDevices.getUserMedia({audio: true});
      pc.addTrack(mic.getTracks()[0], mic);
      step("getUserMedia");
    } else {
      pc.addTransceiver("audio", {direction: "recvonly"});
    }
    result.permission = (await navigator.permissions.query({name: "microphone"})).state;
    const dc = pc.createDataChannel("oai-events");
    const opened = new Promise((resolve) => dc.addEventListener("open", resolve, {once: true}));
    const created = new Promise((resolve) => dc.addEventListener("message", (e) => {
      result.raw.push(e.data);
      if (JSON.parse(e.data).type === "session.created") resolve();
    }));
    const connected = new Promise((resolve) => pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") resolve();
    }));

    const gathered = new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    await within(gathered, "ICE gathering");
    const offer = pc.localDescription.sdp;
    result.offer = offer;
    step("gathered");

    const posted = performance.now();
    const response = await fetch("/v1/realtime/calls", {
      method: "POST", body: offer,
      headers: {Authorization: `Bearer ${key}`, "Content-Type": "application/sdp"},
    });
    result.answerMs = performance.now() - posted;
    result.status = response.status;
    result.contentType = response.headers.get("Content-Type");
    result.location = response.headers.get("Location");
    const answer = await response.text();
    if (!response.ok) throw new Error(`SDP exchange: ${response.status} ${answer}`);
    result.answer = answer;
    step("answered");

    const applied = performance.now();
    await pc.setRemoteDescription({type: "answer", sdp: answer});
    await within(connected, "connectionState connected");
    result.connectMs = performance.now() - applied;
    step("connected");
    await within(opened, "data channel open");
    result.openMs = performance.now() - applied;
    step("open");
    await within(created, "session.created");
    result.createdMs = performance.now() - applied;
    step("session.created");

    const stats = await pc.getStats();
    for (const transport of stats.values()) {
      if (transport.type !== "transport" || !transport.selectedCandidatePairId) continue;
      const pair = stats.get(transport.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      result.selectedPair = {
        local: {type: local.candidateType, address: local.address ?? null, protocol: local.protocol},
        remote: {type: remote.candidateType, address: remote.address ?? null, port: remote.port},
      };
    }
  } catch (error) {
    result.error = String(error);
    result.state = pc && {connection: pc.connectionState, ice: pc.iceConnectionState};
  }
  return result;
}
"""

HANGUP_SCRIPT = """
() => {
  const pc = window.mdnsCall;
  if (pc) { pc.getSenders().forEach((s) => s.track && s.track.stop()); pc.close(); }
  return pc ? pc.connectionState : null;
}
"""


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def candidate_address(line: str) -> str:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    return line.split()[4]


def has_default_route() -> bool:
    """Whether the kernel has an IPv4 default route (Chromium's condition for mDNS obfuscation)."""
    with open("/proc/net/route") as routes:
        rows = [line.split() for line in routes]
    return any(len(fields) > 1 and fields[1] == "00000000" for fields in rows)


def remote_candidates_seen_by_gateway(calls: LiveCalls, location: str | None) -> list[dict[str, Any]]:
    """The remote (browser) candidates of the live call's ICE transport, as aiortc reports them."""
    call = calls.get(location.rsplit("/", 1)[-1]) if location else None
    if call is None or call.pc.sctp is None:
        return []
    transport = call.pc.sctp.transport.transport  # RTCSctpTransport → RTCDtlsTransport → RTCIceTransport
    return [
        {"type": candidate.type, "address": candidate.ip, "port": candidate.port}
        for candidate in transport.getRemoteCandidates()
    ]


async def released_within(calls: Sized, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if not len(calls):
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "with_media", [True, False], ids=["with-media-permission", "without-media-permission"]
)
async def test_mdns_candidates_in_both_chromium_modes(
    demo_gateway_factory: DemoGatewayFactory, with_media: bool
) -> None:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-packages.sh")
    gateway = await demo_gateway_factory(webrtc_include_loopback=True)
    calls = gateway.app[CALLS]
    console: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=COMMON_ARGS + (MEDIA_ARGS if with_media else []),
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            await page.goto(f"{gateway.base_url}/")
            result: dict[str, Any] = await page.evaluate(
                CALL_SCRIPT, {"withMedia": with_media, "stepTimeoutMs": STEP_TIMEOUT_MS}
            )
            server_remote = remote_candidates_seen_by_gateway(calls, result.get("location"))
            final_state = await page.evaluate(HANGUP_SCRIPT)
        finally:
            await browser.close()
    released = await released_within(calls, seconds=10)

    offer: str = result.get("offer") or ""
    offered = candidate_lines(offer)
    mdns = [line for line in offered if candidate_address(line).endswith(".local")]
    summary = (
        f"steps {result['steps']}, error {result['error']}, state {result.get('state')}, "
        f"permission {result.get('permission')}, offer candidates {offered}, console {console}"
    )
    assert offer, f"the page produced no offer: {summary}"

    if with_media:
        assert result.get("permission") == "granted", summary
        assert not mdns, f"a page with media permission offered mDNS candidates: {mdns}"
        assert offered, f"the offer has no candidates at all: {summary}"
    else:
        assert result.get("permission") != "granted", summary
        assert mdns, (
            "Chromium offered no mDNS `.local` candidate from a page without media permission, so this "
            "mode was not exercised on this host. Chromium hides its host addresses behind `.local` names "
            f"only when a default route exists (default route here: {has_default_route()}). {summary}"
        )
        raw_ips = [line for line in offered if not candidate_address(line).endswith(".local")]
        assert not raw_ips, f"without media permission Chromium still exposed raw addresses: {raw_ips}"

    assert result["error"] is None, f"the call did not connect: {summary}"
    assert result["status"] == 201, summary
    assert result["contentType"].startswith("application/sdp"), summary
    assert result["location"].startswith("/v1/realtime/calls/rtc_"), summary
    assert result["answerMs"] < MAX_ANSWER_MS, (
        f"the answer took {result['answerMs']:.0f} ms (an unresolved `.local` candidate costs ~1 s): "
        f"{summary}"
    )
    assert result["connectMs"] < MAX_CONNECT_MS, summary
    assert not [line for line in candidate_lines(result["answer"]) if ".local" in line]

    events = [GATE.check(raw) for raw in result["raw"]]
    assert events, summary
    assert events[0]["type"] == "session.created", [event["type"] for event in events]

    # What the gateway saw: it stripped exactly the `.local` lines, and with none left it learned the
    # browser's address from the connectivity checks (peer-reflexive).
    call_id = result["location"].rsplit("/", 1)[-1]
    record = await gateway.repositories.calls.get(call_id)
    assert record is not None
    assert record.meta["mdns_candidates_stripped"] == len(mdns), record.meta
    server_types = {candidate["type"] for candidate in server_remote}
    if with_media:
        assert "host" in server_types, server_remote
    else:
        assert server_types == {"prflx"}, server_remote

    assert final_state == "closed"
    assert released, "the gateway still holds the call after the page hung up"

    mode = "with media permission" if with_media else "without media permission"
    offered_kinds = sorted({"mdns" if line in mdns else candidate_address(line) for line in offered})
    print(
        f"\nmDNS, {mode}: {len(offered)} offered candidates ({len(mdns)} `.local`; addresses "
        f"{offered_kinds}); gateway stripped {record.meta['mdns_candidates_stripped']}; answer "
        f"{result['answerMs']:.0f} ms; connected {result['connectMs']:.0f} ms, data channel open "
        f"{result['openMs']:.0f} ms, session.created {result['createdMs']:.0f} ms after the answer; "
        f"browser's selected pair {result.get('selectedPair')}; gateway's remote candidates {server_remote}"
    )
