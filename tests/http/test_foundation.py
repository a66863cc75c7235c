"""The HTTP skeleton on SQLite and Postgres: health, readiness, metrics, and OpenAI-shaped errors."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from media_gateway.app import build_app
from media_gateway.app_keys import BUS
from media_gateway.persistence.database import Database
from tests.conftest import Gateway, GatewayFactory, make_settings


def assert_openai_error(body: object, *, code: str | None = None) -> dict[str, object]:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    return error


async def assert_still_serving(gateway: Gateway) -> None:
    response = await gateway.client.get("/health")
    assert response.status == 200


async def test_health_is_ok(gateway: Gateway) -> None:
    response = await gateway.client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert response.headers["x-request-id"].startswith("req_")


async def test_request_id_from_client_is_kept(gateway: Gateway) -> None:
    response = await gateway.client.get("/health", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_ready_reports_every_component(gateway: Gateway) -> None:
    response = await gateway.client.get("/ready")
    assert response.status == 200
    body = await response.json()
    assert body["checks"] == {"database": "ok", "bus": "ok", "policy": "ok", "ovos": "ok"}
    assert body["not_ready"] == []


async def test_ready_names_an_unreachable_ovos(gateway_factory: GatewayFactory) -> None:
    """OVOS away (nothing listens on its bus URL): the gateway starts, and /ready says what is missing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = await gateway_factory(ovos_bus_url=f"ws://127.0.0.1:{port}/core")
    response = await gateway.client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert body["not_ready"] == ["ovos"]
    assert body["checks"]["ovos"] == "unavailable: not connected to the OVOS messagebus"


async def test_ready_names_a_stopped_bus(gateway: Gateway) -> None:
    await gateway.app[BUS].stop()
    response = await gateway.client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert body["not_ready"] == ["bus"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_ready_names_an_unreachable_database(gateway: Gateway, migrated_database: Database) -> None:
    # Drop the gateway's database under it: a real outage, not a patched ping.
    url = migrated_database.url
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(
        url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0] + "/postgres"
    )
    try:
        await migrated_database.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = await gateway.client.get("/ready")
        assert response.status == 503
        body = await response.json()
        assert body["not_ready"] == ["database"]
        assert body["checks"]["database"].startswith("unavailable")
        assert (await gateway.client.get("/health")).status == 200
    finally:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()


async def test_metrics_expose_request_histogram_by_route_template(gateway: Gateway) -> None:
    await gateway.client.get("/health")
    await gateway.client.get("/no/such/route")
    response = await gateway.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert (
        'gateway_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health",status="200"}'
        in (text)
    )
    assert 'gateway_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    # Unknown paths share one label value, so a scanner cannot blow up the series count.
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/route" not in text
    assert "process_resident_memory_bytes" in text


async def test_unknown_route_is_openai_404(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/nothing/here", json={})
    assert response.status == 404
    error = assert_openai_error(await response.json(), code="not_found")
    assert error["message"] == "Invalid URL (POST /v1/nothing/here)"
    await assert_still_serving(gateway)


async def test_wrong_method_is_openai_405(gateway: Gateway) -> None:
    response = await gateway.client.delete("/health")
    assert response.status == 405
    assert_openai_error(await response.json(), code="method_not_allowed")
    assert "GET" in response.headers["Allow"]
    await assert_still_serving(gateway)


async def test_ten_megabyte_body_is_openai_413(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    body = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    response = await gateway.client.post(
        "/v1/realtime/client_secrets",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert_openai_error(await response.json(), code="request_too_large")
    await assert_still_serving(gateway)


async def test_chunked_oversize_body_is_openai_413(gateway: Gateway) -> None:
    """No Content-Length: the limit must hold while reading the stream, too."""
    key = await gateway.create_api_key()

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * 65536

    response = await gateway.client.post(
        "/v1/realtime/client_secrets",
        data=chunks(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert_openai_error(await response.json(), code="request_too_large")
    await assert_still_serving(gateway)


async def test_malformed_json_is_openai_400(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    response = await gateway.client.post(
        "/v1/realtime/client_secrets",
        data=b'{"session": {"type": "realtime",',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert_openai_error(await response.json(), code="invalid_json")
    await assert_still_serving(gateway)


async def test_unhandled_exception_is_openai_500_without_trace(migrated_database: Database) -> None:
    app = build_app(make_settings(migrated_database.url))

    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app.router.add_get("/boom", boom)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/boom")
        assert response.status == 500
        error = assert_openai_error(await response.json(), code="internal_error")
        assert error["type"] == "server_error"
        assert "secret internal detail" not in str(error)
        assert (await client.get("/health")).status == 200
