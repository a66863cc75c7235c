"""Real `media-gateway` processes for tests: the command an operator runs, on a port the test picks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "media_gateway"]
# Settings every test gateway gets unless its test says otherwise: the test session's OVOS messagebus
# (set by the session fixture in tests/conftest.py).
DEFAULT_SETTINGS: dict[str, str] = {}
# `media-gateway worker` runs from the worker distribution's environment (OVOS speech plugins, no aiortc),
# with this checkout first on its path (set by the session fixture in tests/conftest.py).
WORKER_COMMAND: list[str] = list(COMMAND)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a gateway process: this checkout, the test's database, nothing from the
    developer's MEDIA_GATEWAY_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_GATEWAY_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["MEDIA_GATEWAY_DATABASE_URL"] = database_url
    for name, value in {**DEFAULT_SETTINGS, **settings}.items():
        env[f"MEDIA_GATEWAY_{name.upper()}"] = value
    return env


async def run_command(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run a one-shot `media-gateway` command without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def create_key(env: dict[str, str], cwd: Path, name: str) -> tuple[str, str]:
    """`media-gateway keys create`, then `keys list` for its id: (key value, key id)."""
    code, out, err = await run_command(["keys", "create", "--name", name], env, cwd)
    assert code == 0, err
    value = out.strip()
    code, listed, err = await run_command(["keys", "list"], env, cwd)
    assert code == 0, err
    records = [json.loads(line) for line in listed.splitlines()]
    (record,) = [r for r in records if r["name"] == name]
    return value, str(record["id"])


@dataclass
class GatewayProcess:
    """`media-gateway serve` on 127.0.0.1:`port`, logging to `log_path`; over TLS (https://) when `trust`
    (a client context trusting the server's CA) is given."""

    env: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: asyncio.subprocess.Process | None = None
    command: str = "serve"
    port_setting: str = "MEDIA_GATEWAY_PORT"
    wait_path: str = "/health"  # started once this answers 200
    program: list[str] = field(default_factory=lambda: list(COMMAND))
    trust: ssl.SSLContext | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.trust is not None else 'http'}://127.0.0.1:{self.port}"

    async def start(self, startup_seconds: float = 60) -> float:
        """Start and wait until `wait_path` answers 200; returns the monotonic time it first did."""
        env = {**self.env, "MEDIA_GATEWAY_HOST": "127.0.0.1", self.port_setting: str(self.port)}
        if self.log_path is None:
            self.log_path = self.cwd / f"{self.command}-{self.port}.log"
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *self.program, self.command, env=env, cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + startup_seconds
        connector = aiohttp.TCPConnector(ssl=self.trust) if self.trust is not None else None
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                try:
                    health = f"{self.base_url}{self.wait_path}"
                    async with http.get(health, timeout=aiohttp.ClientTimeout(total=1)) as response:
                        if response.status == 200:
                            return time.monotonic()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if self.process.returncode is not None or time.monotonic() > deadline:
                    await self.kill()
                    pytest.fail(f"{self.command} did not start:\n{self.log()}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 10)

    async def stop(self) -> int | None:
        """SIGTERM, as an operator stops it (SIGKILL after 30 s)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                await self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of `event`."""
        found = []
        for line in self.log().splitlines():
            if f'"event": "{event}"' in line:
                found.append(json.loads(line))
        return found


def worker_process(env: dict[str, str], cwd: Path) -> GatewayProcess:
    """`media-gateway worker`, started once its /ready answers 200 (models loaded, in its group)."""
    return GatewayProcess(
        env,
        cwd,
        command="worker",
        port_setting="MEDIA_GATEWAY_WORKER_PORT",
        wait_path="/ready",
        program=list(WORKER_COMMAND),
    )
