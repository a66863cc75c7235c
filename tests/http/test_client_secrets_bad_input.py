"""Hostile and malformed mint requests: each gets the right status and OpenAI error code, the server
keeps serving, and nothing is written for a rejected request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.http.test_client_secrets import row_counts
from tests.http.test_foundation import assert_openai_error

FORGED_EK = "ek_" + "A" * 43
FORGED_SK = "sk_" + "B" * 43
VALID = object()  # stands for "a valid API key of the test"


@dataclass(frozen=True)
class Case:
    name: str
    body: Any  # dict → JSON; bytes → raw body
    status: int
    code: str | None
    param: str | None = None
    auth: object = VALID
    path: str = "/v1/realtime/client_secrets"
    content_type: str = "application/json"


def session(**fields: Any) -> dict[str, Any]:
    return {"session": {"type": "realtime", **fields}}


CASES = [
    Case("no auth header", session(), 401, "missing_api_key", auth=None),
    Case("basic auth", session(), 401, "missing_api_key", auth="Basic dXNlcjpwYXNz"),
    Case("forged api key", session(), 401, "invalid_api_key", auth=f"Bearer {FORGED_SK}"),
    Case("client secret used as api key", session(), 401, "invalid_api_key", auth=f"Bearer {FORGED_EK}"),
    Case("garbage bearer", session(), 401, "invalid_api_key", auth="Bearer ' OR 1=1 --"),
    Case(
        "forged ek_ on hydration",
        b"",
        401,
        "invalid_api_key",
        auth=f"Bearer {FORGED_EK}",
        path="/v1/realtime/sessions",
    ),
    Case("malformed json", b'{"session": {"type": ', 400, "invalid_json"),
    Case("deeply nested json", b"[" * 200_000 + b"]" * 200_000, 400, "invalid_json"),
    Case("json array body", b"[1, 2, 3]", 400, "invalid_type"),
    Case("NaN literal", b'{"expires_after": {"anchor": "created_at", "seconds": NaN}}', 400, "invalid_json"),
    Case("text/plain body", b"session=realtime", 415, "unsupported_content_type", content_type="text/plain"),
    Case(
        "negative ttl",
        {"expires_after": {"anchor": "created_at", "seconds": -5}},
        400,
        "invalid_value",
        "expires_after.seconds",
    ),
    Case(
        "ttl too long",
        {"expires_after": {"anchor": "created_at", "seconds": 7201}},
        400,
        "invalid_value",
        "expires_after.seconds",
    ),
    Case(
        "ttl as string",
        {"expires_after": {"anchor": "created_at", "seconds": "600"}},
        400,
        "invalid_type",
        "expires_after.seconds",
    ),
    Case(
        "wrong anchor",
        {"expires_after": {"anchor": "now", "seconds": 60}},
        400,
        "invalid_value",
        "expires_after.anchor",
    ),
    Case("unknown top-level field", {"api_key": "x", **session()}, 400, "unknown_parameter", "api_key"),
    Case("unknown session type", {"session": {"type": "voice"}}, 400, "invalid_value", "session.type"),
    Case(
        "beta input_audio_format",
        session(input_audio_format="pcm16"),
        400,
        "unknown_parameter",
        "session.input_audio_format",
    ),
    Case("beta modalities", session(modalities=["audio"]), 400, "unknown_parameter", "session.modalities"),
    Case("beta top-level voice", session(voice="alloy"), 400, "unknown_parameter", "session.voice"),
    Case("beta temperature", session(temperature=0.8), 400, "unknown_parameter", "session.temperature"),
    Case("model as number", session(model=123), 400, "invalid_type", "session.model"),
    Case(
        "pcm rate 16000",
        session(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}}}),
        400,
        "invalid_value",
        "session.audio.input.format.rate",
    ),
    Case(
        "speed out of range",
        session(audio={"output": {"speed": 9}}),
        400,
        "invalid_value",
        "session.audio.output.speed",
    ),
    Case(
        "create_response null",
        session(audio={"input": {"turn_detection": {"type": "server_vad", "create_response": None}}}),
        400,
        "invalid_type",
        "session.audio.input.turn_detection.create_response",
    ),
    Case(
        "huge instructions", session(instructions="x" * 200_000), 400, "invalid_value", "session.instructions"
    ),
    Case(
        "too many tools",
        session(tools=[{"type": "function", "name": f"f{i}"} for i in range(200)]),
        400,
        "invalid_value",
        "session.tools",
    ),
    Case(
        "zero max_output_tokens",
        session(max_output_tokens=0),
        400,
        "invalid_value",
        "session.max_output_tokens",
    ),
    Case(
        "prototype pollution key",
        session(__proto__={"admin": True}),
        400,
        "unknown_parameter",
        "session.__proto__",
    ),
    Case("sql injection in model", session(model="x'; DROP TABLE api_keys; --"), 403, "policy_denied"),
    Case("disallowed voice", session(audio={"output": {"voice": "../../etc/passwd"}}), 403, "policy_denied"),
    Case(
        "body over limit",
        b'{"session": {"instructions": "' + b"x" * 1_100_000 + b'"}}',
        413,
        "request_too_large",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_rejected_request_answers_openai_error_and_persists_nothing(
    gateway: Gateway, case: Case
) -> None:
    key = await gateway.create_api_key()
    headers = {"Content-Type": case.content_type}
    if case.auth is VALID:
        headers["Authorization"] = f"Bearer {key}"
    elif isinstance(case.auth, str):
        headers["Authorization"] = case.auth
    data = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    before = await row_counts(gateway)

    response = await gateway.client.post(case.path, data=data, headers=headers)

    assert response.status == case.status, await response.text()
    error = assert_openai_error(await response.json(), code=case.code)
    if case.param is not None:
        assert error["param"] == case.param
    assert key not in str(error)
    assert await row_counts(gateway) == before
    # The server keeps serving, and the tables an injection string named are intact.
    assert (await gateway.client.get("/ready")).status == 200
    assert await gateway.repositories.api_keys.list()


def test_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
