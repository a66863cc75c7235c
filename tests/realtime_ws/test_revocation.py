"""Revoking a credential ends the live sessions it opened: an API key revoked with `media-gateway keys
revoke` (another process writing the database), and a client secret revoked in the database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from media_gateway.credentials import hash_credential
from media_gateway.persistence.database import Database
from media_gateway.persistence.repositories import Repositories
from tests.conftest import Gateway
from tests.http.test_client_secrets import mint
from tests.support.processes import gateway_env, run_command
from tests.support.realtime import RealtimeClient, connect

SLACK = 1.5  # beyond one heartbeat period: the query, the error event and the close handshake


async def ended_by_revocation(
    client: RealtimeClient,
    code: str,
    reason: str,
    timeout: float,  # noqa: ASYNC109
) -> float:
    """Wait for the `error` event and the close frame (1008); returns when the error arrived (monotonic)."""
    error = await client.wait_for("error", timeout=timeout)
    arrived = time.monotonic()
    assert error["error"]["code"] == code
    assert error["error"]["type"] == "invalid_request_error"
    assert "revoked" in error["error"]["message"]
    message = await client.ws.receive(timeout=5)
    # The frame itself: the server closes its side right after sending it, so aiohttp may record its own
    # reply's failure (1006) as the connection's close_code.
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert (message.data, message.extra) == (1008, reason)
    return arrived


async def wait_released(gateway: Gateway, key_id: str) -> None:
    deadline = time.monotonic() + 5
    while await gateway.repositories.sessions.count_live(key_id) > 0:
        assert time.monotonic() < deadline, "the ended session still counts against its key"
        await asyncio.sleep(0.05)


async def test_revoking_a_key_with_the_cli_ends_its_live_session(gateway: Gateway, tmp_path: Path) -> None:
    period = gateway.settings.instance_heartbeat_seconds
    key = await gateway.create_api_key()
    other_key = await gateway.create_api_key(name="other")
    record = await gateway.key_record(key)
    env = gateway_env(gateway.settings.database_url)
    async with connect(gateway.base_url, key) as client, connect(gateway.base_url, other_key) as bystander:
        assert (await client.recv())["type"] == "session.created"
        assert (await bystander.recv())["type"] == "session.created"
        code, out, err = await run_command(["keys", "revoke", record.id], env, tmp_path)
        revoked = time.monotonic()
        assert code == 0, err
        assert record.id in out
        arrived = await ended_by_revocation(client, "api_key_revoked", "api key revoked", period + SLACK)
        # The other key's session goes on.
        await bystander.send({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
        assert (await bystander.wait_for("session.updated"))["type"] == "session.updated"
    delay = arrived - revoked
    print(
        f"\nkey revoked with the CLI: its session got the error {delay:.2f} s after the command exited "
        f"(heartbeat period {period:g} s)"
    )
    assert delay <= period + SLACK
    await wait_released(gateway, record.id)


async def test_revoking_a_client_secret_ends_the_session_it_opened(gateway: Gateway) -> None:
    period = gateway.settings.instance_heartbeat_seconds
    key = await gateway.create_api_key()
    minted = await (await mint(gateway, key)).json()
    async with connect(gateway.base_url, minted["value"]) as client:
        assert (await client.recv())["type"] == "session.created"
        secret = await gateway.repositories.client_secrets.get_by_hash(hash_credential(minted["value"]))
        assert secret is not None
        # Another process revokes it: its own engine on the same database.
        other = Database(gateway.settings.database_url)
        try:
            await Repositories.from_database(other).client_secrets.revoke(secret.id)
        finally:
            await other.dispose()
        revoked = time.monotonic()
        arrived = await ended_by_revocation(
            client, "client_secret_revoked", "client secret revoked", period + SLACK
        )
    delay = arrived - revoked
    print(f"\nclient secret revoked: its session got the error {delay:.2f} s later (period {period:g} s)")
    assert delay <= period + SLACK
    await wait_released(gateway, secret.api_key_id)
