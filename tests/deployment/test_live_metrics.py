"""compose.yaml's gateway, worker and migrate job, run here the way their containers run them: the
images' entry point (`media-gateway`) with the service's command and the environment compose.yaml gives
it, against a real Postgres, Kafka broker, OPA and OVOS (started by the test fixtures; only their addresses
and the ports are replaced). After one spoken turn over the WebSocket and one over WebRTC:

* every metric name the Grafana dashboard and the alert rules use is on the /metrics page of the process
  its selector names (job gateway, worker, or ready: the blackbox exporter probing /ready with the shipped
  module);
* the health checks compose.yaml runs (gateway, worker, OPA, Postgres, OVOS bus and core) pass against the
  running services and fail without them.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.deployment.stack import (
    ALERT_RULES,
    BLACKBOX_CONFIG,
    PROMETHEUS_CONFIG,
    PROMETHEUS_SERIES,
    Query,
    alert_rules,
    compose_project,
    dashboard_queries,
    exposed_names,
    load_dashboard,
    parse_promql,
)
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.opa import OpaServer, OpaServerFactory
from tests.fixtures.ovos import OvosServer
from tests.fixtures.postgres import PostgresServer, find_pg_bindir, fresh_postgres_url
from tests.speech.audio import padded, spoken
from tests.support.processes import GatewayProcess, create_key, free_port, gateway_env
from tests.support.realtime import sdk_spoken_turn
from tests.webrtc.client import CallClient

SENTENCE = "what time is it"
TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}
# Here every peer is on this machine: the gateway gathers on loopback, which it announces as the public
# address compose.yaml gives (127.0.0.1 by default). In the container it gathers on its own interface.
LOOPBACK_ICE = {
    "MEDIA_GATEWAY_WEBRTC_HOST_ADDRESSES": '["127.0.0.1"]',
    "MEDIA_GATEWAY_WEBRTC_INCLUDE_LOOPBACK": "true",
}


@dataclass
class LiveStack:
    compose: dict[str, Any]
    gateway: GatewayProcess
    worker: GatewayProcess
    metrics_url: str  # the gateway's metrics listener
    environments: dict[str, dict[str, str]]  # what each service's process got
    replaced: dict[str, str]  # compose value -> the value used here
    migrate_output: str
    turns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expositions: dict[str, str] = field(default_factory=dict)  # job -> /metrics text


def service_environment(service: dict[str, Any], replace: dict[str, str]) -> dict[str, str]:
    """compose.yaml's environment of a service, with the values in `replace` replaced wherever they appear."""
    env = {}
    for name, value in (service.get("environment") or {}).items():
        for old, new in replace.items():
            value = value.replace(old, new)
        env[name] = value
    return env


def entry_command(venv_bin: Path, service: dict[str, Any]) -> list[str]:
    """The image's ENTRYPOINT (`media-gateway`, from the image's virtualenv) and the service's command."""
    return [str(venv_bin / "media-gateway"), *service["command"]]


async def webrtc_turn(base_url: str, key: str) -> list[dict[str, Any]]:
    client = CallClient()
    try:
        await client.connect(base_url, key)
        await client.wait_for("session.created")
        client.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}}}
        )
        await client.wait_for("session.updated")
        client.track.say(padded(spoken(SENTENCE)))
        await client.wait_for("response.done", timeout=60)
        await client.wait_for("output_audio_buffer.stopped", timeout=30)
        return list(client.events)
    finally:
        await client.close()


async def fetch(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
        assert r.status == 200, f"{url}: {r.status}"
        return await r.text()


@pytest.fixture(scope="module")
async def live(
    compose_check: Path,
    postgres_server: PostgresServer,
    kafka_broker: KafkaBroker,
    opa_server: OpaServer,
    ovos: OvosServer,
    worker_venv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LiveStack]:
    compose = compose_project(compose_check)
    services = compose["services"]
    tmp = tmp_path_factory.mktemp("compose-stack")
    if not opa_server.running:
        opa_server.start()
    async with fresh_postgres_url(postgres_server, "compose") as database_url:
        ports = {name: free_port() for name in ("http", "metrics", "worker", "sip")}
        prefix = f"compose{uuid.uuid4().hex[:8]}."
        replace = {
            "kafka:9092": kafka_broker.bootstrap,
            "http://opa:8181": opa_server.url,
            services["worker"]["environment"]["MEDIA_GATEWAY_OVOS_BUS_URL"]: ovos.local.url,
            services["gateway"]["environment"]["MEDIA_GATEWAY_DATABASE_URL"]: database_url,
            "media-gateway.": prefix,
        }
        port_settings = {
            "MEDIA_GATEWAY_PORT": ports["http"],
            "MEDIA_GATEWAY_METRICS_PORT": ports["metrics"],
            "MEDIA_GATEWAY_WORKER_PORT": ports["worker"],
            "MEDIA_GATEWAY_SIP_PORT": ports["sip"],
        }
        environments: dict[str, dict[str, str]] = {}
        for name in ("migrate", "gateway", "worker"):
            env = service_environment(services[name], replace)
            for setting, port in port_settings.items():
                if setting in env:
                    env[setting] = str(port)
            if name == "gateway":
                env.update(LOOPBACK_ICE)
            environments[name] = env
        gateway_bin = Path(sys.executable).parent
        worker_bin = worker_venv / "bin"

        # The migrate job, then the worker and the gateway, each with its own environment only.
        base = gateway_env(database_url)
        process_env = {name: {**base, **env} for name, env in environments.items()}
        migrate = await asyncio.create_subprocess_exec(
            *entry_command(gateway_bin, services["migrate"]),
            env=process_env["migrate"],
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(migrate.communicate(), 120)
        assert migrate.returncode == 0, err.decode()
        worker = GatewayProcess(
            process_env["worker"],
            tmp,
            port=ports["worker"],
            command=services["worker"]["command"][0],
            port_setting="MEDIA_GATEWAY_WORKER_PORT",
            wait_path="/ready",
            program=[str(worker_bin / "media-gateway")],
        )
        gateway = GatewayProcess(
            process_env["gateway"],
            tmp,
            port=ports["http"],
            command=services["gateway"]["command"][0],
            wait_path="/ready",
            program=[str(gateway_bin / "media-gateway")],
        )
        try:
            await worker.start(180)
            await gateway.start(120)
            stack = LiveStack(
                compose=compose,
                gateway=gateway,
                worker=worker,
                metrics_url=f"http://127.0.0.1:{ports['metrics']}",
                environments=environments,
                replaced=replace,
                migrate_output=out.decode(),
            )
            key, _ = await create_key(process_env["gateway"], tmp, "compose")
            stack.turns["websocket"] = await sdk_spoken_turn(gateway.base_url, key, SENTENCE)
            stack.turns["webrtc"] = await webrtc_turn(gateway.base_url, key)
            # Two refused requests, for the dashboard's errors by code.
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{gateway.base_url}/v1/no-such-route") as response:
                    assert response.status == 404
                bad = {"Authorization": "Bearer sk_not_a_key"}
                async with http.post(
                    f"{gateway.base_url}/v1/realtime/client_secrets", headers=bad
                ) as response:
                    assert response.status == 401
            stack.expositions["gateway"] = await fetch(f"{stack.metrics_url}/metrics")
            stack.expositions["worker"] = await fetch(f"{worker.base_url}/metrics")
            yield stack
        finally:
            await gateway.stop()
            await worker.stop()


def test_the_containers_commands_serve_turns_with_the_compose_environment(live: LiveStack) -> None:
    assert "database migrated (postgresql+asyncpg)" in live.migrate_output
    for transport, events in live.turns.items():
        done = [event for event in events if event["type"] == "response.done"]
        assert done, transport
        assert done[-1]["response"]["status"] == "completed", transport
    # /metrics is on its own listener, not on the published HTTP port.
    assert "gateway_http_requests_total" in live.expositions["gateway"]
    print(
        "\ncompose stack here: migrate, worker and gateway with compose.yaml's environment (database "
        "URL, Kafka, OPA and OVOS addresses, topic prefix and ports replaced); "
        f"{len(exposed_names(live.expositions['gateway']))} gateway and "
        f"{len(exposed_names(live.expositions['worker']))} worker metric names after one WebSocket and one "
        "WebRTC turn"
    )


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a local http URL)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Blackbox:
    url: str

    def probe(self, target: str) -> str:
        status, text = get(f"{self.url}/probe?module=http_ready&target={target}", timeout=30)
        assert status == 200, text
        return text


@pytest.fixture(scope="module")
def blackbox(blackbox_exporter: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blackbox]:
    """The blackbox exporter with the shipped modules (deploy/prometheus/blackbox.yml), on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("blackbox") / "blackbox.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(blackbox_exporter),
                f"--config.file={BLACKBOX_CONFIG}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if get(f"{url}/-/healthy", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the blackbox exporter did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Blackbox(url)
    finally:
        process.terminate()
        process.wait(10)


def probe_value(exposition: str, name: str) -> float:
    (value,) = [float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(f"{name} ")]
    return value


@pytest.fixture(scope="module")
def exposed(live: LiveStack, blackbox: Blackbox) -> dict[str, set[str]]:
    """The metric names of each scrape job: gateway, worker, and ready (the blackbox exporter's probe)."""
    jobs = {job: exposed_names(text) for job, text in live.expositions.items()}
    jobs["ready"] = exposed_names(blackbox.probe(f"{live.gateway.base_url}/ready"))
    return jobs


def test_the_blackbox_exporter_probes_ready(live: LiveStack, blackbox: Blackbox) -> None:
    gateway = blackbox.probe(f"{live.gateway.base_url}/ready")
    worker = blackbox.probe(f"{live.worker.base_url}/ready")
    assert probe_value(gateway, "probe_success") == 1.0
    assert probe_value(worker, "probe_success") == 1.0
    assert probe_value(gateway, "probe_http_status_code") == 200.0
    nothing = blackbox.probe(f"http://127.0.0.1:{free_port()}/ready")
    assert probe_value(nothing, "probe_success") == 0.0


def missing_metrics(queries: list[Query], exposed: dict[str, set[str]]) -> list[str]:
    """Selectors whose metric is on no /metrics page of the jobs they select."""
    missing = []
    for query in queries:
        assert query.error is None, f"{query.expr}: {query.error}"
        for selector in query.selectors:
            if selector.metric in PROMETHEUS_SERIES:
                continue
            jobs = set(exposed)
            for label, operator, value in selector.matchers:
                if label == "job" and operator == "=":
                    jobs = {value}
                elif label == "job" and operator == "=~":
                    jobs = {job for job in exposed if re.fullmatch(value, job)}
            assert jobs <= set(exposed), f"{query.expr}: no job {jobs - set(exposed)}"
            if not any(selector.metric in exposed[job] for job in jobs):
                missing.append(f"{selector.metric} (jobs {sorted(jobs)}) in {query.expr}")
    return missing


def test_every_metric_of_the_dashboard_is_exposed(compose_check: Path, exposed: dict[str, set[str]]) -> None:
    queries = parse_promql(compose_check, dashboard_queries(load_dashboard(compose_check)))
    assert missing_metrics(queries, exposed) == []
    names = {name for query in queries for name in query.metrics}
    print(f"\ndashboard: {len(queries)} queries, {len(names)} metric names, all exposed")


def test_every_metric_of_the_alert_rules_is_exposed(
    compose_check: Path, exposed: dict[str, set[str]]
) -> None:
    queries = parse_promql(compose_check, [rule["expr"] for rule in alert_rules()])
    assert missing_metrics(queries, exposed) == []
    names = {name for query in queries for name in query.metrics}
    print(f"\nalert rules: {len(queries)} expressions, {len(names)} metric names, all exposed")


def run_check(test: list[str], program: str, replace: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A compose health check (`CMD` form) run here: `program` in place of the container's, and the
    container's addresses in its arguments replaced."""
    assert test[0] == "CMD", test
    arguments = []
    for argument in test[2:]:
        for old, new in replace.items():
            argument = argument.replace(old, new)
        arguments.append(argument)
    return subprocess.run([program, *arguments], capture_output=True, text=True, timeout=30, check=False)


def test_the_compose_health_checks_pass_against_the_running_services(
    live: LiveStack,
    opa_binary: Path,
    opa_server: OpaServer,
    postgres_server: PostgresServer,
    ovos: OvosServer,
    ovos_venv: Path,
) -> None:
    services = live.compose["services"]
    ovos_python = str(ovos_venv / "bin" / "python")
    worker_python = str(Path(live.worker.program[0]).with_name("python"))
    checks: dict[str, tuple[str, dict[str, str]]] = {
        "gateway": (sys.executable, {"127.0.0.1:8000": f"127.0.0.1:{live.gateway.port}"}),
        "worker": (worker_python, {"127.0.0.1:8001": f"127.0.0.1:{live.worker.port}"}),
        "opa": (str(opa_binary), {"127.0.0.1:8181": opa_server.url.removeprefix("http://")}),
        "postgres": (
            str(find_pg_bindir() / "pg_isready"),
            {
                "--host=127.0.0.1": f"--host={postgres_server.host}",
                "--username=gateway": f"--username={postgres_server.user}",
                "--dbname=gateway": f"--dbname={postgres_server.admin_database}",
            },
        ),
        "ovos-bus": (ovos_python, {"ws://127.0.0.1:8181/core": ovos.local.url}),
        "ovos-core": (ovos_python, {"ws://ovos-bus:8181/core": ovos.local.url}),
    }
    if not opa_server.running:
        opa_server.start()
    for name, (program, replace) in checks.items():
        test = services[name]["healthcheck"]["test"]
        if name == "postgres":
            test = [*test, f"--port={postgres_server.port}"]
        done = run_check(test, program, replace)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    print(
        f"\nhealth checks run here: {', '.join(checks)} "
        "(kafka's, the blackbox exporter's, Prometheus's and Grafana's need their images)"
    )


def test_the_health_checks_fail_without_their_server(
    live: LiveStack, opa_binary: Path, opa_server_factory: OpaServerFactory, ovos_venv: Path, tmp_path: Path
) -> None:
    services = live.compose["services"]
    closed = str(free_port())
    ovos_python = str(ovos_venv / "bin" / "python")
    for name, (program, replace) in {
        "gateway": (sys.executable, {"8000": closed}),
        "opa": (str(opa_binary), {"8181": closed}),
        "ovos-core": (ovos_python, {"ovos-bus:8181": f"127.0.0.1:{closed}"}),
    }.items():
        done = run_check(services[name]["healthcheck"]["test"], program, replace)
        assert done.returncode != 0, f"{name} passes with nothing listening"
    # OPA up, but without the project's policy: not ready.
    other = tmp_path / "other-policy"
    other.mkdir()
    (other / "other.rego").write_text("package other\n\nallow := true\n")
    bare = opa_server_factory(policy_dir=other)
    done = run_check(
        services["opa"]["healthcheck"]["test"],
        str(opa_binary),
        {"127.0.0.1:8181": bare.url.removeprefix("http://")},
    )
    assert done.returncode != 0, "the OPA check passes on a server without the policy"


def test_the_worker_venv_is_the_worker_distribution(worker_venv: Path) -> None:
    """The worker ran from `pip install ./worker` (the Dockerfile's worker stage), without aiortc."""
    done = subprocess.run(
        [str(worker_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {item["name"].lower() for item in json.loads(done.stdout)}
    assert "ovos-media-gateway-worker" in installed
    assert "aiortc" not in installed
    assert shutil.which("media-gateway", path=str(worker_venv / "bin"))


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, text = get(f"{self.url}/api/v1/{path}{query}")
        body = json.loads(text)
        assert status == 200, text
        assert body["status"] == "success", text
        return body["data"]


def local_prometheus_config(live: LiveStack, blackbox: Blackbox) -> dict[str, Any]:
    """deploy/prometheus.yml for this machine: the compose network's DNS names become the local ports (the
    discovered name stays, as the label the relabelling reads), the blackbox exporter's address is the local
    one, and everything is scraped and evaluated every second. Rules and relabelling are the shipped ones."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERT_RULES)]
    local = {
        ("gateway", 9100): live.metrics_url.removeprefix("http://"),
        ("worker", 8001): f"127.0.0.1:{live.worker.port}",
        ("gateway", 8000): f"127.0.0.1:{live.gateway.port}",
    }
    for job in config["scrape_configs"]:
        groups = []
        for sd in job.pop("dns_sd_configs", []):
            for name in sd["names"]:
                target = local[(name, sd["port"])]
                groups.append({"targets": [target], "labels": {"__meta_dns_name": name}})
        if groups:
            job["static_configs"] = groups
        for rule in job.get("relabel_configs", []):
            if rule.get("target_label") == "__address__":
                rule["replacement"] = blackbox.url.removeprefix("http://")
    return config


@pytest.fixture(scope="module")
def prometheus(
    live: LiveStack, blackbox: Blackbox, promtool: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """Prometheus (Debian's server, see scripts/install-promtool.sh) scraping the running gateway and worker
    and probing their /ready with the shipped configuration and rules."""
    home = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = local_prometheus_config(live, blackbox)
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [str(promtool), "check", "config", str(home / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = home / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(promtool.with_name("prometheus")),
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{server.url}/-/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        # Targets are scraped from about 5 s after start (discovery updates are batched): wait until every
        # target has a few samples, enough for rate().
        deadline = time.monotonic() + 60
        while True:
            scrapes = server.api("query", query="count_over_time(up[1m])")["result"]
            targets = server.api("targets")["activeTargets"]
            if (
                targets
                and len(scrapes) == len(targets)
                and all(float(sample["value"][1]) >= 4 for sample in scrapes)
            ):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus scraped too little: {scrapes}\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        process.wait(10)


def test_prometheus_scrapes_every_target_of_the_shipped_configuration(prometheus: Prometheus) -> None:
    targets = prometheus.api("targets")["activeTargets"]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        by_job.setdefault(target["labels"]["job"], []).append(target)
    assert set(by_job) == {"gateway", "worker", "ready", "prometheus"}
    for target in targets:
        assert target["health"] == "up", target
    # The relabelling gives each probe its service and the probed URL as the instance.
    ready = {target["labels"]["service"]: target["labels"]["instance"] for target in by_job["ready"]}
    assert set(ready) == {"gateway", "worker"}
    assert all(url.endswith("/ready") for url in ready.values())


def test_the_rules_evaluate_and_nothing_fires_on_a_healthy_deployment(prometheus: Prometheus) -> None:
    # The first evaluations may come before the first scrapes (`up` absent): wait for them to settle.
    deadline = time.monotonic() + 30
    while True:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        active = {rule["name"]: rule["state"] for rule in rules if rule["state"] != "inactive"}
        if not active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == len(alert_rules())
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    assert active == {}, "alerts active on a healthy deployment"
    assert prometheus.api("alerts")["alerts"] == []


def test_every_dashboard_panel_has_data(prometheus: Prometheus, compose_check: Path) -> None:
    model = load_dashboard(compose_check)
    empty_panels = []
    answered = 0
    for panel in model["panels"]:
        series = 0
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            result = prometheus.api("query", query=expr)["result"]
            series += len(result)
            answered += bool(result)
        if not series:
            empty_panels.append(panel["title"])
    assert empty_panels == []
    print(f"\nPrometheus: {answered} of {len(dashboard_queries(model))} dashboard queries return series")
