"""Immutable records returned by the repositories (ORM objects never leave the persistence layer)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from .models import (
    ApiKey,
    Call,
    CallStatus,
    ClientSecret,
    ConversationItem,
    ItemStatus,
    ItemType,
    RealtimeSession,
    SessionStatus,
    SessionType,
    utcnow,
)

__all__ = [
    "ApiKeyRecord",
    "CallRecord",
    "ClientSecretRecord",
    "ConversationItemRecord",
    "SessionRecord",
]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def from_row(cls, row: ApiKey) -> ApiKeyRecord:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            key_hash=row.key_hash,
            scopes=tuple(row.scopes),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


@dataclass(frozen=True, slots=True)
class ClientSecretRecord:
    id: str
    secret_hash: str
    api_key_id: str
    session_id: str | None
    session_config: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    use_count: int
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at

    def is_usable(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired."""
        return not self.revoked and not self.is_expired(now)

    @classmethod
    def from_row(cls, row: ClientSecret) -> ClientSecretRecord:
        return cls(
            id=row.id,
            secret_hash=row.secret_hash,
            api_key_id=row.api_key_id,
            session_id=row.session_id,
            session_config=copy.deepcopy(row.session_config),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            use_count=row.use_count,
            last_used_at=row.last_used_at,
        )


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    api_key_id: str | None
    type: SessionType
    model: str
    config: dict[str, Any]
    status: SessionStatus
    created_at: datetime
    updated_at: datetime
    hydrated_at: datetime | None
    closed_at: datetime | None
    instance_id: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_row(cls, row: RealtimeSession) -> SessionRecord:
        return cls(
            id=row.id,
            api_key_id=row.api_key_id,
            type=cast(SessionType, row.type),
            model=row.model,
            config=copy.deepcopy(row.config),
            status=cast(SessionStatus, row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
            hydrated_at=row.hydrated_at,
            closed_at=row.closed_at,
            instance_id=row.instance_id,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    session_id: str | None
    status: CallStatus
    meta: dict[str, Any]
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def from_row(cls, row: Call) -> CallRecord:
        return cls(
            id=row.id,
            session_id=row.session_id,
            status=cast(CallStatus, row.status),
            meta=copy.deepcopy(row.meta),
            created_at=row.created_at,
            ended_at=row.ended_at,
        )


@dataclass(frozen=True, slots=True)
class ConversationItemRecord:
    id: str
    session_id: str
    position: int
    previous_item_id: str | None
    type: ItemType
    role: str | None
    status: ItemStatus
    content: Any
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: ConversationItem) -> ConversationItemRecord:
        return cls(
            id=row.id,
            session_id=row.session_id,
            position=row.position,
            previous_item_id=row.previous_item_id,
            type=cast(ItemType, row.type),
            role=row.role,
            status=cast(ItemStatus, row.status),
            content=copy.deepcopy(row.content),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
