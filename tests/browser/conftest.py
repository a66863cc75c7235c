"""A gateway that serves the browser demo, whatever `demo_enabled` resolves to on the test's database.

Until `app.build_app` registers the demo itself, the routes are added here before the server starts
(the router freezes at start, so `gateway_factory` cannot be used for that); once it does, this fixture
only forces the setting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from media_gateway.app import build_app
from media_gateway.persistence.database import Database
from media_gateway.signaling import demo
from tests.conftest import Gateway, make_settings

DemoGatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def demo_gateway_factory(migrated_database: Database) -> AsyncIterator[DemoGatewayFactory]:
    started: list[TestClient[web.Request, web.Application]] = []

    async def start(*, demo_enabled: bool | None = True, **overrides: Any) -> Gateway:
        settings = make_settings(migrated_database.url, **overrides)
        settings = settings.model_copy(update={"demo_enabled": demo_enabled})
        app = build_app(settings)
        if "demo:client_secret" not in app.router.named_resources():
            demo.add_routes(app)
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        started.append(client)
        return Gateway(app=app, client=client, settings=settings)

    yield start
    for client in reversed(started):
        await client.close()
