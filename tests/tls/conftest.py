"""`media-gateway serve` with MEDIA_GATEWAY_TLS_CERT_FILE/KEY_FILE, as an operator runs it, and the Node
clients (scripts/install-node-clients.sh) that reach it over https:// and wss:// trusting a test CA."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media_gateway.credentials import display_prefix, generate_api_key, hash_credential
from media_gateway.persistence.database import Database
from media_gateway.persistence.migrate import upgrade_to_head
from media_gateway.persistence.repositories import Repositories
from tests.support.conformance import GATE
from tests.support.processes import REPO_ROOT, GatewayProcess, gateway_env
from tests.tls.certificates import CertificateAuthority, ServerCertificate

HERE = Path(__file__).resolve().parent
INSTALL_NODE_CLIENTS = REPO_ROOT / "scripts" / "install-node-clients.sh"


@dataclass
class TlsGateway:
    process: GatewayProcess
    key: str
    authority: CertificateAuthority
    server: ServerCertificate
    trust: ssl.SSLContext

    @property
    def base_url(self) -> str:
        return self.process.base_url


def trusting(authority: CertificateAuthority) -> ssl.SSLContext:
    """A client context that trusts only the test CA (and checks the host name)."""
    return ssl.create_default_context(cafile=str(authority.ca_file))


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The Node clients' node_modules (installed once and cached by scripts/install-node-clients.sh)."""
    result = subprocess.run(
        ["bash", str(INSTALL_NODE_CLIENTS)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/install-node-clients.sh failed:\n{result.stderr}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


async def start_tls_gateway(directory: Path) -> TlsGateway:
    """A migrated SQLite gateway in `directory` serving https:// and wss:// with a certificate of a new
    test CA, answering through the test session's OVOS, with a `realtime` API key. The database is
    migrated and the key made in this process (quicker than the commands); the gateway is the real
    `media-gateway serve`."""
    authority = CertificateAuthority.create(directory / "pki")
    server = authority.issue(directory / "tls" / "gateway.crt", directory / "tls" / "gateway.key")
    database_url = f"sqlite+aiosqlite:///{directory / 'gateway.db'}"
    database = Database(database_url)
    try:
        await upgrade_to_head(database)
        key = generate_api_key()
        await Repositories.from_database(database).api_keys.create(
            name="tls-test", scopes=["realtime"], key_hash=hash_credential(key), prefix=display_prefix(key)
        )
    finally:
        await database.dispose()
    env = gateway_env(database_url, tls_cert_file=str(server.cert_file), tls_key_file=str(server.key_file))
    trust = trusting(authority)
    process = GatewayProcess(env, directory, trust=trust)  # over https://: trusting only the test CA
    await process.start(startup_seconds=120)
    return TlsGateway(process, key, authority, server, trust)


@pytest.fixture
async def tls_gateway(tmp_path: Path) -> AsyncIterator[TlsGateway]:
    gateway = await start_tls_gateway(tmp_path)
    try:
        yield gateway
    finally:
        await gateway.process.stop()


@pytest.fixture(scope="module")
async def shared_tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsGateway]:
    """One TLS gateway for the tests of a module that only connect to it."""
    gateway = await start_tls_gateway(tmp_path_factory.mktemp("tls-gateway"))
    try:
        yield gateway
    finally:
        await gateway.process.stop()


async def run_node(
    script: str, config: dict[str, Any], *, node_modules: Path, ca_file: Path, seconds: float = 60
) -> dict[str, Any]:
    """Run tests/tls/`script` with Node, the cached client packages on NODE_PATH and the test CA in
    NODE_EXTRA_CA_CERTS; `config` goes in as JSON (argv[2]) and the script's last stdout line comes back."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "OPENAI_"))},
        "NODE_PATH": str(node_modules),
        "NODE_EXTRA_CA_CERTS": str(ca_file),
    }
    flags = ["--experimental-websocket"] if _node_major() < 22 else []  # a global WebSocket
    process = await asyncio.create_subprocess_exec(
        "node",
        *flags,
        str(HERE / script),
        json.dumps(config),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(f"{script} timed out:\n{stdout.decode()}\n{stderr.decode()}")
    if process.returncode != 0:
        pytest.fail(f"{script} exited {process.returncode}:\n{stdout.decode()}\n{stderr.decode()}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@functools.cache
def _node_major() -> int:
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True, timeout=30)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


def check_events(path: Path) -> list[dict[str, Any]]:
    """The server events a Node script saw (one JSON per line), each through the conformance gate."""
    return [GATE.check(line) for line in path.read_text().splitlines() if line.strip()]
