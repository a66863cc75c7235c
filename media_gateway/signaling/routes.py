"""The REST routes of the signaling API."""

from __future__ import annotations

from aiohttp import web

from media_gateway.signaling import client_secrets, openapi


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/realtime/client_secrets", client_secrets.create_client_secret)
    app.router.add_post("/v1/realtime/sessions", client_secrets.create_or_hydrate_session)
    app.router.add_get(openapi.PATH, openapi.serve_document)
