"""The OPA engine fails closed: OPA down, slow, undefined or answering garbage is never an allow."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from media_gateway.policy import Limit, PolicyUnavailable, create_policy_engine
from media_gateway.policy.opa import OpaPolicyEngine
from tests.fixtures.opa import OpaServerFactory
from tests.fixtures.opa import _free_port as free_port
from tests.policy.helpers import case, decision_count

ALLOWED = case("mint-allowed")
DENIED = case("mint-wrong-model")


async def test_stopping_opa_fails_closed_and_starting_it_again_recovers(
    opa_server_factory: OpaServerFactory,
) -> None:
    server = opa_server_factory()
    registry = CollectorRegistry()
    engine = create_policy_engine("opa", registry=registry, opa_url=server.url, timeout_seconds=0.5)
    try:
        assert await engine.ready()
        assert (await engine.decide("mint", ALLOWED.input)).allow
        assert not (await engine.decide("mint", DENIED.input)).allow

        server.stop()
        for _ in range(3):
            with pytest.raises(PolicyUnavailable, match="OPA unreachable"):
                await engine.decide("mint", ALLOWED.input)
        with pytest.raises(PolicyUnavailable):
            await engine.decide("connect", case("connect-allowed-direct-key").input)
        assert not await engine.ready()
        assert decision_count(registry, "mint", "unavailable") == 3
        assert decision_count(registry, "connect", "unavailable") == 1

        server.start()  # same port
        assert await engine.ready()
        recovered = await engine.decide("mint", ALLOWED.input)
        assert recovered.allow
        assert not (await engine.decide("mint", DENIED.input)).allow
        assert decision_count(registry, "mint", "allow") == 2
        assert decision_count(registry, "mint", "deny") == 2
        assert decision_count(registry, "mint", "unavailable") == 3
    finally:
        await engine.close()


async def test_opa_that_accepts_but_never_answers_times_out() -> None:
    connections = 0

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    registry = CollectorRegistry()
    engine = create_policy_engine(
        "opa", registry=registry, opa_url=f"http://127.0.0.1:{port}", timeout_seconds=0.2
    )
    try:
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match=r"did not answer within 0\.2 s"):
            await engine.decide("mint", ALLOWED.input)
        assert time.monotonic() - started < 2.0
        assert connections == 1
        assert not await engine.ready()
        assert decision_count(registry, "mint", "unavailable") == 1
    finally:
        await engine.close()
        server.close()
        await server.wait_closed()


async def test_nothing_listening_fails_closed() -> None:
    engine = OpaPolicyEngine(f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    try:
        with pytest.raises(PolicyUnavailable, match="unreachable"):
            await engine.decide("connect", {})
        assert not await engine.ready()
    finally:
        await engine.close()


async def test_undefined_document_from_a_wrong_package_path_fails_closed(opa_url: str) -> None:
    engine = OpaPolicyEngine(opa_url, package="ovos_gateway.no_such_package")
    try:
        with pytest.raises(PolicyUnavailable, match="undefined") as raised:
            await engine.decide("mint", ALLOWED.input)
        # OPA's own decision id (decision logging is on) is kept for correlation.
        assert re.fullmatch(r"[0-9a-f-]{36}", raised.value.decision_id)
        assert not await engine.ready()  # /health is fine, but the package is not served
    finally:
        await engine.close()


async def test_real_opa_decision_ids_come_from_opa_and_the_connection_is_reused(
    opa_server_factory: OpaServerFactory,
) -> None:
    server = opa_server_factory()
    engine = OpaPolicyEngine(server.url)
    try:
        ids = {(await engine.decide("mint", ALLOWED.input)).decision_id for _ in range(10)}
    finally:
        await engine.close()
    log = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    logged_ids = {entry["decision_id"] for entry in log if entry.get("msg") == "Decision Log"}
    assert len(ids) == 10
    assert ids <= logged_ids
    clients = {
        entry["client_addr"]
        for entry in log
        if entry.get("msg") == "Received request." and entry.get("req_path", "").startswith("/v1/data/")
    }
    assert len(clients) == 1, f"expected one keep-alive connection, saw {sorted(clients)}"


LIMIT = {"max": 10, "retry_after_seconds": 5, "reason": "rate_limited: at the limit"}


def allowed_with(**limits: Any) -> dict[str, Any]:
    """An allowing mint result with `limits`, the mint rate limit filled in when not given."""
    return {
        "result": {"allow": True, "reasons": [], "limits": {"mints_per_minute": LIMIT, **limits}},
    }


async def test_limits_are_parsed_into_typed_values() -> None:
    engine = _engine_answering(200, allowed_with(concurrent_sessions={**LIMIT, "max": 10.0}))
    try:
        decision = await engine.decide("mint", ALLOWED.input)
    finally:
        await engine._client.aclose()
    assert decision.allow
    assert decision.limits["concurrent_sessions"] == Limit(10, 5.0, "rate_limited: at the limit")
    assert isinstance(decision.limits["concurrent_sessions"].max, int)
    assert set(decision.limits) == {"concurrent_sessions", "mints_per_minute"}


def _engine_answering(status: int, body: Any, seen: list[httpx.Request] | None = None) -> OpaPolicyEngine:
    def respond(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(respond))
    return OpaPolicyEngine("http://opa.invalid:8181/", client=client)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"code": "internal_error", "message": "error(s) occurred while evaluating query"}),
        (400, {"code": "invalid_parameter", "message": "malformed input"}),
        (404, b"not found"),
        (503, b""),
        (200, b"<html>not json</html>"),
        (200, {}),
        (200, {"decision_id": "d1"}),
        (200, []),
        (200, {"result": None}),
        (200, {"result": True}),
        (200, {"result": {"reasons": []}}),
        (200, {"result": {"allow": "true", "reasons": []}}),
        (200, {"result": {"allow": 1, "reasons": []}}),
        (200, {"result": {"allow": True, "reasons": ["contradiction"]}}),
        (200, {"result": {"allow": False, "reasons": "nope"}}),
        (200, {"result": {"allow": False, "reasons": [1]}}),
        (200, {"result": {"allow": False, "reasons": ["x"], "retry_after_seconds": "soon"}}),
        (200, {"result": {"allow": False, "reasons": ["x"], "retry_after_seconds": -1}}),
        (200, {"result": {"allow": False, "reasons": ["x"], "retry_after_seconds": True}}),
        # An allowing mint must carry both limits the gateway enforces, each well-formed.
        (200, {"result": {"allow": True, "reasons": []}}),
        (200, {"result": {"allow": True, "reasons": [], "limits": {"concurrent_sessions": LIMIT}}}),
        (200, {"result": {"allow": True, "reasons": [], "limits": [LIMIT, LIMIT]}}),
        (200, {"result": {"allow": False, "reasons": ["x"], "limits": "none"}}),
        (200, allowed_with(concurrent_session=LIMIT)),
        (200, allowed_with(concurrent_sessions={"max": 10, "retry_after_seconds": 5})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "window": 60})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "max": -1})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "max": 2.5})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "max": True})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "max": "10"})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "retry_after_seconds": -5})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "retry_after_seconds": None})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "reason": ""})),
        (200, allowed_with(concurrent_sessions={**LIMIT, "reason": 7})),
    ],
    ids=lambda value: str(value)[:60],
)
async def test_anything_but_a_well_formed_result_fails_closed(status: int, body: Any) -> None:
    engine = _engine_answering(status, body)
    try:
        with pytest.raises(PolicyUnavailable):
            await engine.decide("mint", ALLOWED.input)
    finally:
        await engine._client.aclose()


async def test_request_shape_and_opa_decision_id() -> None:
    seen: list[httpx.Request] = []
    body = {
        "decision_id": "opa-123",
        "result": {"allow": False, "reasons": ["because"], "retry_after_seconds": None},
    }
    engine = _engine_answering(200, body, seen)
    try:
        decision = await engine.decide("session_update", {"key": {"id": "k"}})
    finally:
        await engine._client.aclose()
    assert decision.decision_id == "opa-123"
    assert decision.reasons == ("because",)
    assert not decision.allow
    assert not decision.rate_limited
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/v1/data/ovos_gateway/realtime/session_update"
    assert json.loads(request.content) == {"input": {"key": {"id": "k"}}}


async def test_deny_without_reasons_still_explains_itself() -> None:
    engine = _engine_answering(200, {"result": {"allow": False}})
    try:
        decision = await engine.decide("connect", {})
    finally:
        await engine._client.aclose()
    assert not decision.allow
    assert decision.reasons == ("denied by policy",)
    assert decision.decision_id  # generated when OPA sends none


async def test_input_that_is_not_json_fails_closed() -> None:
    engine = _engine_answering(200, {"result": {"allow": True, "reasons": []}})
    try:
        with pytest.raises(PolicyUnavailable, match="not JSON-serialisable"):
            await engine.decide("mint", {"key": object()})
        with pytest.raises(PolicyUnavailable, match="not JSON-serialisable"):
            await engine.decide("mint", {"ttl": float("nan")})
    finally:
        await engine._client.aclose()
