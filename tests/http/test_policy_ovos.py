"""What the connect policy says about a key's OVOS sessions reaches the session it opens.

A gateway whose policy data sets OVOS session fields for the `realtime` scope and for one key (on the
in-process engine and on a real OPA sidecar): a WebSocket session of each key tells the pipeline its time
zone and OVOS fields in `session.open` (read off the gateway's bus, as a speech worker receives it), and
holds them as `Principal.ovos`. Malformed fields refuse the connection (503 `policy_unavailable`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from media_gateway.app_keys import BUS, SESSIONS
from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
from media_gateway.pipeline.bus import Subscription
from media_gateway.pipeline.messages import INPUT_TOPIC, PipelineEvent, decode
from media_gateway.policy import DEFAULT_POLICY_DIR
from media_gateway.policy import engine as policy_engine
from media_gateway.policy.inprocess import policy_files
from tests.conftest import Gateway, GatewayFactory
from tests.fixtures.opa import OpaServerFactory
from tests.http.test_client_secrets import row_counts
from tests.http.test_foundation import assert_openai_error
from tests.realtime_ws.test_handshake import refused
from tests.support.realtime import connect

GATEWAY_ZONE = "America/Sao_Paulo"
SCOPE_OVOS = {"timezone": "Europe/Lisbon", "system_unit": "metric", "date_format": "DMY"}
KEY_OVOS = {
    "timezone": "Asia/Kathmandu",
    "time_format": "full",
    "pipeline": ["stop_high", "converse", "padatious_high", "adapt_high", "fallback_low"],
    "blacklisted_skills": ["ovos-skill-date-time.openvoiceos"],
    "blacklisted_intents": ["ovos-skill-weather.openvoiceos:weather.intent"],
}
OVERRIDDEN_KEY = "key_" + "c0ffee00" * 4
BROKEN_KEY = "key_" + "deadbeef" * 4
SCOPE_ONLY_KEY = "key_" + "0123abcd" * 4
ADMIN_KEY = "key_" + "a0a0a0a0" * 4


def policy_dir(directory: Path) -> Path:
    """The shipped policies, with OVOS session fields for the realtime scope and two keys."""
    data = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())
    config = data["ovos_gateway"]["config"]
    config["scopes"]["realtime"]["ovos"] = SCOPE_OVOS
    config["keys"] = {
        OVERRIDDEN_KEY: {"ovos": KEY_OVOS},
        BROKEN_KEY: {"ovos": {"timezone": "Mars/Olympus_Mons"}},
    }
    directory.mkdir()
    for path in policy_files(DEFAULT_POLICY_DIR):
        shutil.copy(path, directory / path.name)
    (directory / "data.json").write_text(json.dumps(data, indent=2))
    return directory


@pytest.fixture(params=["inprocess", "opa"])
async def gateway_with_ovos_policy(
    request: pytest.FixtureRequest,
    gateway_factory: GatewayFactory,
    opa_server_factory: OpaServerFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Gateway:
    directory = policy_dir(tmp_path / "policy")
    if request.param == "opa":
        opa = opa_server_factory(policy_dir=directory)
        return await gateway_factory(policy_engine="opa", opa_url=opa.url, timezone=GATEWAY_ZONE)
    # The in-process engine evaluates the package's policy directory; point it at this one.
    monkeypatch.setattr(policy_engine, "DEFAULT_POLICY_DIR", directory)
    return await gateway_factory(policy_engine="inprocess", timezone=GATEWAY_ZONE)


async def create_key(gateway: Gateway, key_id: str, scopes: tuple[str, ...] = ("realtime",)) -> str:
    """An API key with a known id (the id the policy data names)."""
    value = generate_api_key()
    await gateway.repositories.api_keys.create(
        name=key_id,
        scopes=list(scopes),
        key_hash=hash_credential(value),
        prefix=display_prefix(value),
        id=key_id,
    )
    return value


async def pipeline_event(subscription: Subscription, session_id: str, event_type: str) -> dict[str, Any]:
    """The next `event_type` the engine publishes to the pipeline for `session_id`."""
    async with asyncio.timeout(10):
        async for message in subscription:
            decoded = decode(message)
            if isinstance(decoded, PipelineEvent) and (decoded.session_id, decoded.type) == (
                session_id,
                event_type,
            ):
                return dict(decoded.data)
    raise AssertionError(f"the subscription ended before {event_type}")


async def open_session(gateway: Gateway, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open a WebSocket session with `key`: the fields of its `session.open` and its `Principal.ovos`."""
    subscription = await gateway.app[BUS].subscribe(INPUT_TOPIC)
    try:
        async with connect(gateway.base_url, key) as client:
            session_id = (await client.wait_for("session.created"))["session"]["id"]
            live = gateway.app[SESSIONS].get(session_id)
            assert live is not None
            principal_ovos = dict(live.principal.ovos)
            opened = await pipeline_event(subscription, session_id, "session.open")
    finally:
        await subscription.close()
    return opened, principal_ovos


async def test_sessions_get_the_ovos_fields_of_their_key(gateway_with_ovos_policy: Gateway) -> None:
    gateway = gateway_with_ovos_policy

    # The key's fields over the scope's, field by field.
    opened, principal = await open_session(gateway, await create_key(gateway, OVERRIDDEN_KEY))
    assert principal == {**SCOPE_OVOS, **KEY_OVOS}
    assert opened["timezone"] == "Asia/Kathmandu"
    assert opened["ovos"] == {
        "system_unit": "metric",
        "date_format": "DMY",
        "time_format": "full",
        "pipeline": KEY_OVOS["pipeline"],
        "blacklisted_skills": KEY_OVOS["blacklisted_skills"],
        "blacklisted_intents": KEY_OVOS["blacklisted_intents"],
    }

    # A key the data does not name: its scope's fields.
    opened, principal = await open_session(gateway, await create_key(gateway, SCOPE_ONLY_KEY))
    assert principal == SCOPE_OVOS
    assert opened["timezone"] == "Europe/Lisbon"
    assert opened["ovos"] == {"system_unit": "metric", "date_format": "DMY"}

    # Neither scope nor key sets anything: the gateway's time zone and no OVOS fields.
    opened, principal = await open_session(gateway, await create_key(gateway, ADMIN_KEY, ("admin",)))
    assert principal == {}
    assert opened["timezone"] == GATEWAY_ZONE
    assert opened["ovos"] == {}


async def test_malformed_ovos_fields_refuse_the_connection(gateway_with_ovos_policy: Gateway) -> None:
    gateway = gateway_with_ovos_policy
    key = await create_key(gateway, BROKEN_KEY)
    before = await row_counts(gateway)
    status, body = await refused(gateway, Authorization=f"Bearer {key}")
    assert status == 503
    assert_openai_error(body, code="policy_unavailable")
    assert await row_counts(gateway) == before  # no session was opened
    metrics = await (await gateway.client.get("/metrics")).text()
    # Two connects (the refused upgrade and the same request over plain HTTP), neither decided.
    assert 'gateway_policy_decisions_total{decision="connect",result="unavailable"} 2.0' in metrics
    assert 'gateway_policy_decisions_total{decision="connect",result="allow"} 0.0' in metrics
