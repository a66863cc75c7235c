"""Shared fixtures. Every service a test needs is started here or in `tests/fixtures/`; a service that
cannot start fails the test run, it never skips it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from media_gateway.app import build_app
from media_gateway.app_keys import REPOSITORIES
from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
from media_gateway.persistence.database import Database
from media_gateway.persistence.repositories import ApiKeyRecord, Repositories
from media_gateway.settings import Settings, load_settings
from tests.support.processes import DEFAULT_SETTINGS, WORKER_COMMAND

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.opa",
    "tests.fixtures.kafka",
    "tests.fixtures.ovos",
]


# OPM cannot be installed beside aiortc: tests/test_worker_distribution.py runs this module in the worker's
# environment instead.
collect_ignore = ["speech/test_opm.py"]


@pytest.fixture(scope="session", autouse=True)
def _gateways_use_the_session_ovos(ovos: Any, worker_venv: Path) -> None:
    """Every gateway and worker a test starts answers through the session's OVOS unless the test says
    otherwise, and workers run from the worker distribution's environment."""
    DEFAULT_SETTINGS["ovos_bus_url"] = ovos.url
    WORKER_COMMAND[:] = [str(worker_venv / "bin" / "python"), "-m", "media_gateway"]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test gateway: the test's database, a free port, never the developer's .env."""
    values: dict[str, Any] = {"database_url": database_url, "port": 0, "_env_file": None}
    values.update(DEFAULT_SETTINGS)
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Gateway:
    """A gateway serving on a real local port, and what tests need to drive it."""

    app: web.Application
    client: TestClient[web.Request, web.Application]
    settings: Settings

    @property
    def repositories(self) -> Repositories:
        return self.app[REPOSITORIES]

    async def create_api_key(self, scopes: tuple[str, ...] = ("realtime",), name: str = "test") -> str:
        value = generate_api_key()
        await self.repositories.api_keys.create(
            name=name, scopes=list(scopes), key_hash=hash_credential(value), prefix=display_prefix(value)
        )
        return value

    async def key_record(self, value: str) -> ApiKeyRecord:
        record = await self.repositories.api_keys.get_by_hash(hash_credential(value))
        assert record is not None
        return record

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(migrated_database: Database) -> AsyncIterator[GatewayFactory]:
    """Start gateways on the test's migrated database (SQLite and Postgres, by parametrization)."""
    started: list[TestClient[web.Request, web.Application]] = []

    async def start(**overrides: Any) -> Gateway:
        settings = make_settings(migrated_database.url, **overrides)
        app = build_app(settings)
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        started.append(client)
        return Gateway(app=app, client=client, settings=settings)

    yield start
    for client in reversed(started):
        await client.close()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how many server events passed the conformance gate (any failure fails its test), and how long
    the plain install of tests/test_packaging.py took."""
    from tests.support.conformance import GATE

    packaging = sys.modules.get("tests.test_packaging")
    if packaging is not None and packaging.TIMINGS:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in packaging.TIMINGS.items())
        terminalreporter.write_line(f"packaging: {steps}")

    if GATE.validated or GATE.failures:
        terminalreporter.write_line(
            f"conformance: {GATE.validated} server events validated against the openai SDK's GA models, "
            f"{len(GATE.failures)} failures, {len(GATE.by_type)} event types"
        )
