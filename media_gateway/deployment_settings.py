"""Settings for exposing the gateway beyond loopback (TLS, the Host allow-list, the metrics endpoint,
WebRTC media behind NAT and firewalls), a part of `Settings` kept in a module of its own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

PORT_RANGE = r"^\d{1,5}-\d{1,5}$"


class DeploymentSettings(BaseSettings):
    """Fields of `Settings` (which sets the environment prefix and the `.env` file)."""

    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate chain; with tls_key_file the listener serves https:// and wss:// on "
        "its port (re-read on SIGHUP). Unset: plain HTTP.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    allowed_hosts: str = Field(
        "",
        description="Comma-separated Host header values the gateway answers (name or name:port); other "
        "requests get 421. Empty: any Host.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="When set, /metrics requires `Authorization: Bearer <token>`."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve /metrics on a listener of its own on this port (same address) instead of the "
        "main one.",
    )
    webrtc_udp_ports: str | None = Field(
        None,
        pattern=PORT_RANGE,
        description="LOW-HIGH: the UDP ports ICE binds for WebRTC media (publish them); unset: ephemeral.",
    )
    webrtc_public_address: str | None = Field(
        None,
        description="Announced in host ICE candidates instead of the bound address (1:1 NAT: a container's "
        "or cloud VM's public address).",
    )

    @model_validator(mode="after")
    def _deployment_dependencies(self) -> DeploymentSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("MEDIA_GATEWAY_TLS_CERT_FILE and MEDIA_GATEWAY_TLS_KEY_FILE go together")
        if self.webrtc_udp_ports is not None:
            low, _, high = self.webrtc_udp_ports.partition("-")
            if not 1024 <= int(low) <= int(high) <= 65535:
                raise ValueError("MEDIA_GATEWAY_WEBRTC_UDP_PORTS must be LOW-HIGH within 1024-65535")
        return self
