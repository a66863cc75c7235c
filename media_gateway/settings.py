"""Typed settings read from `MEDIA_GATEWAY_*` environment variables and an optional `.env` file.

The defaults are the embedded ones: a SQLite file under `./var/`, the in-process bus and policy engine,
and a listener on 127.0.0.1:8000. `.env.example` documents every field below; keep the two in step
(a test compares them).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from media_gateway.deployment_settings import DeploymentSettings
from media_gateway.sip_settings import SipSettings
from media_gateway.timezones import valid_zone

ENV_PREFIX = "MEDIA_GATEWAY_"
INSTANCE_ID_MAX_LENGTH = 64
INSTANCE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\[\]-]*")


class IceServer(BaseModel):
    """One STUN or TURN server, as in the browser's RTCIceServer (aiortc uses one of each kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None

    @field_validator("urls")
    @classmethod
    def _known_schemes(cls, value: str | list[str]) -> str | list[str]:
        for url in [value] if isinstance(value, str) else value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL {url[:40]!r} must start with stun:, turn: or turns:")
        return value


class Settings(DeploymentSettings, SipSettings):
    """Every knob of the gateway. Field names map to `MEDIA_GATEWAY_<NAME>` variables (the SIP endpoint's
    are in `SipSettings`, exposure beyond loopback in `DeploymentSettings`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- HTTP listener -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the HTTP server (0 picks a free one).")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted HTTP request body; larger ones get 413."
    )
    shutdown_timeout_seconds: float = Field(
        10.0, gt=0, description="Grace period for open requests and sessions on SIGTERM/SIGINT."
    )

    # --- Persistence ---------------------------------------------------------------------------------
    database_url: str = Field(
        "sqlite+aiosqlite:///var/gateway.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB.",
    )

    # --- Gateway instances (several processes on one database) -----------------------------------------
    instance_id: str | None = Field(
        None,
        description="This process's name among the gateways sharing the database. Unset: "
        "<host name>:<bind address>:<port>, which no two running processes share (they cannot both listen "
        "there) and which a restart of the same gateway keeps, so a restarted gateway releases the sessions "
        "its previous run left behind at once; with port 0 a random suffix replaces the port (the port is "
        "not known yet). Set it explicitly to a value unique per process, e.g. a pod name.",
    )
    instance_heartbeat_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How often this process renews its heartbeat row and checks its live sessions for "
        "revoked API keys and client secrets (two indexed queries of its own sessions per period).",
    )
    instance_ttl_seconds: float = Field(
        15.0,
        gt=0,
        description="A process whose heartbeat is this old counts as dead: its sessions stop counting "
        "against their keys' limits (at least three heartbeats, so one slow database write is not death).",
    )

    # --- Pipeline bus --------------------------------------------------------------------------------
    bus: Literal["inprocess", "kafka"] = Field(
        "inprocess",
        description="The bus between gateways and speech workers: in-process (one process does everything) "
        "or kafka (gateways and `media-gateway worker` processes scale apart).",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port separated by commas."
    )
    kafka_topic_prefix: str = Field(
        "media-gateway.",
        pattern=r"^[A-Za-z0-9._-]{0,100}$",
        description="Prefix of every topic and consumer group name (several deployments on one cluster).",
    )
    kafka_input_partitions: int = Field(
        12,
        ge=1,
        le=10_000,
        description="Partitions of the input topic: the most workers that can share the load.",
    )
    kafka_reply_partitions: int = Field(
        1, ge=1, le=100, description="Partitions of each gateway instance's reply topic."
    )
    kafka_replication_factor: int | None = Field(
        None, ge=1, le=10, description="Replicas of each topic created; unset: min(3, brokers)."
    )
    kafka_retention_seconds: int = Field(
        3600, ge=60, description="How long the topics keep messages (they are only useful live)."
    )
    kafka_session_timeout_ms: int = Field(
        6000,
        ge=1000,
        le=300_000,
        description="A worker that sends no heartbeat for this long loses its partitions to the others.",
    )
    kafka_heartbeat_interval_ms: int = Field(
        1000, ge=100, description="Consumer group heartbeat period (at most a third of the session timeout)."
    )
    kafka_buffer_messages: int = Field(
        5000,
        ge=100,
        description="Messages a process holds for the broker (100 s of one session's audio); beyond it, "
        "events wait and audio is dropped.",
    )
    kafka_linger_ms: int = Field(
        1,
        ge=0,
        le=5,
        description="How long the producer waits to fill a batch (batches form anyway while one is in "
        "flight; 1 ms cut the bus round trip p99 by a third against 5 ms at 100 sessions, for the same CPU).",
    )
    kafka_start_timeout_seconds: float = Field(
        60.0, gt=0, description="How long a starting process waits for the Kafka cluster."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers (SSL).")
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: str | None = Field(None, description="Client certificate's key (mutual TLS).")

    # --- Worker (`media-gateway worker`) ---------------------------------------------------------------
    worker_port: int = Field(
        8001, ge=0, le=65535, description="Port of the worker's /health, /ready and /metrics (0: any)."
    )
    worker_session_ttl_seconds: float = Field(
        900.0,
        gt=0,
        description="A worker forgets a session nobody sent anything for this long (its gateway is gone).",
    )

    speech_pipeline: Literal["inprocess", "none"] = Field(
        "inprocess",
        description="Run the speech pipeline (STT, OVOS, TTS) inside the gateway, or none when external "
        "workers consume the bus.",
    )

    # --- OpenVoiceOS (whatever runs the speech pipeline: the embedded gateway, or a worker) ---------------
    ovos_bus_url: str = Field(
        "ws://127.0.0.1:8181/core",
        description="The OVOS messagebus the pipeline talks to (one connection per process).",
    )
    ovos_venv: Path | None = Field(
        None,
        description="An OVOS virtualenv (scripts/install-ovos.sh prints one): the process starts "
        "ovos-messagebus and ovos-core from it, listening on ovos_bus_url's host and port. Unset: use the "
        "OVOS already serving ovos_bus_url.",
    )
    ovos_home: Path = Field(
        Path("var/ovos"),
        description="Where a local OVOS (ovos_venv) keeps its configuration, data, intent cache and logs.",
    )
    ovos_start_timeout_seconds: float = Field(
        180.0, gt=0, description="How long a local OVOS may take to load and train its skills."
    )
    ovos_turn_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="A turn OVOS says nothing more of for this long fails (a stuck skill).",
    )
    ovos_max_turns: int | None = Field(
        None,
        ge=1,
        description="Sessions that may have a turn or dialog open in OVOS at once, per process; unset: one "
        "less than ovos-core's handler pool per skill, min(32, cpus + 4) - 1 (six concurrent get_response "
        "dialogs on one skill deadlock a 2-core ovos-core).",
    )
    speech_plugins: dict[str, Any] = Field(
        {},
        description="The OVOS speech plugins of a worker installed as ovos-media-gateway-worker: JSON with "
        'mycroft.conf\'s "stt" and "tts" sections (and "lang"), laid over the offline defaults '
        "(ovos-stt-plugin-fasterwhisper with whisper tiny.en, media-gateway-flite). Elsewhere unused.",
    )
    voices: dict[str, str] = Field(
        {},
        description='JSON map from OpenAI voice names to the TTS engine\'s voices, e.g. {"alloy":"slt",'
        '"default":"rms"}; unset names keep the built-in map (flite: female voices slt, male rms/awb/kal16).',
    )
    ovos_admission_wait_seconds: float = Field(
        10.0, gt=0, description="How long a turn waits for an OVOS slot before it fails as busy."
    )

    # --- Policy --------------------------------------------------------------------------------------
    policy_engine: Literal["inprocess", "opa"] = Field(
        "inprocess", description="Where Rego policies are evaluated: in-process, or an OPA sidecar."
    )
    opa_url: str | None = Field(
        None, description="Base URL of the OPA server; required when policy_engine=opa."
    )
    opa_timeout_seconds: float = Field(0.5, gt=0, le=30, description="Timeout of one OPA decision call.")
    policy_dir: Path | None = Field(
        None,
        description="The in-process engine's policy: a directory of .rego files and its data.json (e.g. a "
        "copy of the shipped one with your limits); unset: the shipped policy.",
    )

    # --- Client secrets and sessions ----------------------------------------------------------------
    default_model: str = Field("gpt-realtime", description="Model used when a client names none.")
    max_connections_per_secret: int = Field(
        1,
        ge=1,
        description="Live realtime connections one ek_ client secret may hold at a time (the connect "
        "policy's secret.max_live_connections). A secret opens its one session, which has one primary "
        "connection across all gateways, so a secret never holds more than one.",
    )

    # --- Realtime sessions ---------------------------------------------------------------------------
    ws_max_message_bytes: int = Field(
        32 * 1024 * 1024,
        ge=65536,
        description="Largest WebSocket frame accepted; larger ones close with 1009.",
    )
    max_append_bytes: int = Field(
        15 * 1024 * 1024, ge=1024, description="Largest decoded audio in one input_audio_buffer.append."
    )
    session_max_seconds: float = Field(3600.0, gt=0, description="Longest a realtime session may last.")
    session_idle_timeout_seconds: float = Field(
        300.0, gt=0, description="A connection that sends nothing for this long is closed."
    )
    response_timeout_seconds: float = Field(
        30.0, gt=0, description="A response the speech pipeline does not finish in this time fails."
    )
    pipeline_idle_timeout_seconds: float = Field(
        5.0,
        ge=2,
        description="A response the speech pipeline says nothing of for this long fails (workers report "
        "every second that they are still on it): how long a dead worker can hold a response.",
    )

    # --- WebRTC (POST /v1/realtime/calls) --------------------------------------------------------------
    webrtc_ice_servers: list[IceServer] = Field(
        [],
        description='STUN/TURN servers as JSON, e.g. [{"urls":"turn:turn.example.org:443?transport=tcp",'
        '"username":"u","credential":"p"}]; empty: host candidates only (aiortc uses one STUN and one TURN).',
    )
    webrtc_ice_transport_policy: Literal["all", "relay"] = Field(
        "all", description="all: host, srflx and relay candidates; relay: TURN only."
    )
    webrtc_host_addresses: list[str] = Field(
        [], description="JSON list of local IPs to gather host candidates on; empty: every interface."
    )
    webrtc_include_loopback: bool = Field(
        False, description="Also offer 127.0.0.1 (only useful on a host whose only interface is lo)."
    )
    webrtc_gather_timeout_seconds: float = Field(
        2.0, gt=0, le=5, description="Cap on STUN/TURN gathering while the SDP answer is built."
    )
    webrtc_connect_timeout_seconds: float = Field(
        15.0, gt=0, description="A call whose peer connection is not connected by then is closed (failed)."
    )
    webrtc_peer_timeout_seconds: float = Field(
        5.0, gt=0, description="A connected call that receives no RTP or data for this long is released."
    )
    webrtc_max_calls: int = Field(
        100, ge=1, description="Live WebRTC calls this process accepts; more are refused with 429."
    )
    webrtc_inbound_queue_frames: int = Field(
        50, ge=2, description="20 ms frames buffered per call between the track and the engine (drop-oldest)."
    )
    webrtc_fast_audio_level: bool = Field(
        True, description="Replace aiortc's pure-Python outbound audio-level computation with numpy."
    )

    # --- Answers ---------------------------------------------------------------------------------------
    timezone: str | None = Field(
        None,
        description="IANA time zone (e.g. Europe/Lisbon) the speech pipeline answers questions about the "
        "time in; unset: the host's zone (TZ, /etc/timezone, /etc/localtime), else UTC.",
    )

    # --- Logging -------------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log threshold.")
    log_format: Literal["json", "console"] = Field(
        "json", description="json for machines, console for people."
    )

    demo_enabled: bool | None = Field(
        None,
        description="Serve the browser demo at / and its unauthenticated POST /demo/client_secret. Unset "
        "(auto): on only for the embedded default (SQLite and the in-process policy engine) bound to "
        "loopback.",
    )

    # --- Development conveniences -------------------------------------------------------------------
    dev_key_file: Path = Field(
        Path("var/dev-api-key"),
        description="Where `make run` stores the development API key it creates on first start (mode 0600).",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            scheme = value.split("://", 1)[0] if "://" in value else value[:20]
            raise ValueError(
                f"unsupported scheme {scheme!r}; use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value and not valid_zone(value):
            raise ValueError(f"unknown time zone {value[:64]!r}; use an IANA name such as Europe/Lisbon")
        return value or None

    @field_validator("instance_id")
    @classmethod
    def _instance_id_shape(cls, value: str | None) -> str | None:
        if not value:  # unset, or set to nothing in .env: the default
            return None
        if len(value) > INSTANCE_ID_MAX_LENGTH or not INSTANCE_ID_PATTERN.fullmatch(value):
            raise ValueError(
                f"must be 1 to {INSTANCE_ID_MAX_LENGTH} characters: letters, digits and . _ : @ [ ] -"
            )
        return value

    @model_validator(mode="after")
    def _dependent_fields(self) -> Settings:
        if self.policy_engine == "opa" and not self.opa_url:
            raise ValueError("MEDIA_GATEWAY_OPA_URL is required when MEDIA_GATEWAY_POLICY_ENGINE=opa")
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            raise ValueError(
                "MEDIA_GATEWAY_KAFKA_HEARTBEAT_INTERVAL_MS must be at most a third of "
                "MEDIA_GATEWAY_KAFKA_SESSION_TIMEOUT_MS"
            )
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                "MEDIA_GATEWAY_KAFKA_SASL_USERNAME and MEDIA_GATEWAY_KAFKA_SASL_PASSWORD are required "
                "with MEDIA_GATEWAY_KAFKA_SASL_MECHANISM"
            )
        if self.instance_ttl_seconds < 3 * self.instance_heartbeat_seconds:
            raise ValueError(
                "MEDIA_GATEWAY_INSTANCE_TTL_SECONDS must be at least three times "
                "MEDIA_GATEWAY_INSTANCE_HEARTBEAT_SECONDS"
            )
        return self

    def resolved_instance_id(self) -> str:
        """``instance_id``, or the default described on the field. With port 0 every call differs, so the
        composition root calls this once per process."""
        if self.instance_id is not None:
            return self.instance_id
        port = str(self.port) if self.port else f"0-{secrets.token_hex(4)}"
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "host"
        address = f"[{self.host}]" if ":" in self.host else self.host
        value = f"{host}:{address}:{port}"
        if len(value) > INSTANCE_ID_MAX_LENGTH:  # long host names: keep them distinct with a digest
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            value = f"{value[: INSTANCE_ID_MAX_LENGTH - 13]}~{digest}"
        return value


class SettingsError(Exception):
    """Settings could not be loaded; `str()` is one line per bad setting, naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Load settings from the environment (and `.env`), turning validation errors into `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"]]
            name = ENV_PREFIX + "_".join(location).upper() if location else "settings"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"invalid setting {name}: {message}")
        raise SettingsError("\n".join(lines)) from None
