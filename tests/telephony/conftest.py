"""Fixtures of the SIP tests: the developer's application (the webhook endpoint) and a gateway with its SIP
endpoint announcing calls to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from openai import AsyncOpenAI
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent

from media_gateway.app_keys import SIP
from tests.conftest import Gateway, GatewayFactory

WEBHOOK_SECRET = "whsec_" + "dGVzdC13ZWJob29rLXNpZ25pbmcta2V5"
SESSION: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {"type": "server_vad"},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
        },
        "output": {"format": {"type": "audio/pcmu"}},
    },
}


@dataclass
class Application:
    """The developer's webhook endpoint: verifies each webhook with the SDK and queues its event."""

    url: str = ""
    events: asyncio.Queue[RealtimeCallIncomingWebhookEvent] = field(default_factory=asyncio.Queue)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = AsyncOpenAI(api_key="unused").webhooks.unwrap(
                body, dict(request.headers), secret=WEBHOOK_SECRET
            )
        except Exception:
            self.refused += 1
            return web.Response(status=400)
        assert isinstance(event, RealtimeCallIncomingWebhookEvent)
        await self.events.put(event)
        return web.Response(status=200)

    async def next_call(self, seconds: float = 10) -> RealtimeCallIncomingWebhookEvent:
        return await asyncio.wait_for(self.events.get(), seconds)


@pytest.fixture
async def application() -> AsyncIterator[Application]:
    app = Application()
    server = web.Application()
    server.router.add_post("/webhook", app.handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhook"  # type: ignore[union-attr]
    yield app
    await runner.cleanup()


@dataclass
class Line:
    gateway: Gateway
    key: str
    client: AsyncOpenAI

    @property
    def sip_port(self) -> int:
        return self.gateway.app[SIP].port


async def sip_line(gateway_factory: GatewayFactory, application: Application, **settings: Any) -> Line:
    """A gateway whose SIP endpoint announces calls to `application`, and an SDK client of one of its keys
    (the caller closes it)."""
    gateway = await gateway_factory(
        sip_port=0, sip_webhook_url=application.url, sip_webhook_secret=WEBHOOK_SECRET, **settings
    )
    key = await gateway.create_api_key()
    client = AsyncOpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0)
    return Line(gateway, key, client)


@pytest.fixture
async def line(gateway_factory: GatewayFactory, application: Application) -> AsyncIterator[Line]:
    line = await sip_line(gateway_factory, application)
    yield line
    await line.client.close()


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
