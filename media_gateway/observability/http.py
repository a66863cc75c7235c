"""HTTP observability: request ids, access log lines, request metrics, and the /health, /ready and
/metrics endpoints (optionally behind a bearer token, or on a listener of its own)."""

from __future__ import annotations

import contextlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from media_gateway.app_keys import BUS, DATABASE, DRAIN, METRICS, OVOS, POLICY, SETTINGS
from media_gateway.observability.logging import bind_context, get_logger
from media_gateway.signaling.errors import Handler

log = get_logger("media_gateway.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
UNMATCHED_ROUTE = "unmatched"


def route_template(request: web.Request) -> str:
    """The route's template (`/v1/realtime/calls/{call_id}`), never the raw path, to bound label sets."""
    match_info = request.match_info
    if getattr(match_info, "http_exception", None) is not None:
        return UNMATCHED_ROUTE
    route = match_info.route
    resource = route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: bind a request id to the log context, time the request, count it."""
    supplied = request.headers.get("x-request-id", "")
    request_id = supplied if _REQUEST_ID.match(supplied) else f"req_{uuid.uuid4().hex}"
    structlog.contextvars.clear_contextvars()
    bind_context(request_id=request_id)
    metrics = request.app[METRICS].http
    route = route_template(request)
    started = time.perf_counter()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["x-request-id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        metrics.in_flight.dec()
        labels = {"method": request.method, "route": route, "status": str(status)}
        metrics.requests.labels(**labels).inc()
        metrics.latency.labels(**labels).observe(elapsed)
        # The path only: query strings may carry credentials or call ids we don't want indexed.
        log.info(
            "http.request",
            method=request.method,
            path=request.path,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 3),
            remote=request.remote,
        )


async def health(_request: web.Request) -> web.Response:
    """Liveness: the process answers. No I/O, so a slow database never restarts a healthy gateway."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the database answers, the bus runs and the policy engine decides."""
    checks: dict[str, Any] = {}
    database = request.app.get(DATABASE)
    try:
        if database is None:
            raise RuntimeError("not started")
        await database.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    bus = request.app.get(BUS)
    checks["bus"] = "ok" if bus is not None and bus.ready() else "unavailable"
    policy = request.app.get(POLICY)
    try:
        policy_ok = policy is not None and await policy.ready()
    except Exception:
        policy_ok = False
    checks["policy"] = "ok" if policy_ok else "unavailable"
    if request.app[SETTINGS].speech_pipeline == "inprocess":
        ovos = request.app.get(OVOS)
        checks["ovos"] = ovos.state() if ovos is not None else "starting"
    drain = request.app.get(DRAIN)
    if drain is not None and drain.draining:
        checks["shutdown"] = "draining"
    return readiness(checks)


def readiness(checks: dict[str, Any]) -> web.Response:
    """200 when every check is "ok", else 503 naming those that are not (gateway and worker alike)."""
    not_ready = sorted(name for name, state in checks.items() if state != "ok")
    body = {"status": "ready" if not not_ready else "not_ready", "checks": checks, "not_ready": not_ready}
    return web.json_response(body, status=200 if not not_ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; with `metrics_token` set, only for `Authorization: Bearer <token>`."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.get_secret_value().encode()
        ):
            return web.json_response(
                {
                    "error": {
                        "message": "The metrics endpoint needs its bearer token.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_metrics_token",
                    }
                },
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    payload, content_type = request.app[METRICS].render()
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    if app[SETTINGS].metrics_port is None:  # otherwise on a listener of its own (`metrics_listener`)
        app.router.add_get("/metrics", metrics)


@contextlib.asynccontextmanager
async def metrics_listener(app: web.Application) -> AsyncIterator[int]:
    """`/metrics` alone on `metrics_port` (same address as the main listener); yields the bound port."""
    settings = app[SETTINGS]
    assert settings.metrics_port is not None
    metrics_app = web.Application()
    metrics_app[SETTINGS] = settings
    metrics_app[METRICS] = app[METRICS]
    metrics_app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.metrics_port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.metrics_port
    log.info("metrics.listening", host=settings.host, port=port)
    try:
        yield port
    finally:
        await runner.cleanup()
