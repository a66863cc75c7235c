"""TLS for the gateway's listener: https:// and wss:// on its one port, from MEDIA_GATEWAY_TLS_CERT_FILE and
MEDIA_GATEWAY_TLS_KEY_FILE, with the certificate re-read on demand (SIGHUP, see `cli.py`).

Each load builds a fresh `ssl.SSLContext` from the files and checks them first, so a bad file names its
setting and, on a reload, leaves the certificate in use untouched. The listener keeps the context it
started with; its `sni_callback`, which OpenSSL calls on every ClientHello (with or without SNI), moves each
new handshake onto the most recently loaded context. Connections already open keep theirs. Swapping whole
contexts, rather than calling `load_cert_chain` again on the listening one, keeps a reload atomic: a second
`load_cert_chain` that fails half-way, or brings a key of another type (RSA to ECDSA), would leave the old
certificate or a mismatched pair in the context.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from media_gateway.observability.logging import get_logger

CERT_SETTING = "MEDIA_GATEWAY_TLS_CERT_FILE"
KEY_SETTING = "MEDIA_GATEWAY_TLS_KEY_FILE"

log = get_logger("media_gateway.tls")


class TlsFileError(Exception):
    """A certificate or key file cannot be used; `str()` is one line naming the setting."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting}: {message}")
        self.setting = setting


@dataclass(frozen=True)
class Certificate:
    """The leaf certificate a context serves."""

    serial: int
    subject: str
    not_after: datetime

    def describe(self) -> dict[str, str]:
        """For a log line: the serial in hex, as `openssl x509 -serial` prints it."""
        return {
            "serial": format(self.serial, "X"),
            "subject": self.subject,
            "not_after": self.not_after.isoformat(),
        }


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(setting, f"cannot read {path}: {exc.strerror or exc}") from None


def check_files(cert_file: Path, key_file: Path) -> Certificate:
    """Check that `cert_file` holds a PEM certificate chain and `key_file` the unencrypted PEM private key of
    its first certificate; raise `TlsFileError` naming the faulty setting otherwise."""
    cert_pem = _read(cert_file, CERT_SETTING)
    key_pem = _read(key_file, KEY_SETTING)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsFileError(CERT_SETTING, f"{cert_file} holds no PEM certificate") from None
    leaf = chain[0]
    try:
        key = load_pem_private_key(key_pem, password=None)
    except TypeError:  # encrypted: the gateway cannot ask for a passphrase
        raise TlsFileError(KEY_SETTING, f"{key_file} is encrypted; give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError(KEY_SETTING, f"{key_file} holds no PEM private key") from None
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise TlsFileError(KEY_SETTING, f"{key_file} is not the private key of {cert_file} ({CERT_SETTING})")
    return Certificate(
        serial=leaf.serial_number, subject=leaf.subject.rfc4514_string(), not_after=leaf.not_valid_after_utc
    )


def _no_passphrase() -> bytes:
    # Never let OpenSSL prompt on the terminal (check_files rejects encrypted keys; this covers a file
    # replaced between the check and the load).
    raise TlsFileError(KEY_SETTING, "the key is encrypted; give the key without a passphrase")


def server_context(cert_file: Path, key_file: Path) -> tuple[ssl.SSLContext, Certificate]:
    """A server context (TLS 1.2 or later, HTTP/1.1) serving the chain and key of these files."""
    certificate = check_files(cert_file, key_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:  # a file replaced between the check and the load
        raise TlsFileError(KEY_SETTING, f"cannot load {cert_file} with {key_file}: {exc}") from None
    return context, certificate


class ReloadableTls:
    """The listener's TLS: `context` goes to the listening socket; `reload()` re-reads the files and makes
    every new handshake use them, or raises `TlsFileError` and keeps the certificate in use."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context, self.certificate = server_context(cert_file, key_file)
        self._current = self.context
        self.context.sni_callback = self._select

    def reload(self) -> Certificate:
        context, certificate = server_context(self.cert_file, self.key_file)
        self._current, self.certificate = context, certificate
        return certificate

    def reload_on_sighup(self) -> None:
        """SIGHUP handler: reload, and log the certificate now served or why the old one stays."""
        try:
            certificate = self.reload()
        except TlsFileError as exc:
            log.error("gateway.tls.reload_failed", error=str(exc), kept=self.certificate.describe())
            return
        log.info("gateway.tls.reloaded", cert_file=str(self.cert_file), **certificate.describe())

    async def sighup_context(self, _: object) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: SIGHUP reloads while the listener runs."""
        log.info("gateway.tls", cert_file=str(self.cert_file), **self.certificate.describe())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload_on_sighup)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if connection.context is not self._current:
            connection.context = self._current
