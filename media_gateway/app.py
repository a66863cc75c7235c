"""Composition root: build the aiohttp application from settings and own every component's lifecycle.

Nothing here is a module-level singleton. `build_app` wires the parts together; the contexts registered
in `cleanup_ctx` start them in order on startup and close them in reverse order on shutdown (aiohttp
runs these on SIGTERM/SIGINT after it stops accepting connections):

    database  → repositories → policy engine → bus

Route modules receive their dependencies through the typed keys in `app_keys`.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator

from aiohttp import web

from media_gateway.app_keys import BUS, DATABASE, METRICS, POLICY, REPOSITORIES, SETTINGS
from media_gateway.observability import http as http_observability
from media_gateway.observability.logging import get_logger
from media_gateway.observability.metrics import Metrics
from media_gateway.persistence.database import Database
from media_gateway.persistence.migrate import require_migrated
from media_gateway.persistence.repositories import Repositories
from media_gateway.pipeline.bus import Bus, InProcessBus
from media_gateway.policy.engine import create_policy_engine
from media_gateway.settings import Settings
from media_gateway.signaling import routes as signaling_routes
from media_gateway.signaling.errors import error_middleware

log = get_logger(__name__)


class LiveConnections:
    """Long-lived connections (WebSocket sessions, later WebRTC calls) register here so shutdown can
    close them instead of waiting for the grace period to run out."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, connection: web.WebSocketResponse) -> None:
        self._connections.add(connection)

    def __len__(self) -> int:
        return len(self._connections)

    async def close_all(self) -> None:
        for connection in list(self._connections):
            await connection.close(code=1001, message=b"server shutting down")


LIVE_CONNECTIONS = web.AppKey("live_connections", LiveConnections)


def build_app(settings: Settings, *, metrics: Metrics | None = None) -> web.Application:
    """Build the application. Components start when the app starts, not here."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[http_observability.observe_middleware, error_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics.create()
    app[LIVE_CONNECTIONS] = LiveConnections()

    app.cleanup_ctx.append(_database_context)
    app.cleanup_ctx.append(_policy_context)
    app.cleanup_ctx.append(_bus_context)
    app.on_shutdown.append(_close_live_connections)

    http_observability.add_routes(app)
    signaling_routes.add_routes(app)
    return app


async def _database_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    database = Database(settings.database_url)
    try:
        await require_migrated(database)
    except BaseException:
        await database.dispose()
        raise
    app[DATABASE] = database
    app[REPOSITORIES] = Repositories.from_database(database)
    log.info("database.started", dialect=database.dialect)
    try:
        yield
    finally:
        await database.dispose()
        log.info("database.stopped")


async def _policy_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_policy_engine(
        settings.policy_engine,
        registry=app[METRICS].registry,
        opa_url=settings.opa_url,
        timeout_seconds=settings.opa_timeout_seconds,
    )
    app[POLICY] = engine
    log.info("policy.started", engine=settings.policy_engine)
    try:
        yield
    finally:
        await engine.close()


async def _bus_context(app: web.Application) -> AsyncIterator[None]:
    bus: Bus = InProcessBus()
    await bus.start()
    app[BUS] = bus
    try:
        yield
    finally:
        await bus.stop()


async def _close_live_connections(app: web.Application) -> None:
    await app[LIVE_CONNECTIONS].close_all()
