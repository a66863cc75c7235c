"""WebRTC media behind firewalls and NAT, with real peers: the UDP port range, the announced public
address, and calls relayed by a real TURN server (coturn) over UDP and over TCP.

The gateway's sockets are read from the kernel (/proc/self/net/udp{,6} for this process's descriptors), not
from aioice's objects: the client peer runs in this process too, so its sockets are told apart by when they
appear (its offer is gathered before the gateway answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

import tests.webrtc.client as client_module
from media_gateway.app_keys import CALLS
from media_gateway.transports.webrtc import ice
from media_gateway.transports.webrtc.ports import PortRange
from tests.conftest import Gateway, GatewayFactory
from tests.speech.audio import padded, spoken, word_errors, words
from tests.webrtc.client import CallClient
from tests.webrtc.test_calls import wait_until
from tests.webrtc.test_lifecycle import post_offer

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the gateways' database

TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}
# Both peers gather on 127.0.0.1 only: the same on every host (a lo-only one too), and nothing leaves it.
LOOPBACK_ONLY: dict[str, Any] = {"webrtc_host_addresses": ["127.0.0.1"], "webrtc_include_loopback": True}
# Ranges the tests publish: above Linux's ephemeral ports (32768-60999), so no other socket is likely there.
RANGES_FROM, RANGES_TO = 61000, 63999
TURN_RELAY_PORTS = (64100, 64999)  # coturn's relayed addresses
TURN_USER, TURN_PASSWORD = "gateway", "relay-secret"


def udp_sockets() -> dict[int, int]:
    """This process's UDP sockets (IPv4 and IPv6): socket inode → local port."""
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    found: dict[int, int] = {}
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                inode = int(fields[9])
                if inode in inodes:
                    found[inode] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def new_ports(before: dict[int, int], after: dict[int, int]) -> list[int]:
    return sorted(port for inode, port in after.items() if inode not in before)


def free_range(size: int) -> PortRange:
    """A range of `size` ports that are all free on every IPv4 address right now."""
    for _ in range(200):
        low = random.randrange(RANGES_FROM, RANGES_TO - size)
        probes: list[socket.socket] = []
        try:
            for port in range(low, low + size):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind(("0.0.0.0", port))  # conflicts with the port on any address
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return PortRange(low, low + size - 1)
    raise AssertionError("no free port range found")


def candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of the `a=candidate` lines, each once (aiortc repeats them in every bundled
    m= section)."""
    found: list[tuple[str, int, str]] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            candidate = (fields[4], int(fields[5]), fields[7])
            if candidate not in found:
                found.append(candidate)
    return found


def ice_connection(pc: RTCPeerConnection) -> aioice.Connection:
    """The (bundled) aioice connection of a peer connection."""
    sctp = pc.sctp
    assert sctp is not None
    connection: aioice.Connection = sctp.transport.transport.iceGatherer._connection
    return connection


def selected_pair(pc: RTCPeerConnection) -> tuple[str, str]:
    """(local type, remote type) of the nominated candidate pair."""
    pair = ice_connection(pc)._nominated[1]
    return pair.local_candidate.type, pair.remote_candidate.type


async def place_call(gateway: Gateway, key: str, client: CallClient) -> tuple[str, list[int]]:
    """Offer, answer, connect; returns the answer and the UDP ports the gateway opened to answer it."""
    offer = await client.offer()  # the client's sockets exist from here on
    before = udp_sockets()
    status, answer, location = await post_offer(gateway.base_url, key, offer)
    assert status == 201, answer
    opened = new_ports(before, udp_sockets())
    client.location = location
    await client.accept(answer)
    await asyncio.wait_for(client.opened.wait(), 15)
    return answer, opened


async def hang_up(gateway: Gateway, client: CallClient) -> None:
    """Close the client; wait until the gateway has ended the call and closed its sockets."""
    call = gateway.app[CALLS].get(client.call_id)
    held = set()
    if call is not None:
        held = {p.transport.get_extra_info("sockname")[1] for p in ice_connection(call.pc)._protocols}
    await client.close()
    await wait_until(lambda: gateway.app[CALLS].get(client.call_id) is None, timeout=10)
    await wait_until(lambda: not held & set(udp_sockets().values()), timeout=5)


async def spoken_turn(client: CallClient) -> None:
    """A spoken question, its transcript, and the spoken reply heard on the client's inbound track."""
    await client.wait_for("session.created")
    client.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}}})
    await client.wait_for("session.updated")
    heard_before = len(client.received)
    sentence = "what time is it"
    client.track.say(padded(spoken(sentence)))
    transcript = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert word_errors(sentence, transcript["transcript"]) / len(words(sentence)) <= 0.25
    done = await client.wait_for("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    await client.wait_for("output_audio_buffer.stopped", timeout=30)
    assert client.received_rms(heard_before) > 100


# --- the aioice code ice.py re-implements -----------------------------------------------------------------


def test_the_aioice_functions_ice_py_copies_are_unchanged() -> None:
    # ice.py carries modified copies of these; when aioice changes them, bring the copies up to date (or drop
    # them if aioice now binds from a port range itself: aioice PR #112) and update the digests.
    digests = {
        fn.__qualname__: hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]
        for fn in ice.UPSTREAM_COPIES
    }
    assert digests == {
        "Connection.get_component_candidates": "118597a9fcb703f9",
        "create_turn_endpoint": "c84ad1cc7c547570",
    }, f"aioice {aioice.__version__} changed the code ice.py copies"


# --- the UDP port range ------------------------------------------------------------------------------------


@ON_SQLITE
async def test_a_call_uses_only_ports_of_the_range(gateway_factory: GatewayFactory) -> None:
    ports = free_range(20)
    # Every host address (IPv4 and IPv6 where the host has them): each gets a socket from the range.
    gateway = await gateway_factory(webrtc_udp_ports=f"{ports.low}-{ports.high}")
    key = await gateway.create_api_key()
    baseline = udp_sockets()
    client = CallClient()
    try:
        offer = await client.offer()
        client_ports = new_ports(baseline, udp_sockets())
        assert client_ports, "the client gathered no host candidate"
        answered = udp_sockets()
        status, answer, location = await post_offer(gateway.base_url, key, offer)
        assert status == 201, answer
        gateway_ports = new_ports(answered, udp_sockets())
        client.location = location
        await client.accept(answer)
        await asyncio.wait_for(client.opened.wait(), 15)
        await spoken_turn(client)

        # The kernel's view, after a whole spoken turn: every UDP socket the gateway opened for the call
        # is bound in the range, and the answer's candidates are exactly those sockets.
        during = udp_sockets()
        call_ports = sorted(set(new_ports(baseline, during)) - set(client_ports))
        assert gateway_ports, "the gateway opened no UDP socket"
        assert call_ports == gateway_ports
        assert all(port in ports for port in gateway_ports), (gateway_ports, ports)
        offered = candidates(answer)
        assert {port for _, port, _ in offered} == set(gateway_ports)
        assert {kind for _, _, kind in offered} == {"host"}
        call = gateway.app[CALLS].get(client.call_id)
        assert call is not None
        assert selected_pair(call.pc) == ("host", "host")
        print(f"range {ports.low}-{ports.high}: gateway UDP ports {gateway_ports}, client {client_ports}")
    finally:
        await hang_up(gateway, client)
    left = set(new_ports(baseline, udp_sockets())) & set(gateway_ports)
    assert not left, f"gateway sockets outlived their call: {left}"


@ON_SQLITE
async def test_the_range_cycles_skips_ports_in_use_and_a_full_range_answers_503(
    gateway_factory: GatewayFactory,
) -> None:
    ports = free_range(3)
    low, busy, high = ports.low, ports.low + 1, ports.high
    gateway = await gateway_factory(webrtc_udp_ports=f"{low}-{high}", **LOOPBACK_ONLY)
    key = await gateway.create_api_key()
    occupant = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # another program holds the middle port
    occupant.bind(("0.0.0.0", busy))
    live: list[CallClient] = []
    try:
        seen: list[list[int]] = []
        for keep in (False, False, True, True):
            client = CallClient()
            live.append(client)
            answer, opened = await place_call(gateway, key, client)
            assert [port for _, port, _ in candidates(answer)] == opened
            seen.append(opened)
            if not keep:
                await hang_up(gateway, client)
                live.remove(client)
        # The first port; then the one after it in use elsewhere is skipped, and the first one, free again,
        # is not reused yet (cycling); then the cycle wraps, and the last free port is taken again.
        assert seen == [[low], [high], [low], [high]], seen

        # Two calls hold the free ports: the next offer is refused, and leaves no socket behind.
        before = udp_sockets()
        refused = CallClient()
        try:
            offer = await refused.offer()
            gathered = udp_sockets()
            status, body, _ = await post_offer(gateway.base_url, key, offer)
            assert status == 503, body
            assert '"code": "ice_ports_exhausted"' in body
            assert '"type": "server_error"' in body
            assert f"{low}-{high}" in body
            assert new_ports(gathered, udp_sockets()) == []
            assert len(gateway.app[CALLS]) == 2
        finally:
            await refused.close()
        assert new_ports(before, udp_sockets()) == []
        print(f"range {low}-{high}, {busy} held elsewhere: calls got {seen}, the fifth got 503")

        # The live calls are unaffected; once one ends its port serves the next call.
        await hang_up(gateway, live.pop(0))
        client = CallClient()
        live.append(client)
        _, opened = await place_call(gateway, key, client)
        assert opened == [low]
    finally:
        for client in live:
            await hang_up(gateway, client)
        occupant.close()


@ON_SQLITE
async def test_a_public_address_that_is_not_an_ip_stops_the_gateway_from_starting(
    gateway_factory: GatewayFactory,
) -> None:
    # A host candidate must carry an IP address (aioice pairs candidates by IP version).
    with pytest.raises(ValueError, match="WEBRTC_PUBLIC_ADDRESS must be an IP address"):
        await gateway_factory(webrtc_public_address="gateway.example.org")


# --- the announced public address ------------------------------------------------------------------------

# TEST-NET-3 (RFC 5737): no host has it. The client's checks towards it fail (its sockets are bound to
# 127.0.0.1, so nothing leaves the machine); the call still connects through the peer-reflexive pair the
# gateway's own checks create, as a call would before its NAT's port forwarding is set up.
PUBLIC_ADDRESS = "203.0.113.7"


@ON_SQLITE
async def test_host_candidates_announce_the_public_address(gateway_factory: GatewayFactory) -> None:
    ports = free_range(10)
    gateway = await gateway_factory(
        webrtc_public_address=PUBLIC_ADDRESS, webrtc_udp_ports=f"{ports.low}-{ports.high}", **LOOPBACK_ONLY
    )
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        answer, opened = await place_call(gateway, key, client)
        offered = candidates(answer)
        # The announced address with the bound port (a 1:1 NAT keeps ports): in the candidates and the
        # c= line, and the bound address nowhere.
        assert offered == [(PUBLIC_ADDRESS, opened[0], "host")], offered
        assert opened[0] in ports
        assert f"c=IN IP4 {PUBLIC_ADDRESS}" in answer
        assert "127.0.0.1" not in answer
        call = gateway.app[CALLS].get(client.call_id)
        assert call is not None
        bound = [p.transport.get_extra_info("sockname") for p in ice_connection(call.pc)._protocols]
        assert bound == [("127.0.0.1", opened[0])]
        # The client still connects (peer-reflexive), and only ever knew the public address from the answer.
        local, remote = selected_pair(client.pc)
        assert (local, remote) == ("host", "prflx")
        await client.wait_for("session.created")
        print(f"answer candidates {offered}, gateway socket {bound[0]}, client's pair {local}/{remote}")
    finally:
        await hang_up(gateway, client)


# --- TURN (coturn) -----------------------------------------------------------------------------------------


@dataclass
class TurnServer:
    port: int
    log: Path

    def url(self, transport: str) -> str:
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    async def peer_usage(self, sessions: int, timeout: float = 10) -> list[tuple[int, int]]:  # noqa: ASYNC109
        """(bytes received from, bytes sent to) the peer, of each closed allocation that relayed any, as
        coturn logs them once an allocation is deleted; waits until `sessions` of them are logged."""
        deadline = time.monotonic() + timeout
        while True:
            usage = []
            for line in self.log.read_text().splitlines():
                if "peer usage:" in line:
                    fields = dict(item.split("=", 1) for item in line.split("peer usage:")[1].split(", "))
                    if int(fields["rb"]) or int(fields["sb"]):
                        usage.append((int(fields["rb"]), int(fields["sb"])))
            if len(usage) >= sessions or time.monotonic() > deadline:
                return usage
            await asyncio.sleep(0.2)


def _stun_answers(port: int) -> bool:
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)  # a STUN Binding request
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.sendto(request, ("127.0.0.1", port))
            reply, _ = probe.recvfrom(2048)
        except OSError:
            return False
    return reply[:2] == b"\x01\x01" and reply[8:20] == request[8:20]


@pytest.fixture
def turn_server(tmp_path: Path) -> Iterator[TurnServer]:
    """coturn on 127.0.0.1 with one static long-term credential, UDP and TCP, no TLS (Debian's `coturn`,
    scripts/install-system-packages.sh)."""
    binary = shutil.which("turnserver")
    assert binary is not None, "coturn is not installed: run scripts/install-system-packages.sh"
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
    log = tmp_path / "turnserver.log"
    args = [
        binary,
        "-n",  # no configuration file: everything is on this line
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={TURN_RELAY_PORTS[0]}",
        f"--max-port={TURN_RELAY_PORTS[1]}",
        "--lt-cred-mech",
        f"--user={TURN_USER}:{TURN_PASSWORD}",
        "--realm=media-gateway.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        # Both peers' relayed addresses are on 127.0.0.1, which coturn refuses as a peer by default.
        "--allow-loopback-peers",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
        f"--log-file={log}",
        "--simple-log",
        "--no-stdout-log",
        "--verbose",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _stun_answers(port):
            assert process.poll() is None, f"turnserver exited: {log.read_text() if log.exists() else ''}"
            assert time.monotonic() < deadline, "turnserver did not answer STUN in 10 s"
        yield TurnServer(port=port, log=log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@ON_SQLITE
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_spoken_call_through_turn_with_both_peers_relay_only(
    gateway_factory: GatewayFactory,
    turn_server: TurnServer,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports = free_range(10)
    url = turn_server.url(transport)
    gateway = await gateway_factory(
        webrtc_ice_servers=[{"urls": url, "username": TURN_USER, "credential": TURN_PASSWORD}],
        webrtc_ice_transport_policy="relay",
        webrtc_udp_ports=f"{ports.low}-{ports.high}",
    )
    key = await gateway.create_api_key()
    # The test client, relay-only through the same TURN server (aiortc >= 1.15 has iceTransportPolicy).
    relay_only = RTCConfiguration(
        iceServers=[RTCIceServer(urls=url, username=TURN_USER, credential=TURN_PASSWORD)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    monkeypatch.setattr(client_module, "RTCConfiguration", lambda **_: relay_only)
    baseline = udp_sockets()
    client = CallClient()
    try:
        offer = await client.offer()
        assert {kind for _, _, kind in candidates(offer)} == {"relay"}
        client_ports = new_ports(baseline, udp_sockets())
        gathered = udp_sockets()
        status, answer, location = await post_offer(gateway.base_url, key, offer)
        assert status == 201, answer
        gateway_ports = new_ports(gathered, udp_sockets())
        client.location = location
        await client.accept(answer)
        await asyncio.wait_for(client.opened.wait(), 15)

        offered = candidates(answer)
        assert len(offered) == 1, offered
        relay_host, relay_port, kind = offered[0]
        assert (relay_host, kind) == ("127.0.0.1", "relay")
        assert TURN_RELAY_PORTS[0] <= relay_port <= TURN_RELAY_PORTS[1]
        if transport == "udp":
            # The gateway's only UDP socket is its side of the TURN allocation, bound in the range.
            assert len(gateway_ports) == 1, gateway_ports
            assert gateway_ports[0] in ports, (gateway_ports, ports)
            assert client_ports  # the offerer allocates once per m= section, before bundling
        else:
            # Over TCP neither peer has any UDP socket: everything to coturn is TCP.
            assert gateway_ports == []
            assert client_ports == []
        await spoken_turn(client)

        call = gateway.app[CALLS].get(client.call_id)
        assert call is not None
        assert selected_pair(call.pc) == ("relay", "relay")
        assert selected_pair(client.pc) == ("relay", "relay")
    finally:
        await hang_up(gateway, client)
    # coturn's own account: two allocations (the gateway's and the client's) relayed the call both ways.
    usage = await turn_server.peer_usage(sessions=2)
    assert len(usage) == 2, usage
    assert all(min(received, sent) > 20_000 for received, sent in usage), usage
    print(
        f"TURN over {transport}: answer {offered}, gateway UDP ports {gateway_ports} (range {ports.low}-"
        f"{ports.high}), client UDP ports {client_ports}, pairs relay/relay, coturn peer bytes {usage}"
    )
