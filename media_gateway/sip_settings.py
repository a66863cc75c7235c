"""The SIP endpoint's settings (`MEDIA_GATEWAY_SIP_*`), a part of `Settings` kept in a module of its own."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings


class SipSettings(BaseSettings):
    """Fields of `Settings` (which sets the environment prefix and the `.env` file)."""

    # --- SIP -------------------------------------------------------------------------------------------
    sip_port: int | None = Field(
        None, ge=0, le=65535, description="UDP port of the SIP endpoint (5060 is usual); unset: no SIP."
    )
    sip_host: str = Field("127.0.0.1", description="Address the SIP and RTP sockets bind to.")
    sip_public_address: str | None = Field(
        None,
        description="Address put in SDP answers and Contact headers (the host's public address behind "
        "1:1 NAT); unset: sip_host, which must then be a concrete address.",
    )
    sip_rtp_ports: str = Field(
        "40000-40999", pattern=r"^\d{1,5}-\d{1,5}$", description="UDP port range of SIP calls' RTP."
    )
    sip_allowed_sources: str = Field(
        "",
        description="Comma-separated CIDRs (a trunk's or PBX's addresses) allowed to send SIP requests; "
        "others get 403. Empty: any source (the connect policy still decides each call).",
    )
    sip_codecs: str = Field(
        "opus,pcmu,pcma",
        description="Codecs a call may use (of opus, pcmu, pcma); the caller's order of preference wins.",
    )
    sip_webhook_url: str | None = Field(
        None,
        description="Where incoming calls are announced (realtime.call.incoming); the application then "
        "accepts, rejects or refers the call with /v1/realtime/calls/{call_id}/…",
    )
    sip_webhook_secret: SecretStr | None = Field(
        None, description="whsec_… secret signing the webhooks (Standard Webhooks)."
    )
    sip_dispatch_key: SecretStr | None = Field(
        None,
        description="Without a webhook: an API key (sk_…) whose sessions answer every call (the dispatch "
        "rule), with sip_dispatch_session as the session.",
    )
    sip_dispatch_session: str | None = Field(
        None, description="JSON session config of dispatched calls; unset: μ-law, server VAD, transcripts."
    )
    sip_answer_timeout_seconds: float = Field(
        30.0, gt=0, description="A call neither accepted nor rejected by then is refused with 480."
    )
    sip_rtp_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="An answered call with no RTP from the caller for this long (not on hold) is hung up.",
    )
    sip_max_calls: int = Field(100, ge=1, description="SIP calls this process holds; more get 486.")

    @model_validator(mode="after")
    def _sip_dependencies(self) -> SipSettings:
        if self.sip_port is not None:
            low, _, high = self.sip_rtp_ports.partition("-")
            if not 1024 <= int(low) <= int(high) <= 65535:
                raise ValueError("MEDIA_GATEWAY_SIP_RTP_PORTS must be LOW-HIGH within 1024-65535")
            if self.sip_public_address is None and self.sip_host in ("0.0.0.0", "::"):  # noqa: S104
                raise ValueError(
                    "MEDIA_GATEWAY_SIP_PUBLIC_ADDRESS is required when MEDIA_GATEWAY_SIP_HOST binds every "
                    "address: SDP answers and Contact headers need one the callers can reach"
                )
            if self.sip_webhook_url and not self.sip_webhook_secret:
                raise ValueError(
                    "MEDIA_GATEWAY_SIP_WEBHOOK_SECRET is required with MEDIA_GATEWAY_SIP_WEBHOOK_URL"
                )
        return self
