"""SQLAlchemy 2 declarative models.

Portable across SQLite and PostgreSQL: JSON columns are JSONB on Postgres, datetimes are always returned as
timezone-aware UTC (SQLite hands back naive values; :class:`UTCDateTime` normalises them).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, get_args

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "CALL_STATUSES",
    "ITEM_STATUSES",
    "ITEM_TYPES",
    "SESSION_STATUSES",
    "SESSION_TYPES",
    "ApiKey",
    "Base",
    "Call",
    "CallStatus",
    "ClientSecret",
    "ConversationItem",
    "GatewayInstance",
    "ItemStatus",
    "ItemType",
    "JSONType",
    "RealtimeSession",
    "SessionStatus",
    "SessionType",
    "UTCDateTime",
    "new_id",
    "utcnow",
]

SessionType = Literal["realtime", "transcription"]
SessionStatus = Literal["created", "hydrated", "active", "closed"]
# SIP calls add the outcomes of a call that was never answered: rejected (by the application), cancelled
# (by the caller), unanswered (nobody decided in time), refused (by the gateway: policy, capacity).
CallStatus = Literal[
    "new", "connecting", "connected", "ended", "failed", "rejected", "cancelled", "unanswered", "refused"
]
ItemType = Literal["message", "function_call", "function_call_output"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]

SESSION_TYPES: Final[tuple[str, ...]] = get_args(SessionType)
SESSION_STATUSES: Final[tuple[str, ...]] = get_args(SessionStatus)
CALL_STATUSES: Final[tuple[str, ...]] = get_args(CallStatus)
ITEM_TYPES: Final[tuple[str, ...]] = get_args(ItemType)
ITEM_STATUSES: Final[tuple[str, ...]] = get_args(ItemStatus)

ID_LENGTH: Final = 64
"""Column width of every id column (prefix + 32 hex chars fits comfortably; client item ids up to 64)."""


def new_id(prefix: str) -> str:
    """Return ``<prefix>_<32 hex chars>`` (128 random bits), e.g. ``new_id("sess") -> "sess_3f9c..."``."""
    return f"{prefix.rstrip('_')}_{secrets.token_hex(16)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and always returns aware UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite stores the wall-clock text only; store UTC so ordering and comparisons hold.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""Portable JSON column type. Query with ``col["key"].as_string()`` (``.astext`` fails on the variant)."""

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    key_hash: Mapped[str] = mapped_column(String(256), unique=True, index=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class GatewayInstance(Base):
    """One running gateway process. Its `active` sessions count as live only while `expires_at` (renewed by
    the process's heartbeat) is in the future, so a process that dies stops holding slots within one TTL."""

    __tablename__ = "gateway_instances"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: Random per process start: tells a restarted instance (same id) from the run before it.
    boot_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RealtimeSession(Base):
    __tablename__ = "realtime_sessions"
    __table_args__ = (
        CheckConstraint(_in("type", SESSION_TYPES), name="type"),
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        Index("ix_realtime_sessions_api_key_id_status", "api_key_id", "status"),
        Index("ix_realtime_sessions_instance_id_status", "instance_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    type: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    hydrated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: The gateway instance holding the session's live connection (set while `active`; kept afterwards as
    #: history). No foreign key: instance rows are deleted when their process stops.
    instance_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    #: When a session opened through a client secret stops counting as live unless connected: the secret's
    #: expiry (NULL for sessions opened with an API key, which are only ever live while connected).
    expires_at: Mapped[datetime | None]


class ClientSecret(Base):
    __tablename__ = "client_secrets"
    __table_args__ = (Index("ix_client_secrets_api_key_id_created_at", "api_key_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(256), unique=True, index=True)
    api_key_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("api_keys.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("realtime_sessions.id", ondelete="SET NULL"), index=True
    )
    session_config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_used_at: Mapped[datetime | None]


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (CheckConstraint(_in("status", CALL_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    # None for a SIP call that was never answered: no session was opened for it.
    session_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("realtime_sessions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="new")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class ConversationItem(Base):
    __tablename__ = "conversation_items"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        CheckConstraint(_in("type", ITEM_TYPES), name="type"),
        CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("realtime_sessions.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    previous_item_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    type: Mapped[str] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    content: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
