"""`GET /openapi.json`: the OpenAPI 3.1 description of every HTTP endpoint of the gateway.

Two parts make the document:

* `openapi.json` beside this module, written by hand: the operations, what each answers (every error
  status a handler can give, with the `error.code` values it carries, in the shape of `signaling.errors`),
  the envelopes and the security schemes. A WebSocket endpoint is described as the GET that upgrades (101).
* from code: the session configurations and session objects, as the JSON schemas of the `openai` SDK's
  models the gateway validates requests against (`realtime.session_rules.SESSION_MODELS`; the gateway's
  own rules on top are stricter, see the operations' descriptions) and answers with
  (`ClientSecretCreateResponse`); the bounds the handlers enforce (TTL, SDP size, SIP reject statuses).

The document follows the settings the app was built with (`Variant`): the demo routes only when the demo
is served, `/metrics` only when it is on the main listener (behind its bearer token when one is set), and
421 on every operation but the probes when a Host allow-list is set. It is public (no auth) and carries
`Access-Control-Allow-Origin: *`, so a documentation viewer on another origin can load it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Final, NamedTuple

from aiohttp import web
from openai.types.realtime import ClientSecretCreateResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from media_gateway import __version__
from media_gateway.app_keys import SETTINGS
from media_gateway.realtime.session_requests import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from media_gateway.realtime.session_rules import SESSION_MODELS
from media_gateway.signaling.call_control import REJECT_STATUSES
from media_gateway.signaling.demo import demo_enabled
from media_gateway.transports.webrtc.offer import MAX_SDP_BYTES

PATH: Final = "/openapi.json"
TEMPLATE: Final = "openapi.json"
PROBES: Final = frozenset({"/health", "/ready"})  # answered whatever the Host (`signaling.hosts`)
METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Document = dict[str, Any]


class Variant(NamedTuple):
    """What of the document depends on the settings."""

    demo: bool = True
    metrics: bool = True
    metrics_token: bool = False
    allowed_hosts: bool = False


def variant_of(app: web.Application) -> Variant:
    settings = app[SETTINGS]
    return Variant(
        demo=demo_enabled(settings),
        metrics=settings.metrics_port is None,
        metrics_token=settings.metrics_token is not None,
        allowed_hosts=bool(settings.allowed_hosts.strip()),
    )


def operations(document: Document) -> list[tuple[str, str, Document]]:
    """(method, path, operation) of every operation of `document`."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@functools.cache
def _template() -> str:
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")


@functools.cache
def sdk_schemas() -> Document:
    """The SDK models' JSON schemas, their references pointing into `components/schemas`."""
    models: list[type[BaseModel]] = [*SESSION_MODELS.values(), ClientSecretCreateResponse]
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    defs: Document = schema["$defs"]
    return defs


def _complete_schemas(schemas: Document) -> None:
    """Add the SDK's schemas and the bounds the code enforces to the hand-written schemas."""
    generated = sdk_schemas()
    clashes = set(generated) & set(schemas)
    if clashes:
        raise ValueError(f"openapi.json defines schemas the SDK's models also name: {sorted(clashes)}")
    schemas.update(json.loads(json.dumps(generated)))
    seconds = schemas["ClientSecretCreateRequest"]["properties"]["expires_after"]["properties"]["seconds"]
    seconds.update(minimum=MIN_TTL_SECONDS, maximum=MAX_TTL_SECONDS, default=DEFAULT_TTL_SECONDS)
    schemas["Sdp"]["maxLength"] = MAX_SDP_BYTES
    status_code = schemas["CallRejectRequest"]["properties"]["status_code"]
    status_code.update(minimum=REJECT_STATUSES.start, maximum=REJECT_STATUSES.stop - 1)
    session = schemas["SessionCreateRequest"]
    session["oneOf"] = [
        {"$ref": f"#/components/schemas/{model.__name__}"} for model in SESSION_MODELS.values()
    ]
    session["discriminator"]["mapping"] = {
        kind: f"#/components/schemas/{model.__name__}" for kind, model in SESSION_MODELS.items()
    }


def build_document(variant: Variant) -> Document:
    """The document for `variant` (a new object each time: callers may change it)."""
    document: Document = json.loads(_template())
    document["info"]["version"] = __version__
    _complete_schemas(document["components"]["schemas"])
    paths = document["paths"]
    for method, path, operation in operations(document):
        if (not variant.demo and "demo" in operation["tags"]) or (path == "/metrics" and not variant.metrics):
            del paths[path][method]
            if not any(key in METHODS for key in paths[path]):
                del paths[path]
    if "/metrics" in paths and not variant.metrics_token:
        metrics = paths["/metrics"]["get"]
        metrics["security"] = []
        del metrics["responses"]["401"]
    if not variant.metrics or not variant.metrics_token:
        del document["components"]["securitySchemes"]["MetricsToken"]
    if variant.allowed_hosts:
        for _, path, operation in operations(document):
            if path not in PROBES:
                operation["responses"]["421"] = {"$ref": "#/components/responses/HostNotAllowed"}
    return document


@functools.cache
def serialized(variant: Variant) -> bytes:
    return json.dumps(build_document(variant), ensure_ascii=False, separators=(",", ":")).encode()


async def serve_document(request: web.Request) -> web.Response:
    """`GET /openapi.json`: public, and the same for as long as this process runs."""
    return web.Response(
        body=serialized(variant_of(request.app)),
        content_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )
