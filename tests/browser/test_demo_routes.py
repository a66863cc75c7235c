"""The demo page's HTTP side: the static files, and `POST /demo/client_secret` minting for the internal demo
principal through the same policy and persistence as `/v1/realtime/client_secrets`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from media_gateway.settings import load_settings
from media_gateway.signaling.demo import CONTENT_SECURITY_POLICY, DEMO_KEY_ID, demo_enabled
from tests.browser.conftest import DemoGatewayFactory
from tests.conftest import Gateway
from tests.http.test_foundation import assert_openai_error

JSON = {"Content-Type": "application/json"}


async def mint(gateway: Gateway, body: str = "{}", headers: dict[str, str] | None = None) -> Any:
    return await gateway.client.post("/demo/client_secret", data=body, headers=headers or JSON)


async def test_the_page_and_its_assets_are_served_from_the_gateway(
    demo_gateway_factory: DemoGatewayFactory,
) -> None:
    gateway = await demo_gateway_factory()
    page = await gateway.client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = await page.text()
    assert '<script src="/demo/app.js"' in html
    assert "http://" not in html
    assert "https://" not in html
    for path, content_type, marker in (
        ("/demo/app.js", "text/javascript", 'createDataChannel("oai-events")'),
        ("/demo/style.css", "text/css", "--accent"),
    ):
        response = await gateway.client.get(path)
        assert response.status == 200, path
        assert response.content_type == content_type
        assert marker in await response.text()


async def test_demo_secret_is_minted_for_the_internal_principal_and_works(
    demo_gateway_factory: DemoGatewayFactory,
) -> None:
    gateway = await demo_gateway_factory()
    responses = await asyncio.gather(*(mint(gateway) for _ in range(4)))  # racing first uses: one key
    bodies = [await response.json() for response in responses]
    assert [response.status for response in responses] == [200] * 4, bodies
    body = bodies[0]
    assert body["value"].startswith("ek_")
    assert body["session"]["type"] == "realtime"
    assert responses[0].headers["Cache-Control"] == "no-store"

    demo_keys = [key for key in await gateway.repositories.api_keys.list() if key.id == DEMO_KEY_ID]
    assert len(demo_keys) == 1
    assert list(demo_keys[0].scopes) == ["realtime"]
    sessions = {body["session"]["id"] for body in bodies}
    assert len(sessions) == 4
    for session_id in sessions:
        session = await gateway.repositories.sessions.get(session_id)
        assert session is not None
        assert session.api_key_id == DEMO_KEY_ID

    # The secret authenticates like any other: hydrate its session through the legacy endpoint.
    hydrated = await gateway.client.post(
        "/v1/realtime/sessions", headers={"Authorization": f"Bearer {body['value']}"}
    )
    assert hydrated.status == 200
    assert (await hydrated.json())["id"] == body["session"]["id"]


async def test_demo_mints_obey_the_mint_policy(demo_gateway_factory: DemoGatewayFactory) -> None:
    gateway = await demo_gateway_factory()
    denied = await mint(gateway, '{"session": {"type": "realtime", "model": "nope"}}')
    assert denied.status == 403
    assert_openai_error(await denied.json(), code="policy_denied")
    bad = await mint(gateway, '{"expires_after": {"anchor": "created_at", "seconds": 5}}')
    assert bad.status == 400


async def test_revoking_the_demo_key_switches_the_demo_off(demo_gateway_factory: DemoGatewayFactory) -> None:
    gateway = await demo_gateway_factory()
    assert (await mint(gateway)).status == 200
    await gateway.repositories.api_keys.revoke(DEMO_KEY_ID)
    response = await mint(gateway)
    assert response.status == 403
    assert_openai_error(await response.json(), code="demo_disabled")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({**JSON, "Sec-Fetch-Site": "cross-site"}, 403, "cross_site_request"),
        ({**JSON, "Sec-Fetch-Site": "same-site"}, 403, "cross_site_request"),
        ({**JSON, "Origin": "http://evil.example"}, 403, "cross_site_request"),
        ({"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_content_type"),
    ],
)
async def test_cross_site_and_simple_requests_are_refused(
    demo_gateway_factory: DemoGatewayFactory, headers: dict[str, str], status: int, code: str
) -> None:
    gateway = await demo_gateway_factory()
    response = await mint(gateway, headers=headers)
    assert response.status == status
    assert_openai_error(await response.json(), code=code)
    assert await gateway.repositories.api_keys.get(DEMO_KEY_ID) is None  # refused before any write


async def test_same_origin_browser_headers_are_accepted(demo_gateway_factory: DemoGatewayFactory) -> None:
    gateway = await demo_gateway_factory()
    headers = {**JSON, "Sec-Fetch-Site": "same-origin", "Origin": gateway.base_url}
    assert (await mint(gateway, headers=headers)).status == 200


async def test_disabled_demo_serves_nothing(demo_gateway_factory: DemoGatewayFactory) -> None:
    gateway = await demo_gateway_factory(demo_enabled=False)
    assert (await gateway.client.get("/")).status == 404
    assert (await mint(gateway)).status == 404


def test_demo_is_on_by_default_only_on_the_embedded_default() -> None:
    embedded = load_settings(_env_file=None)
    postgres = load_settings(_env_file=None, database_url="postgresql+asyncpg://gw@db/gw")
    opa = load_settings(_env_file=None, policy_engine="opa", opa_url="http://127.0.0.1:8181")
    assert demo_enabled(embedded)
    assert not demo_enabled(postgres)
    assert not demo_enabled(opa)
    assert not demo_enabled(embedded.model_copy(update={"demo_enabled": False}))
    assert demo_enabled(postgres.model_copy(update={"demo_enabled": True}))
