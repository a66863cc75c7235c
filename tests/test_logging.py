"""The configured logging pipeline redacts credentials from structlog and standard-library records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from media_gateway.credentials import generate_api_key, generate_client_secret
from media_gateway.observability.logging import bind_context, clear_context, configure_logging, get_logger


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    clear_context()
    configure_logging("info", "json")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_sensitive_fields_and_embedded_credentials_are_redacted(captured: io.StringIO) -> None:
    key, secret = generate_api_key(), generate_client_secret()
    log = get_logger("test")
    bind_context(request_id="req_1", session_id="sess_1")
    log.info(
        "event",
        headers={"Authorization": f"Bearer {key}", "User-Agent": "x"},
        api_key=key,
        client_secret={"value": secret},
        note=f"client sent {secret} and {key}",
        subprotocols=["realtime", f"openai-insecure-api-key.{key}"],
        dsn="postgresql+asyncpg://gw:pa55word@db/gw",
        api_key_id="key_abc",
    )
    output = captured.getvalue()
    for value in (key, secret, key[3:], secret[3:], "pa55word"):
        assert value not in output
    (line,) = lines(captured)
    assert line["request_id"] == "req_1"
    assert line["session_id"] == "sess_1"
    assert line["api_key_id"] == "key_abc"  # ids of records are not secrets
    assert line["headers"] == {"Authorization": "[REDACTED]", "User-Agent": "x"}
    assert line["subprotocols"] == ["realtime", "[REDACTED]"]


def test_standard_library_records_and_exceptions_are_redacted(captured: io.StringIO) -> None:
    key = generate_api_key()
    logging.getLogger("aiohttp.server").error("bad request with Authorization: Bearer %s", key)
    try:
        raise ValueError(f"could not use {key}")
    except ValueError:
        get_logger("test").exception("failed")
    output = captured.getvalue()
    assert key not in output
    assert key[3:] not in output
    records = lines(captured)
    assert records[0]["logger"] == "aiohttp.server"
    assert "ValueError" in str(records[1]["exception"])
