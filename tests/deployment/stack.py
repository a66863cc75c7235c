"""The deployment's files as the tools that run them read them: compose.yaml through compose-go, the
Dockerfile through BuildKit's frontend and linter, the Grafana dashboard through Grafana's dashboard model,
PromQL through Prometheus's parser (all four in scripts/compose-check), and the names a running process
exposes on /metrics."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus.yml"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
BLACKBOX_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "blackbox.yml"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "ovos-media-gateway.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "ovos-media-gateway.yaml"

# The variables compose.yaml requires (no defaults), with values for the tests.
REQUIRED_VARIABLES = {"POSTGRES_PASSWORD": "k3Jd9fQx7Lw2", "GRAFANA_ADMIN_PASSWORD": "t8Zp4Rv1Nc6q"}
# Series Prometheus makes itself for every target: not on any /metrics page.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
INSTALL_TIMEOUT_SECONDS = 1500


def installed_tool(script: str) -> Path:
    """Run scripts/`script` (it builds or fetches a tool, cached) and return the path it prints last."""
    try:
        done = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / script)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/{script} did not finish within {INSTALL_TIMEOUT_SECONDS} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.fail(f"scripts/{script} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    path = Path(lines[-1])
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"scripts/{script} printed {path}, which is not an executable file")
    return path


def _clean_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The tool's environment: PATH and HOME, and `variables`; nothing of the developer's own."""
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env.update(variables)
    return env


def load_compose(
    tool: Path, variables: Mapping[str, str], env_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`compose-check compose compose.yaml [ENV_FILE]`, interpolating `variables` and the env file's only (no
    .env of the checkout, no variables of the developer's)."""
    return subprocess.run(
        [str(tool), "compose", str(COMPOSE_FILE), *([str(env_file)] if env_file else [])],
        capture_output=True,
        text=True,
        env=_clean_environment(variables),
        timeout=60,
        check=False,
    )


def compose_project(tool: Path, **overrides: str) -> dict[str, Any]:
    """The normalised project compose-go makes of compose.yaml with the required variables set."""
    done = load_compose(tool, {**REQUIRED_VARIABLES, **overrides})
    assert done.returncode == 0, done.stderr
    project: dict[str, Any] = json.loads(done.stdout)
    return project


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    def label_equals(self, label: str) -> str | None:
        for name, operator, value in self.matchers:
            if name == label and operator == "=":
                return value
        return None


@dataclass(frozen=True)
class Query:
    expr: str
    metrics: tuple[str, ...]
    selectors: tuple[Selector, ...]
    error: str | None


def parse_promql(tool: Path, exprs: Iterable[str]) -> list[Query]:
    """Each expression parsed by Prometheus's PromQL parser (Grafana's interval variables substituted)."""
    done = subprocess.run(
        [str(tool), "promql"],
        input=json.dumps(list(exprs)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [
        Query(
            expr=item["expr"],
            metrics=tuple(item["metrics"]),
            selectors=tuple(
                Selector(s["metric"], tuple((m["name"], m["type"], m["value"]) for m in s["matchers"]))
                for s in item["selectors"]
            ),
            error=item.get("error"),
        )
        for item in json.loads(done.stdout)
    ]


def load_dashboard(tool: Path) -> dict[str, Any]:
    """The dashboard decoded strictly into Grafana's dashboard model: its panels and their queries."""
    done = subprocess.run(
        [str(tool), "dashboard", str(DASHBOARD)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def lint_dockerfile(tool: Path) -> dict[str, Any]:
    """What `docker build --check` reports on the Dockerfile (BuildKit's frontend and linter, offline)."""
    done = subprocess.run(
        [str(tool), "dockerfile", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def dashboard_queries(model: Mapping[str, Any]) -> list[str]:
    return [target["expr"] for panel in model["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


# Suffixes of the samples a family of each type exposes (the text format's names).
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


def exposed_names(exposition: str) -> set[str]:
    """Every sample name a /metrics page has or declares: a labelled family with no child yet (a counter by
    reason before its first event) is declared by its TYPE line and counts."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, ("",)))
    return names


def expand_range(value: str) -> set[int]:
    low, _, high = value.partition("-")
    return set(range(int(low), int(high or low) + 1))
