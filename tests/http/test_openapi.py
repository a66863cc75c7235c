"""`GET /openapi.json`: a valid OpenAPI 3.1 document that describes exactly the routes the app serves, and
that the gateway lives up to under schemathesis (every operation, fuzzed against a running gateway).

The fuzzing is deterministic (`derandomize`) so that CI runs the same cases every time. To hunt for bugs,
run it with fresh random cases and more of them, e.g.
`OPENAPI_FUZZ_RANDOM=1 OPENAPI_FUZZ_EXAMPLES=300 pytest tests/http/test_openapi.py -k schemathesis -s`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from media_gateway.signaling import openapi
from tests.conftest import Gateway, GatewayFactory

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# WebSocket upgrades are not fuzzed: their success is a 101 protocol switch after which the socket speaks
# WebSocket frames, which schemathesis' HTTP transport (requests) can neither complete nor validate. Their
# refusals before the upgrade are covered by tests/realtime_ws and tests/telephony; here a plain GET checks
# the documented 400.
WEBSOCKETS = {("GET", "/v1/realtime"), ("GET", "/v1/telephony/twilio")}
EXAMPLES_PER_OPERATION = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "50"))
DERANDOMIZE = os.environ.get("OPENAPI_FUZZ_RANDOM") is None
# The SDP offer is text: send it as text/plain would be sent.
schemathesis.serializer.alias("application/sdp", "text/plain")


async def fetch_document(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.client.get(openapi.PATH)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    document: dict[str, Any] = await response.json()
    return document


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for method, path, _ in openapi.operations(document)}


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    # aiohttp registers HEAD beside every GET (allow_head): the GET without a body, not a route of its own.
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


def assert_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    schema.validate()  # the OpenAPI 3.1 meta-schema
    # The meta-schema does not look into Schema Objects: each must be valid JSON Schema 2020-12.
    for name, component in document["components"]["schemas"].items():
        meta = {"$schema": "https://json-schema.org/draft/2020-12/schema", **component}
        assert jsonschema_rs.meta.is_valid(meta), name
    for ref in references(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]
    for method, path, operation in openapi.operations(document):
        assert operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and not (path == "/ready" and status == "503"):
                if "$ref" in response:
                    response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, status)


async def test_the_served_document_is_valid_openapi_3_1(gateway: Gateway) -> None:
    assert_valid_openapi_3_1(await fetch_document(gateway))


@pytest.mark.parametrize(
    "variant", [openapi.Variant(*flags) for flags in itertools.product((False, True), repeat=4)]
)
def test_every_variant_of_the_document_is_valid(variant: openapi.Variant) -> None:
    document = openapi.build_document(variant)
    assert_valid_openapi_3_1(document)
    assert ("/demo/client_secret" in document["paths"]) == variant.demo
    assert ("/metrics" in document["paths"]) == variant.metrics
    assert ("MetricsToken" in document["components"]["securitySchemes"]) == (
        variant.metrics and variant.metrics_token
    )
    assert ("421" in document["paths"]["/v1/realtime/sessions"]["post"]["responses"]) == variant.allowed_hosts
    assert "421" not in document["paths"]["/ready"]["get"]["responses"]


async def test_the_document_describes_every_route_and_only_those(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    assert documented_routes(document) == registered_routes(gateway.app)
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == schemes["ApiKey"] | {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sk_…",
    }
    assert schemes["ClientSecret"] == schemes["ClientSecret"] | {"type": "http", "scheme": "bearer"}
    secured = {path for _, path, operation in openapi.operations(document) if operation["security"]}
    assert secured == {path for path in document["paths"] if path.startswith("/v1/realtime")}


async def test_the_document_follows_the_settings(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(
        demo_enabled=False, metrics_port=0, metrics_token="metrics-secret", allowed_hosts="127.0.0.1"
    )
    document = await fetch_document(gateway)
    assert documented_routes(document) == registered_routes(gateway.app)
    assert "/demo/client_secret" not in document["paths"]
    assert "/metrics" not in document["paths"]
    client_secrets = document["paths"]["/v1/realtime/client_secrets"]["post"]
    assert "421" in client_secrets["responses"]
    assert "421" not in document["paths"]["/health"]["get"]["responses"]

    gateway = await gateway_factory(demo_enabled=True, metrics_token="metrics-secret")
    document = await fetch_document(gateway)
    assert documented_routes(document) == registered_routes(gateway.app)
    metrics = document["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"MetricsToken": []}]
    assert "401" in metrics["responses"]


@dataclass
class FuzzReport:
    examples: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """What one operation is fuzzed with: a new API key, a client secret it minted, and a live WebRTC
    call of that key (so that call control reaches a call, not only 404s)."""

    key: str
    secret: str
    call_id: str

    @property
    def bearers(self) -> list[str | None]:
        return [self.key, self.secret, None]  # None: whatever schemathesis generates


def fuzz_operation(
    schema: Any, operation: Any, base_url: str, principal: Principal, report: FuzzReport
) -> None:
    """Send the operation's examples, positive and negative cases; check every answer (blocking)."""
    label = operation.label
    statuses = report.statuses.setdefault(label, Counter())
    strategies = [
        *schema.get_strategies_from_examples(operation),
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    if "{call_id}" in operation.path:
        live_call = {"call_id": principal.call_id}
        strategies.append(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=live_call)
        )
    strategy = st.one_of(*strategies)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, credential=st.sampled_from(principal.bearers))
    def run(case: Any, credential: str | None) -> None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else None
        response = case.call(base_url=base_url, session=http, headers=headers, timeout=30)
        report.examples[label] += 1
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    started = time.monotonic()
    with requests.Session() as http:
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            report.failures[label] = exc
    report.seconds[label] = time.monotonic() - started


def fuzz(schema: Any, base_url: str, principals: dict[str, Principal]) -> FuzzReport:
    report = FuzzReport()
    for operation in fuzzed_operations(schema):
        fuzz_operation(schema, operation, base_url, principals[operation.label], report)
    return report


def fuzzed_operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    return [
        operation for operation in operations if (operation.method.upper(), operation.path) not in WEBSOCKETS
    ]


async def new_principal(gateway: Gateway, offer: str) -> Principal:
    key = await gateway.create_api_key()
    bearer = {"Authorization": f"Bearer {key}"}
    minted = await gateway.client.post("/v1/realtime/client_secrets", json={}, headers=bearer)
    assert minted.status == 200
    call = await gateway.client.post(
        "/v1/realtime/calls", data=offer, headers={**bearer, "Content-Type": "application/sdp"}
    )
    assert call.status == 201
    call_id = call.headers["Location"].rsplit("/", 1)[1]
    return Principal(key=key, secret=(await minted.json())["value"], call_id=call_id)


async def test_schemathesis_finds_no_failure_on_any_operation(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    operations = fuzzed_operations(schema)
    assert {(operation.method.upper(), operation.path) for operation in operations} == (
        documented_routes(document) - WEBSOCKETS
    )
    # Each operation has its own key: the mints, sessions and calls of one do not use up the policy's
    # limits (mints per minute, concurrent sessions) of the next.
    offer = document["paths"]["/v1/realtime/calls"]["post"]["requestBody"]["content"]["application/sdp"]
    principals = {operation.label: await new_principal(gateway, offer["example"]) for operation in operations}

    started = time.monotonic()
    report = await asyncio.to_thread(fuzz, schema, gateway.base_url, principals)
    elapsed = time.monotonic() - started

    examples = sum(report.examples.values())
    print(f"\nschemathesis: {examples} examples, {len(operations)} operations, {elapsed:.1f} s")
    for label, statuses in sorted(report.statuses.items()):
        print(f"  {label}: {dict(statuses)} {report.seconds[label]:.1f} s")
    assert not report.failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in report.failures.items())
    assert set(report.examples) == {operation.label for operation in operations}


async def test_the_fuzzing_reports_an_answer_the_document_does_not_describe(gateway: Gateway) -> None:
    """The harness itself: a document that promises what /health does not answer must fail the checks."""
    document = await fetch_document(gateway)
    document["components"]["schemas"]["Health"]["properties"]["status"] = {"const": "perfect"}
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    report = FuzzReport()
    principal = Principal(key="", secret="", call_id="")
    await asyncio.to_thread(
        fuzz_operation, schema, schema["/health"]["GET"], gateway.base_url, principal, report
    )
    assert "GET /health" in report.failures
    assert "perfect" in str(report.failures["GET /health"])


async def test_the_demo_page_links_the_document(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(demo_enabled=True)
    page = await gateway.client.get("/")
    assert f'href="{openapi.PATH}"' in await page.text()


@pytest.mark.parametrize(
    ("path", "code"), [("/v1/realtime", "websocket_required"), ("/v1/telephony/twilio", None)]
)
async def test_a_websocket_endpoint_answers_a_plain_get_as_documented(
    gateway: Gateway, path: str, code: str | None
) -> None:
    document = await fetch_document(gateway)
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    operation = schema[path]["GET"]
    case = operation.Case()
    response = await asyncio.to_thread(case.call, base_url=gateway.base_url, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    case.validate_response(response, checks=CHECKS)
