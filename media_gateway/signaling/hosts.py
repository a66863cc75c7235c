"""The Host allow-list (`allowed_hosts`): requests naming another host get 421.

A browser page on a rebinding domain (evil.example resolving to the gateway's address) reaches the
gateway with its own name in `Host`; refusing names the operator did not list stops it, which no Origin
check does. `/health` and `/ready` stay open to any Host: orchestrators probe them by address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from media_gateway.signaling.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBES = frozenset({"/health", "/ready"})


def parse_allowed_hosts(value: str) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in value.split(",") if host.strip())


def _name(host: str) -> str:
    """`name:port` → `name`; `[v6]:port` → `[v6]`."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def host_middleware(
    allowed: frozenset[str],
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware refusing requests whose Host (name, or name:port) is not in `allowed`."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PROBES:
            host = (request.headers.get("Host") or "").strip().lower()
            if host not in allowed and _name(host) not in allowed:
                return ApiError(
                    421,
                    "This gateway does not serve the host named in the request.",
                    code="host_not_allowed",
                    error_type="invalid_request_error",
                ).response()
        return await handler(request)

    return check_host
