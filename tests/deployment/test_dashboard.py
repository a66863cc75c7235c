"""The Grafana dashboard, decoded strictly into Grafana's dashboard model (the Grafana foundation SDK's types,
generated from Grafana's schema: an unknown field, a wrong type or a missing required field fails), and its
queries parsed by Prometheus's PromQL parser. Whether the metrics they name exist is checked against running
processes in test_live_metrics.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deployment.stack import DASHBOARD, DATASOURCES, dashboard_queries, load_dashboard, parse_promql

# What issue 12 asks the dashboard to show, as words its panel titles must have.
REQUIRED_PANELS = (
    "live sessions",
    "turn latency",
    "sdp answer time",
    "frames dropped",
    "kafka",
    "policy decisions",
    "errors by code",
)


@pytest.fixture(scope="module")
def model(compose_check: Path) -> dict[str, Any]:
    return load_dashboard(compose_check)


def test_the_dashboard_is_a_grafana_dashboard_model(model: dict[str, Any]) -> None:
    raw = json.loads(DASHBOARD.read_text())
    for key in ("uid", "title", "panels", "schemaVersion", "time", "templating", "annotations"):
        assert key in raw, key
    assert model["uid"] == raw["uid"] == "ovos-media-gateway"
    assert model["title"]
    assert model["schemaVersion"] >= 39
    ids = [panel["id"] for panel in raw["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    panels = model["panels"]
    assert len(panels) + model["rows"] == len(raw["panels"])
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["title"], panel
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    print(
        f"\ndashboard: {len(panels)} panels in {model['rows']} rows, {len(dashboard_queries(model))} queries"
    )


def test_every_panel_and_query_uses_the_provisioned_prometheus(model: dict[str, Any]) -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    expected = {"type": datasource["type"], "uid": datasource["uid"]}
    assert expected["type"] == "prometheus"
    for panel in model["panels"]:
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, f"{panel['title']} {target['refId']}"


def test_the_dashboard_shows_what_the_issue_asks(model: dict[str, Any]) -> None:
    titles = [panel["title"].lower() for panel in model["panels"]]
    for words in REQUIRED_PANELS:
        assert any(words in title for title in titles), f"no panel shows {words}"


def test_every_query_is_valid_promql(model: dict[str, Any], compose_check: Path) -> None:
    for query in parse_promql(compose_check, dashboard_queries(model)):
        assert query.error is None, f"{query.expr}: {query.error}"
        assert query.metrics, f"{query.expr} selects no metric by name"
