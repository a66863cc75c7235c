"""The browser demo: `GET /` serves a page that talks to the gateway exactly as OpenAI's browser WebRTC code
talks to OpenAI, and `POST /demo/client_secret` mints the `ek_…` secret it needs.

The browser never holds a server key. Secrets are minted on behalf of an internal demo principal: an API
key row with the fixed id `key_demo`, created on first use, whose plaintext is random and thrown away at
creation (nobody can present it). Mints go through the same `mint` policy decision, rate limits and
persistence as `POST /v1/realtime/client_secrets`; `media-gateway keys revoke key_demo` switches the
endpoint off (it then answers 403) without a restart.

The endpoint is unauthenticated, so it is served only when `demo_enabled(settings)` holds: by default
only on the embedded default (SQLite database and in-process policy engine) bound to a loopback address
(anyone who can reach the listener could mint secrets; the Origin check below does not stop a DNS
rebinding page, which the Host allow-list, `allowed_hosts`, does). It refuses cross-site
requests (`Sec-Fetch-Site`, `Origin`) and requires `Content-Type: application/json`, which makes a
cross-origin `fetch` need a CORS preflight that this route never grants.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web
from yarl import URL

from media_gateway.app_keys import REPOSITORIES, SETTINGS
from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
from media_gateway.observability.logging import get_logger
from media_gateway.persistence.errors import DuplicateRecord
from media_gateway.persistence.repositories import ApiKeyRecord
from media_gateway.realtime.session_config import (
    SessionConfigError,
    parse_client_secret_request,
    session_object,
)
from media_gateway.settings import Settings
from media_gateway.signaling.client_secrets import _mint, config_error
from media_gateway.signaling.errors import ApiError, read_json_object

log = get_logger(__name__)

DEMO_KEY_ID = "key_demo"
DEMO_KEY_NAME = "browser demo (internal; plaintext never stored)"
DEMO_KEY_SCOPES = ("realtime",)
DEMO_TTL_SECONDS = 120  # the page connects at once; a longer-lived secret only widens the window

# (route path, file under media_gateway/web/static, content type)
STATIC_FILES = (
    ("/", "index.html", "text/html"),
    ("/demo/app.js", "app.js", "text/javascript"),
    ("/demo/style.css", "style.css", "text/css"),
)

# Everything the page loads comes from the gateway itself: nothing is fetched from the internet.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def demo_enabled(settings: Settings) -> bool:
    """`settings.demo_enabled` when set; unset (auto) means on only for the embedded default listening on
    loopback only."""
    if settings.demo_enabled is not None:
        return settings.demo_enabled
    embedded = (
        settings.database_url.startswith("sqlite+aiosqlite://") and settings.policy_engine == "inprocess"
    )
    return embedded and is_loopback(settings.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def add_routes(app: web.Application) -> None:
    """Serve the demo page and its secret endpoint, unless the settings disable the demo."""
    if not demo_enabled(app[SETTINGS]):
        return
    for path, name, content_type in STATIC_FILES:
        app.router.add_get(path, _static_handler(name, content_type), name=f"demo:{name}")
    app.router.add_post("/demo/client_secret", create_demo_client_secret, name="demo:client_secret")


@functools.cache
def _static_bytes(name: str) -> bytes:
    return resources.files("media_gateway.web").joinpath("static", name).read_bytes()


def _static_handler(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=_static_bytes(name),
            content_type=content_type,
            charset="utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    return handler


def _refuse_cross_site(request: web.Request) -> None:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise ApiError(
            403, "The demo endpoint only serves the gateway's own page.", code="cross_site_request"
        )
    origin = request.headers.get("Origin")
    if origin is not None and (URL(origin).host or "").lower() != (request.url.host or "").lower():
        raise ApiError(
            403, "The demo endpoint only serves the gateway's own page.", code="cross_site_request"
        )
    if request.content_type != "application/json":
        raise ApiError(
            415,
            f"Unsupported content type {request.content_type!r}; send application/json.",
            code="unsupported_content_type",
        )


async def demo_key(request: web.Request) -> ApiKeyRecord:
    """The internal demo principal, created on first use; 403 once an operator revoked it."""
    keys = request.app[REPOSITORIES].api_keys
    record = await keys.get(DEMO_KEY_ID)
    if record is None:
        throwaway = generate_api_key()
        try:
            record = await keys.create(
                name=DEMO_KEY_NAME,
                scopes=list(DEMO_KEY_SCOPES),
                key_hash=hash_credential(throwaway),
                prefix=display_prefix(throwaway),
                id=DEMO_KEY_ID,
            )
            log.info("demo.key_created", api_key_id=DEMO_KEY_ID)
        except DuplicateRecord:  # a concurrent first request created it
            record = await keys.get(DEMO_KEY_ID)
            if record is None:
                raise
    if record.revoked_at is not None:
        raise ApiError(
            403, "The demo has been switched off: its internal key was revoked.", code="demo_disabled"
        )
    return record


async def create_demo_client_secret(request: web.Request) -> web.Response:
    """Same body and answer as `POST /v1/realtime/client_secrets`, minted for the demo principal."""
    _refuse_cross_site(request)
    body = await read_json_object(request)
    body.setdefault("expires_after", {"anchor": "created_at", "seconds": DEMO_TTL_SECONDS})
    try:
        parsed = parse_client_secret_request(body, default_model=request.app[SETTINGS].default_model)
    except SessionConfigError as exc:
        raise config_error(exc) from None
    key = await demo_key(request)
    value, expires_at, session_id = await _mint(request, key, parsed.session, parsed.ttl_seconds)
    expires = int(expires_at.timestamp())
    return web.json_response(
        {
            "value": value,
            "expires_at": expires,
            "session": session_object(parsed.session, session_id=session_id, expires_at=expires),
        },
        headers={"Cache-Control": "no-store"},
    )
