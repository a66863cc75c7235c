"""Tools of the deployment checks, built or fetched by the project's scripts (cached): compose-check (Go:
compose-go, Grafana's dashboard model, Prometheus's PromQL parser) and Prometheus's promtool, server and
blackbox exporter from Debian's packages. A tool that cannot be had fails the tests; none is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deployment.stack import installed_tool


@pytest.fixture(scope="session")
def compose_check() -> Path:
    return installed_tool("install-compose-check.sh")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return installed_tool("install-promtool.sh")


@pytest.fixture(scope="session")
def blackbox_exporter(promtool: Path) -> Path:
    return promtool.with_name("prometheus-blackbox-exporter")
