"""`media-gateway serve` with a certificate: REST over https:// with the `openai` Python SDK, the
certificate re-read on SIGHUP for new handshakes (a bad file keeps the one in use), and start-up refusing
files it cannot use with one line naming the setting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography import x509
from openai import AsyncOpenAI

from media_gateway.tls import ReloadableTls, TlsFileError
from tests.support.conformance import GATE
from tests.support.processes import gateway_env, run_command
from tests.tls.certificates import CertificateAuthority
from tests.tls.conftest import TlsGateway


async def served_certificate(gateway: TlsGateway) -> tuple[int, str]:
    """(serial, TLS version) of a new TLS connection to the gateway, verified against the test CA."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", gateway.process.port, ssl=gateway.trust, server_hostname="127.0.0.1"
    )
    try:
        connection = writer.get_extra_info("ssl_object")
        der = connection.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number, connection.version()
    finally:
        writer.close()
        await writer.wait_closed()


async def serial_becomes(gateway: TlsGateway, serial: int, seconds: float = 10) -> float:
    """Wait until new connections get the certificate `serial`; return how long it took."""
    started = time.monotonic()
    while (served := (await served_certificate(gateway))[0]) != serial:
        if time.monotonic() - started > seconds:
            pytest.fail(
                f"still serving {served:X} after {seconds} s, not {serial:X}:\n{gateway.process.log()}"
            )
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_rest_over_https_with_the_openai_python_sdk(tls_gateway: TlsGateway) -> None:
    """`client.realtime.client_secrets.create()` through an httpx client that trusts only the test CA;
    plain http:// on the same port gets no answer."""
    async with httpx.AsyncClient(verify=tls_gateway.trust) as http:
        client = AsyncOpenAI(api_key=tls_gateway.key, base_url=f"{tls_gateway.base_url}/v1", http_client=http)
        secret = await client.realtime.client_secrets.create(
            session={"type": "realtime", "model": "gpt-realtime"},
            expires_after={"anchor": "created_at", "seconds": 60},
        )
        assert secret.value.startswith("ek_")
        assert secret.session.type == "realtime"
        health = await http.get(f"{tls_gateway.base_url}/health")
        assert health.status_code == 200
    serial, version = await served_certificate(tls_gateway)
    assert serial == tls_gateway.server.serial
    assert version in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient() as plain:
            await plain.get(f"http://127.0.0.1:{tls_gateway.process.port}/health", timeout=5)


async def test_sighup_reloads_the_certificate_and_keeps_it_on_a_bad_file(tls_gateway: TlsGateway) -> None:
    gateway, process = tls_gateway, tls_gateway.process
    assert process.process is not None
    assert (await served_certificate(gateway))[0] == gateway.server.serial
    url = gateway.base_url.replace("https://", "wss://") + "/v1/realtime?model=gpt-realtime"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=gateway.trust)) as http,
        http.ws_connect(url, headers={"Authorization": f"Bearer {gateway.key}"}) as ws,
    ):
        assert GATE.check(await ws.receive_str(timeout=20))["type"] == "session.created"

        # A renewed certificate (new key, new serial) written over the same files, then SIGHUP.
        renewed = gateway.authority.issue(gateway.server.cert_file, gateway.server.key_file)
        assert renewed.serial != gateway.server.serial
        process.process.send_signal(signal.SIGHUP)
        took = await serial_becomes(gateway, renewed.serial)
        print(f"\nSIGHUP → new certificate on new connections after {took * 1000:.0f} ms")
        (reloaded,) = process.log_events("gateway.tls.reloaded")
        assert int(reloaded["serial"], 16) == renewed.serial

        # The session opened before the reload goes on.
        await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert GATE.check(await ws.receive_str(timeout=20))["type"] == "session.updated"

    # A key that does not match the certificate: logged, and the renewed certificate stays.
    other = gateway.authority.issue(gateway.server.cert_file.with_name("other.crt"), gateway.server.key_file)
    process.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not process.log_events("gateway.tls.reload_failed"):
        assert time.monotonic() < deadline, process.log()
        await asyncio.sleep(0.05)
    (failed,) = process.log_events("gateway.tls.reload_failed")
    assert failed["level"] == "error"
    assert "MEDIA_GATEWAY_TLS_KEY_FILE" in failed["error"]
    assert int(failed["kept"]["serial"], 16) == renewed.serial
    assert (await served_certificate(gateway))[0] == renewed.serial
    assert other.serial != renewed.serial
    assert process.process.returncode is None


@pytest.mark.parametrize(
    ("fault", "setting"),
    [
        ("key of another certificate", "MEDIA_GATEWAY_TLS_KEY_FILE"),
        ("key file missing", "MEDIA_GATEWAY_TLS_KEY_FILE"),
        ("not a key", "MEDIA_GATEWAY_TLS_KEY_FILE"),
        ("certificate file missing", "MEDIA_GATEWAY_TLS_CERT_FILE"),
        ("not a certificate", "MEDIA_GATEWAY_TLS_CERT_FILE"),
    ],
)
async def test_serve_refuses_files_it_cannot_use(fault: str, setting: str, tmp_path: Path) -> None:
    """One line on stderr naming the setting, exit status 2, before the database is even opened."""
    authority = CertificateAuthority.create(tmp_path / "pki")
    server = authority.issue(tmp_path / "gateway.crt", tmp_path / "gateway.key")
    cert_file, key_file = server.cert_file, server.key_file
    if fault == "key of another certificate":
        key_file = authority.issue(tmp_path / "other.crt", tmp_path / "other.key").key_file
    elif fault == "key file missing":
        key_file = tmp_path / "missing.key"
    elif fault == "not a key":
        key_file = cert_file
    elif fault == "certificate file missing":
        cert_file = tmp_path / "missing.crt"
    else:
        cert_file = key_file
    env = gateway_env(
        f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}",
        tls_cert_file=str(cert_file),
        tls_key_file=str(key_file),
    )
    code, stdout, stderr = await run_command(["serve"], env, tmp_path)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"invalid setting {setting}: "), lines[0]
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "never-created.db").exists()
    print(f"\n{fault}: {lines[0]}")


def test_the_listening_context_needs_tls_1_2_and_reloads_atomically(tmp_path: Path) -> None:
    authority = CertificateAuthority.create(tmp_path / "pki")
    server = authority.issue(tmp_path / "gateway.crt", tmp_path / "gateway.key")
    tls = ReloadableTls(server.cert_file, server.key_file)
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.certificate.serial == server.serial
    os.remove(server.key_file)
    with pytest.raises(TlsFileError, match=r"^invalid setting MEDIA_GATEWAY_TLS_KEY_FILE: cannot read "):
        tls.reload()
    assert tls.certificate.serial == server.serial
