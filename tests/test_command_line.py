"""The `media-gateway` command as an operator runs it: a real process, real stdout, real signals."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import DEFAULT_SETTINGS

COMMAND = [sys.executable, "-m", "media_gateway"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def env(workdir: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_GATEWAY_")}
    values["MEDIA_GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir}/gateway.db"
    values["MEDIA_GATEWAY_PORT"] = str(free_port())
    values["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    values.update({f"MEDIA_GATEWAY_{name.upper()}": value for name, value in DEFAULT_SETTINGS.items()})
    return values


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def server(env: dict[str, str], workdir: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    assert run(["migrate"], env, workdir).returncode == 0
    log_path = workdir / "gateway.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*COMMAND, "serve"], env=env, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    base = f"http://127.0.0.1:{env['MEDIA_GATEWAY_PORT']}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"gateway did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    try:
        yield process, base, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_invalid_setting_fails_with_one_line_naming_it(env: dict[str, str], workdir: Path) -> None:
    env["MEDIA_GATEWAY_PORT"] = "eighty"
    result = run(["serve"], env, workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting MEDIA_GATEWAY_PORT:")


def test_unsupported_database_scheme_is_named(env: dict[str, str], workdir: Path) -> None:
    env["MEDIA_GATEWAY_DATABASE_URL"] = "mysql://root:hunter2@db/x"
    result = run(["migrate"], env, workdir)
    assert result.returncode == 2
    assert "MEDIA_GATEWAY_DATABASE_URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_serve_refuses_an_unmigrated_database(env: dict[str, str], workdir: Path) -> None:
    result = run(["serve"], env, workdir)
    assert result.returncode == 2
    assert "media-gateway migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_create_list_revoke(env: dict[str, str], workdir: Path) -> None:
    assert run(["migrate"], env, workdir).returncode == 0
    created = run(["keys", "create", "--name", "backend", "--scopes", "realtime,admin"], env, workdir)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk_")
    assert len(key) >= 40

    listed = run(["keys", "list"], env, workdir)
    assert listed.returncode == 0
    assert key not in listed.stdout
    assert '"name": "backend"' in listed.stdout
    assert '"scopes": ["realtime", "admin"]' in listed.stdout
    # Only the digest is stored: the database file never contains the key.
    assert key.encode() not in (workdir / "gateway.db").read_bytes()

    revoked = run(["keys", "revoke", key[:10]], env, workdir)
    assert revoked.returncode == 0, revoked.stderr
    assert '"revoked_at": null' not in run(["keys", "list"], env, workdir).stdout
    assert run(["keys", "revoke", "key_doesnotexist"], env, workdir).returncode == 1


def test_development_key_file_is_private_and_reused(env: dict[str, str], workdir: Path) -> None:
    assert run(["migrate"], env, workdir).returncode == 0
    first = run(["keys", "create", "--name", "development", "--output-file", "--if-missing"], env, workdir)
    assert first.returncode == 0, first.stderr
    key_file = workdir / "var" / "dev-api-key"
    assert str(Path("var") / "dev-api-key") in first.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.startswith("sk_")
    assert key not in first.stdout

    second = run(["keys", "create", "--name", "development", "--output-file", "--if-missing"], env, workdir)
    assert second.returncode == 0
    assert key_file.read_text().strip() == key
    assert "kept" in second.stdout


def test_logs_never_contain_keys_or_secrets(
    server: tuple[subprocess.Popen[str], str, Path], env: dict[str, str], workdir: Path
) -> None:
    """Drive a real gateway process with keys and secrets in every place a client puts them, then read
    what it wrote to stdout."""
    process, base, log_path = server
    created = run(["keys", "create", "--name", "logcheck"], env, workdir)
    key = created.stdout.strip()
    assert key.startswith("sk_")
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=10) as client:
        minted = client.post(
            "/v1/realtime/client_secrets", headers=auth, json={"session": {"type": "realtime"}}
        )
        assert minted.status_code == 200, minted.text
        secret = minted.json()["value"]
        assert (
            client.post("/v1/realtime/sessions", headers={"Authorization": f"Bearer {secret}"}).status_code
            == 200
        )
        # The same credentials where they do not belong: query strings, bodies, unknown routes, bad auth.
        client.get(f"/v1/nowhere?api_key={key}&client_secret={secret}", headers=auth)
        client.post("/v1/realtime/client_secrets", headers=auth, json={"session": {"instructions": key}})
        client.post("/v1/realtime/client_secrets", headers=auth, json={"api_key": key})
        client.post("/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {key}x"})
        client.post("/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {secret}"})
        client.post("/v1/realtime/client_secrets", headers=auth, content=f'{{"broken": "{key}'.encode())
        assert client.get("/ready").status_code == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    output = log_path.read_text()
    assert '"event": "http.request"' in output
    assert '"event": "client_secret.minted"' in output
    assert '"event": "gateway.stopped"' in output
    assert '"request_id": "req_' in output
    for credential in (key, secret, key[3:], secret[3:]):
        assert credential not in output


def test_sigterm_shuts_down_gracefully(server: tuple[subprocess.Popen[str], str, Path]) -> None:
    process, base, log_path = server
    assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert time.monotonic() - started < 10
    output = log_path.read_text()
    assert '"event": "database.stopped"' in output
    assert '"event": "gateway.stopped"' in output
