"""Minting and hydrating client secrets, driven the way clients do: the official SDK and plain HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import ClientSecretCreateResponse
from sqlalchemy import text, update

from media_gateway.credentials import hash_credential
from media_gateway.persistence.models import ClientSecret
from tests.conftest import Gateway
from tests.http.test_foundation import assert_openai_error

TABLES = ("client_secrets", "realtime_sessions", "calls", "conversation_items")


async def row_counts(gateway: Gateway) -> dict[str, int]:
    from media_gateway.app_keys import DATABASE

    async with gateway.app[DATABASE].engine.connect() as connection:
        return {
            table: (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            for table in TABLES
        }


async def mint(gateway: Gateway, key: str, body: dict[str, Any] | None = None) -> Any:
    return await gateway.client.post(
        "/v1/realtime/client_secrets",
        json=body if body is not None else {"session": {"type": "realtime"}},
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_official_sdk_mints_a_secret_that_parses_into_its_model(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0) as client:
        before = int(time.time())
        response = await client.realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": 120},
            session={
                "type": "realtime",
                "model": "gpt-realtime",
                "instructions": "Be brief.",
                "audio": {"output": {"voice": "marin"}},
            },
        )
    assert isinstance(response, ClientSecretCreateResponse)
    assert response.value.startswith("ek_")
    assert before + 119 <= response.expires_at <= before + 122
    session = response.session
    assert session.type == "realtime"
    assert session.model == "gpt-realtime"
    assert session.instructions == "Be brief."
    assert session.audio is not None
    assert session.audio.output is not None
    assert session.audio.output.voice == "marin"
    # Re-validate the raw JSON strictly: the SDK models accept extras, so compare the dump too.
    raw = response.model_dump(exclude_unset=True)
    assert ClientSecretCreateResponse.model_validate(raw) == response

    # Only the digest is stored, bound to the config the secret was minted with.
    secret = await gateway.repositories.client_secrets.get_by_hash(hash_credential(response.value))
    assert secret is not None
    assert secret.session_config["instructions"] == "Be brief."
    assert secret.session_id is not None
    assert (await row_counts(gateway))["client_secrets"] == 1


async def test_official_sdk_sees_auth_errors_as_its_exceptions(gateway: Gateway) -> None:
    async with AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key="sk_" + "x" * 43, max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.realtime.client_secrets.create(session={"type": "realtime"})
    assert caught.value.code == "invalid_api_key"


async def test_hydration_returns_the_bound_session_and_records_use(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    minted = await (await mint(gateway, key, {"session": {"type": "realtime", "instructions": "hi"}})).json()
    response = await gateway.client.post(
        "/v1/realtime/sessions", headers={"Authorization": f"Bearer {minted['value']}"}
    )
    assert response.status == 200, await response.text()
    session = await response.json()
    assert session["id"] == minted["session"]["id"]
    assert session["instructions"] == "hi"
    record = await gateway.repositories.sessions.get(session["id"])
    assert record is not None
    assert record.status == "hydrated"
    assert record.hydrated_at is not None
    secret = await gateway.repositories.client_secrets.get_by_hash(hash_credential(minted["value"]))
    assert secret is not None
    assert secret.use_count == 1


async def test_legacy_sessions_endpoint_mints_with_an_api_key(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    response = await gateway.client.post(
        "/v1/realtime/sessions",
        json={"type": "realtime", "model": "gpt-realtime-mini"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["object"] == "realtime.session"
    assert body["model"] == "gpt-realtime-mini"
    assert body["client_secret"]["value"].startswith("ek_")
    assert body["client_secret"]["expires_at"] > time.time()


async def test_expired_secret_is_refused(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    minted = await (await mint(gateway, key)).json()
    from media_gateway.app_keys import DATABASE

    async with gateway.app[DATABASE].sessionmaker() as session, session.begin():
        await session.execute(
            update(ClientSecret)
            .where(ClientSecret.secret_hash == hash_credential(minted["value"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await gateway.client.post(
        "/v1/realtime/sessions", headers={"Authorization": f"Bearer {minted['value']}"}
    )
    assert response.status == 401
    assert_openai_error(await response.json(), code="session_expired")


async def test_revoking_a_key_disables_its_secrets(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    minted = await (await mint(gateway, key)).json()
    record = await gateway.key_record(key)
    await gateway.repositories.api_keys.revoke(record.id)
    response = await gateway.client.post(
        "/v1/realtime/sessions", headers={"Authorization": f"Bearer {minted['value']}"}
    )
    assert response.status == 401
    assert_openai_error(await response.json(), code="invalid_api_key")
    again = await mint(gateway, key)
    assert again.status == 401


async def test_policy_denial_names_its_reasons(gateway: Gateway) -> None:
    key = await gateway.create_api_key(scopes=("restricted",))
    before = await row_counts(gateway)
    response = await mint(gateway, key, {"session": {"type": "realtime", "model": "gpt-realtime"}})
    assert response.status == 403
    error = assert_openai_error(await response.json(), code="policy_denied")
    assert "gpt-realtime" in str(error["message"])
    assert await row_counts(gateway) == before


async def test_mint_rate_limit_answers_429_with_retry_after(gateway: Gateway) -> None:
    key = await gateway.create_api_key(scopes=("restricted",))
    # Restricted keys must cap output tokens (their scope allows at most 1024).
    body = {"session": {"type": "realtime", "model": "gpt-realtime-mini", "max_output_tokens": 512}}
    statuses = [(await mint(gateway, key, body)).status for _ in range(10)]
    assert statuses == [200] * 10
    before = await row_counts(gateway)
    response = await mint(gateway, key, body)
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert_openai_error(await response.json(), code="rate_limit_exceeded")
    assert await row_counts(gateway) == before


async def test_decisions_are_counted_without_per_key_labels(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    assert (await mint(gateway, key)).status == 200
    assert (await mint(gateway, key, {"session": {"type": "realtime", "model": "nope"}})).status == 403
    text_body = await (await gateway.client.get("/metrics")).text()
    assert 'gateway_policy_decisions_total{decision="mint",result="allow"} 1.0' in text_body
    assert 'gateway_policy_decisions_total{decision="mint",result="deny"} 1.0' in text_body
    record = await gateway.key_record(key)
    assert record.id not in text_body
