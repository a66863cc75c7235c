"""compose.yaml as `docker compose` reads it: loaded, interpolated, normalised and consistency-checked by
compose-go (the library behind `docker compose config`), then checked here: health checks, dependencies,
published ports against the settings the gateway gets, and the references between the services and the
files they mount. The Dockerfile it builds from passes BuildKit's checks (`docker build --check`, offline)
and is read for its pins, users and health checks; .dockerignore as plain text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from media_gateway.settings import Settings
from tests.deployment.stack import (
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DOCKERFILE,
    DOCKERIGNORE,
    PROMETHEUS_CONFIG,
    REPO_ROOT,
    REQUIRED_VARIABLES,
    compose_project,
    expand_range,
    lint_dockerfile,
    load_compose,
)

# Services built from the Dockerfile, by target.
BUILT = {
    "gateway": "gateway",
    "migrate": "gateway",
    "worker": "worker",
    "ovos-bus": "ovos",
    "ovos-core": "ovos",
}
# Published on loopback only: no authentication of their own worth exposing (Prometheus has none).
LOOPBACK_ONLY = {"prometheus", "grafana"}
# Tags that move: never a pin.
FLOATING_TAGS = {"latest", "stable", "edge", "main", "master", "nightly"}


@pytest.fixture(scope="module")
def project(compose_check: Path) -> dict[str, Any]:
    return compose_project(compose_check)


def services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = project["services"]
    return found


def jobs(project: dict[str, Any]) -> set[str]:
    """One-shot services: some service waits for them to complete."""
    return {
        name
        for service in services(project).values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if dependency["condition"] == "service_completed_successfully"
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in (service.get("environment") or {}).items() if value is not None}


def test_the_secrets_are_required_with_no_default(compose_check: Path) -> None:
    done = load_compose(compose_check, {})
    assert done.returncode != 0
    for variable in REQUIRED_VARIABLES:
        assert f"required variable {variable} is missing a value" in done.stderr
    for variable in REQUIRED_VARIABLES:
        partial = {name: value for name, value in REQUIRED_VARIABLES.items() if name != variable}
        done = load_compose(compose_check, partial)
        assert done.returncode != 0
        assert variable in done.stderr
    # An empty value is refused like a missing one (`:?`).
    done = load_compose(compose_check, {**REQUIRED_VARIABLES, "POSTGRES_PASSWORD": ""})
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_an_env_file_gives_the_secrets_as_docker_compose_reads_it(
    compose_check: Path, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in REQUIRED_VARIABLES.items()))
    done = load_compose(compose_check, {}, env_file)
    assert done.returncode == 0, done.stderr
    postgres = json.loads(done.stdout)["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == REQUIRED_VARIABLES["POSTGRES_PASSWORD"]


def test_the_secrets_reach_their_services(project: dict[str, Any]) -> None:
    password = REQUIRED_VARIABLES["POSTGRES_PASSWORD"]
    found = services(project)
    assert environment(found["postgres"])["POSTGRES_PASSWORD"] == password
    for name in ("gateway", "migrate"):
        url = urlsplit(environment(found[name])["MEDIA_GATEWAY_DATABASE_URL"])
        assert url.password == password
        assert url.hostname == "postgres"
    grafana = environment(found["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_VARIABLES["GRAFANA_ADMIN_PASSWORD"]
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    # No other password-like variable has a value written in the file.
    for name, service in found.items():
        for variable, value in environment(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", variable) and variable not in (
                "POSTGRES_PASSWORD",
                "GF_SECURITY_ADMIN_PASSWORD",
            ):
                pytest.fail(f"{name}: {variable}={value!r} is written in compose.yaml")


def test_the_whole_system_is_there(project: dict[str, Any]) -> None:
    assert set(services(project)) == {
        "gateway",
        "migrate",
        "worker",
        "ovos-bus",
        "ovos-core",
        "postgres",
        "kafka",
        "opa",
        "blackbox",
        "prometheus",
        "grafana",
    }
    print(
        f"\ncompose: {len(services(project))} services, {len(jobs(project))} job ({', '.join(jobs(project))})"
    )


def test_every_service_has_a_health_check_or_is_a_one_shot_job(project: dict[str, Any]) -> None:
    one_shot = jobs(project)
    assert one_shot == {"migrate"}
    for name, service in services(project).items():
        check = service.get("healthcheck") or {}
        if name in one_shot:
            assert service.get("restart") == "no", name
            assert check.get("disable") is True, f"{name}: a job has no health check (its image's is off)"
            continue
        assert not check.get("disable"), name
        test = check.get("test") or []
        assert test, f"{name} has no health check"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"
        assert len(test) > 1, name
        assert all(part.strip() for part in test[1:]), name
        # Never a check that passes without the server: no `true`, no version print.
        command = " ".join(test[1:])
        assert not re.fullmatch(r"(exit 0|true|.*\bversion)", command.strip()), f"{name}: {command}"
        assert all(check.get(key) for key in ("interval", "timeout", "retries")), name
        assert service.get("restart") == "unless-stopped", name


def test_every_dependency_is_a_real_service_waited_for(project: dict[str, Any]) -> None:
    found = services(project)
    one_shot = jobs(project)
    for name, service in found.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in found, f"{name} depends on {dependency}, which is no service"
            expected = "service_completed_successfully" if dependency in one_shot else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {dependency}: {how['condition']}"
            assert how.get("required", True)
    depends = {name: set(service.get("depends_on") or {}) for name, service in found.items()}
    assert depends["gateway"] == {"migrate", "postgres", "kafka", "opa"}
    assert depends["migrate"] == {"postgres"}
    assert depends["worker"] == {"kafka", "ovos-core"}
    assert depends["ovos-core"] == {"ovos-bus"}
    assert depends["grafana"] == {"prometheus"}


def test_migrations_run_once_as_a_job_before_any_gateway(project: dict[str, Any]) -> None:
    found = services(project)
    gateway, migrate = found["gateway"], found["migrate"]
    assert gateway["command"] == ["serve"]
    assert migrate["command"] == ["migrate"]
    assert gateway["image"] == migrate["image"]
    assert gateway["build"]["target"] == migrate["build"]["target"] == "gateway"
    database = "MEDIA_GATEWAY_DATABASE_URL"
    assert environment(gateway)[database] == environment(migrate)[database]
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_built_services_use_the_dockerfile_targets(project: dict[str, Any]) -> None:
    targets = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE.read_text()))
    for name, target in BUILT.items():
        build = services(project)[name]["build"]
        assert build["target"] == target
        assert target in targets
        assert Path(build["context"]) == REPO_ROOT
    assert services(project)["worker"]["command"] == ["worker"]


def test_every_other_image_is_pinned_to_an_exact_version(project: dict[str, Any]) -> None:
    for name, service in services(project).items():
        if name in BUILT:
            continue
        image = service["image"]
        assert "@sha256:" in image or ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        tag = image.rsplit(":", 1)[-1].split("@")[0]
        assert tag not in FLOATING_TAGS, f"{name}: {image}"
        # An exact release (PostgreSQL's are major.minor); a bare major such as postgres:15 moves.
        assert re.match(r"^v?\d+\.\d+", tag), f"{name}: {image} is not an exact version"


def gateway_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The service's environment as the gateway's settings: every variable is one it knows and accepts."""
    env = environment(service)
    known = {f"MEDIA_GATEWAY_{field.upper()}" for field in Settings.model_fields}
    unknown = {name for name in env if name.startswith("MEDIA_GATEWAY_")} - known
    assert not unknown, f"variables no setting reads: {sorted(unknown)}"
    for name in list(__import__("os").environ):
        if name.startswith("MEDIA_GATEWAY_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        return Settings(_env_file=None)  # type: ignore[call-arg]
    except ValidationError as exc:
        pytest.fail(f"the environment compose.yaml gives is refused by the settings:\n{exc}")


def published(service: dict[str, Any]) -> list[dict[str, Any]]:
    return list(service.get("ports") or [])


OVERRIDES = {
    "defaults": {},
    "moved": {
        "MEDIA_GATEWAY_WEBRTC_UDP_PORTS": "51000-51019",
        "MEDIA_GATEWAY_SIP_RTP_PORTS": "42000-42009",
        "MEDIA_GATEWAY_SIP_PORT": "5080",
        "GATEWAY_HTTP_PORT": "8443",
        "PUBLIC_ADDRESS": "203.0.113.7",
    },
}


@pytest.mark.parametrize("overrides", OVERRIDES.values(), ids=OVERRIDES.keys())
def test_published_ports_match_the_settings_the_gateway_gets(
    compose_check: Path, overrides: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = compose_project(compose_check, **overrides)
    gateway = services(project)["gateway"]
    settings = gateway_settings(gateway, monkeypatch)
    ports = published(gateway)
    tcp = [port for port in ports if port["protocol"] == "tcp"]
    udp = [port for port in ports if port["protocol"] == "udp"]

    # HTTP: the container side is the port the gateway listens on; the host side may differ.
    assert [port["target"] for port in tcp] == [settings.port]
    assert tcp[0]["published"] == overrides.get("GATEWAY_HTTP_PORT", "8000")
    # The metrics listener is not published: Prometheus reaches it over the compose network.
    assert settings.metrics_port is not None
    assert settings.metrics_port not in {port["target"] for port in ports}

    # Media and SIP: UDP, host port = container port (announced in SDP and ICE), exactly the settings' ranges.
    assert all(str(port["target"]) == port["published"] for port in udp)
    assert settings.webrtc_udp_ports is not None
    assert settings.sip_port is not None
    webrtc, rtp = expand_range(settings.webrtc_udp_ports), expand_range(settings.sip_rtp_ports)
    assert not webrtc & rtp
    assert settings.sip_port not in webrtc | rtp
    targets = [port["target"] for port in udp]
    assert len(targets) == len(set(targets))
    assert set(targets) == webrtc | rtp | {settings.sip_port}
    # Behind the host's NAT, the gateway announces the host's address, not the container's.
    public = overrides.get("PUBLIC_ADDRESS", "127.0.0.1")
    assert settings.webrtc_public_address == settings.sip_public_address == public
    assert settings.bus == "kafka"
    assert settings.speech_pipeline == "none"
    assert settings.policy_engine == "opa"
    if overrides:
        assert settings.webrtc_udp_ports == overrides["MEDIA_GATEWAY_WEBRTC_UDP_PORTS"]
        assert settings.sip_rtp_ports == overrides["MEDIA_GATEWAY_SIP_RTP_PORTS"]
    print(
        f"\ngateway publishes {len(ports)} ports: HTTP {tcp[0]['published']}->{settings.port}/tcp, SIP "
        f"{settings.sip_port}/udp, RTP {settings.sip_rtp_ports}/udp, WebRTC {settings.webrtc_udp_ports}/udp"
    )


def test_only_the_gateway_is_published_beyond_loopback(project: dict[str, Any]) -> None:
    seen: set[tuple[str, str]] = set()
    for name, service in services(project).items():
        for port in published(service):
            key = (port["published"], port["protocol"])
            assert key not in seen, f"{name}: {key} published twice"
            seen.add(key)
            if name in LOOPBACK_ONLY:
                assert port.get("host_ip") == "127.0.0.1", f"{name} is published beyond loopback"
            else:
                assert name == "gateway", f"{name} is published: {port}"
    for name in LOOPBACK_ONLY:
        assert published(services(project)[name]), name


def test_the_worker_and_the_migrate_job_get_valid_settings(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = services(project)
    worker = gateway_settings(found["worker"], monkeypatch)
    assert worker.bus == "kafka"
    assert not published(found["worker"])
    gateway = gateway_settings(found["gateway"], monkeypatch)
    assert worker.kafka_bootstrap_servers == gateway.kafka_bootstrap_servers
    assert worker.kafka_topic_prefix == gateway.kafka_topic_prefix
    migrate = gateway_settings(found["migrate"], monkeypatch)
    assert migrate.database_url == gateway.database_url


def test_health_checks_ask_the_ports_the_services_listen_on(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = services(project)
    gateway = gateway_settings(found["gateway"], monkeypatch)
    worker = gateway_settings(found["worker"], monkeypatch)
    gateway_check = " ".join(found["gateway"]["healthcheck"]["test"])
    worker_check = " ".join(found["worker"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{gateway.port}/ready" in gateway_check
    assert f"http://127.0.0.1:{worker.worker_port}/ready" in worker_check
    opa_check = " ".join(found["opa"]["healthcheck"]["test"])
    opa_port = urlsplit(gateway.opa_url or "").port
    assert f"http://127.0.0.1:{opa_port}/v1/data/ovos_gateway/realtime/" in opa_check


def test_kafka_runs_in_kraft_mode_with_its_log_directory_on_its_volume(project: dict[str, Any]) -> None:
    kafka = services(project)["kafka"]
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    log_dirs = env["KAFKA_LOG_DIRS"].split(",")
    mounts = [volume for volume in kafka["volumes"] if volume["type"] == "volume"]
    for log_dir in log_dirs:
        assert any(
            Path(log_dir) == Path(mount["target"]) or Path(mount["target"]) in Path(log_dir).parents
            for mount in mounts
        ), f"KAFKA_LOG_DIRS {log_dir} is not on a volume: {mounts}"
    assert all(mount["source"] in project["volumes"] for mount in mounts)
    # Clients reach the advertised listener by the service's name.
    advertised = urlsplit(env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0])
    gateway = environment(services(project)["gateway"])
    assert gateway["MEDIA_GATEWAY_KAFKA_BOOTSTRAP_SERVERS"] == f"kafka:{advertised.port}"
    assert advertised.hostname == "kafka"


def test_opa_serves_the_projects_policy_bundle(project: dict[str, Any]) -> None:
    opa = services(project)["opa"]
    (mount,) = opa["volumes"]
    assert mount["type"] == "bind"
    assert mount["read_only"]
    assert Path(mount["source"]) == REPO_ROOT / "media_gateway" / "policy" / "rego"
    assert sorted(p.name for p in Path(mount["source"]).iterdir() if p.suffix in (".rego", ".json"))
    command = opa["command"]
    assert command[:2] == ["run", "--server"]
    assert mount["target"] in command
    assert "--addr=0.0.0.0:8181" in command
    url = urlsplit(environment(services(project)["gateway"])["MEDIA_GATEWAY_OPA_URL"])
    assert (url.hostname, url.port) == ("opa", 8181)


def ovos_configuration(project: dict[str, Any], service: str) -> dict[str, Any]:
    (config,) = services(project)[service]["configs"]
    assert config["target"] == "/etc/mycroft/mycroft.conf"
    content: dict[str, Any] = json.loads(project["configs"][config["source"]]["content"])
    return content


def test_the_worker_and_ovos_core_find_the_ovos_bus(project: dict[str, Any]) -> None:
    bus = ovos_configuration(project, "ovos-bus")["websocket"]
    core = ovos_configuration(project, "ovos-core")
    assert bus["host"] == "0.0.0.0"
    assert (core["websocket"]["host"], core["websocket"]["port"], core["websocket"]["route"]) == (
        "ovos-bus",
        bus["port"],
        bus["route"],
    )
    assert core["websocket"]["shared_connection"] is False
    assert core["skills"]["installer"]["allow_pip"] is False
    url = urlsplit(environment(services(project)["worker"])["MEDIA_GATEWAY_OVOS_BUS_URL"])
    assert (url.hostname, url.port, url.path) == ("ovos-bus", bus["port"], bus["route"])
    core_check = "\n".join(services(project)["ovos-core"]["healthcheck"]["test"])
    assert f"ws://ovos-bus:{bus['port']}{bus['route']}" in core_check
    bus_check = "\n".join(services(project)["ovos-bus"]["healthcheck"]["test"])
    assert f"ws://127.0.0.1:{bus['port']}{bus['route']}" in bus_check
    # The intent cache survives restarts.
    (volume,) = services(project)["ovos-core"]["volumes"]
    assert volume["type"] == "volume"
    assert volume["source"] in project["volumes"]


def test_prometheus_and_grafana_point_at_the_services(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = services(project)
    gateway = gateway_settings(found["gateway"], monkeypatch)
    worker = gateway_settings(found["worker"], monkeypatch)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs_by_name = {job["job_name"]: job for job in config["scrape_configs"]}

    def dns_targets(job: dict[str, Any]) -> set[tuple[str, int]]:
        return {(name, sd["port"]) for sd in job["dns_sd_configs"] for name in sd["names"]}

    assert dns_targets(jobs_by_name["gateway"]) == {("gateway", gateway.metrics_port)}
    assert dns_targets(jobs_by_name["worker"]) == {("worker", worker.worker_port)}
    assert dns_targets(jobs_by_name["ready"]) == {("gateway", gateway.port), ("worker", worker.worker_port)}
    blackbox_address = [
        rule["replacement"]
        for rule in jobs_by_name["ready"]["relabel_configs"]
        if rule.get("target_label") == "__address__"
    ]
    assert blackbox_address == ["blackbox:9115"]
    assert "http://127.0.0.1:9115/" in " ".join(found["blackbox"]["healthcheck"]["test"])

    # The files Prometheus, the blackbox exporter and Grafana read are the repository's.
    mounts = {
        (name, volume["target"]): Path(volume["source"])
        for name, service in found.items()
        for volume in service.get("volumes") or []
        if volume["type"] == "bind"
    }
    for path in mounts.values():
        assert path.exists(), path
    assert mounts[("prometheus", "/etc/prometheus/prometheus.yml")] == PROMETHEUS_CONFIG
    rule_files = config["rule_files"]
    rules_dir = mounts[("prometheus", "/etc/prometheus/prometheus")]
    for rule_file in rule_files:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file()
        assert rule_file.startswith(f"{rules_dir.name}/")

    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert urlsplit(datasource["url"]).hostname == "prometheus"
    assert {port["target"] for port in published(found["prometheus"])} == {urlsplit(datasource["url"]).port}
    assert datasource["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    assert mounts[("grafana", provider["options"]["path"])] == DASHBOARD_PROVIDERS.parents[2] / "dashboards"
    assert mounts[("grafana", "/etc/grafana/provisioning")] == DATASOURCES.parents[1]


def test_the_dockerfile_passes_docker_build_check(compose_check: Path) -> None:
    result = lint_dockerfile(compose_check)
    assert result.get("error") is None, result["error"]
    assert result["warnings"] == []


def test_the_dockerfile_pins_its_base_runs_unprivileged_and_checks_health() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    # An exact patch release on a named Debian release (or a digest).
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    froms = re.findall(r"(?im)^FROM\s+(\S+)", text)
    assert all(image == "${PYTHON_IMAGE}" or image.endswith("-build") or image == "base" for image in froms)
    stages = re.split(r"(?im)^(?=FROM\s)", text)
    for target in ("gateway", "worker", "ovos"):
        (stage,) = [s for s in stages if re.match(rf"(?i)FROM\s+\S+\s+AS\s+{target}\s*$", s.splitlines()[0])]
        users = re.findall(r"(?m)^USER\s+(\S+)", stage)
        assert users, f"{target} runs as root"
        assert users[-1] not in ("root", "0"), f"{target} runs as root"
        assert re.search(r"(?m)^HEALTHCHECK\s", stage), f"{target} has no HEALTHCHECK"
    # `serve` never migrates: a one-shot job does (several replicas would race).
    assert "migrate &&" not in text
    assert 'CMD ["serve"]' in text


def test_the_dockerignore_keeps_secrets_and_local_state_out_but_not_what_is_copied() -> None:
    ignored = {
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"
    }
    for pattern in (".env", ".git", ".venv", "var", "**/__pycache__", "**/*.egg-info", "**/build"):
        assert pattern in ignored, pattern
    copied = re.findall(r"(?m)^COPY\s+(?!--from)(.+?)\s+\S+$", DOCKERFILE.read_text())
    for sources in copied:
        for source in sources.split():
            assert (REPO_ROOT / source).exists(), source
            assert not {source, source.split("/")[0]} & ignored, f"{source} is ignored"
