"""Async repositories over the models. Every method runs in its own short transaction and returns records."""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from .errors import (
    AmbiguousRecord,
    DuplicateRecord,
    PersistenceError,
    RecordNotFound,
    ReferencedRecordNotFound,
    classify_integrity_error,
)
from .models import (
    CALL_STATUSES,
    ITEM_STATUSES,
    ITEM_TYPES,
    SESSION_STATUSES,
    SESSION_TYPES,
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
    new_id,
    utcnow,
)
from .records import ApiKeyRecord, CallRecord, ClientSecretRecord, ConversationItemRecord, SessionRecord

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "ApiKeyRecord",
    "ApiKeyRepository",
    "CallRecord",
    "CallRepository",
    "ClientSecretRecord",
    "ClientSecretRepository",
    "ConversationItemRecord",
    "ConversationItemRepository",
    "Repositories",
    "SessionRecord",
    "SessionRepository",
]

ACTIVE_SESSION_STATUSES: Final[tuple[SessionStatus, ...]] = ("hydrated", "active")
TERMINAL_CALL_STATUSES: Final[tuple[CallStatus, ...]] = ("ended", "failed")


def _check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"invalid {field} {value!r}; expected one of {', '.join(allowed)}")


def _translate(exc: IntegrityError, entity: str, key: str) -> PersistenceError | IntegrityError:
    kind = classify_integrity_error(exc)
    if kind == "unique":
        return DuplicateRecord(entity, key)
    if kind == "foreign_key":
        return ReferencedRecordNotFound(entity, key)
    return exc


class _Repository:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def _add(self, obj: Any, entity: str, key: str) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                session.add(obj)
        except IntegrityError as exc:
            raise _translate(exc, entity, key) from exc


class ApiKeyRepository(_Repository):
    async def create(
        self, name: str, scopes: Sequence[str], key_hash: str, prefix: str, *, id: str | None = None
    ) -> ApiKeyRecord:
        row = ApiKey(
            id=id or new_id("key"), name=name, prefix=prefix, key_hash=key_hash, scopes=builtins.list(scopes)
        )
        await self._add(row, "api key", row.id)
        return ApiKeyRecord.from_row(row)

    async def get(self, id: str) -> ApiKeyRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ApiKey, id)
            return None if row is None else ApiKeyRecord.from_row(row)

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return None if row is None else ApiKeyRecord.from_row(row)

    async def list(self) -> builtins.list[ApiKeyRecord]:
        async with self._sessionmaker() as session:
            rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
            return [ApiKeyRecord.from_row(r) for r in rows]

    async def revoke(self, id_or_prefix: str) -> ApiKeyRecord | None:
        """Revoke by exact id, else by display prefix. Idempotent: ``revoked_at`` keeps its first value.

        Returns ``None`` when nothing matches; raises :class:`AmbiguousRecord` when a prefix matches several.
        """
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ApiKey, id_or_prefix, with_for_update=True)
            if row is None:
                by_prefix = select(ApiKey).where(ApiKey.prefix == id_or_prefix).with_for_update()
                rows = (await session.scalars(by_prefix)).all()
                if not rows:
                    return None
                if len(rows) > 1:
                    raise AmbiguousRecord("api key", id_or_prefix, len(rows))
                row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return ApiKeyRecord.from_row(row)

    async def touch(self, id: str, *, at: datetime | None = None) -> None:
        """Set ``last_used_at`` (now by default). Raises :class:`RecordNotFound` for an unknown id."""
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ApiKey).where(ApiKey.id == id).values(last_used_at=at or utcnow()).returning(ApiKey.id)
            )
            if result.scalar_one_or_none() is None:
                raise RecordNotFound("api key", id)


class ClientSecretRepository(_Repository):
    async def create(
        self,
        secret_hash: str,
        api_key_id: str,
        session_id: str | None,
        session_config: dict[str, Any],
        expires_at: datetime,
        *,
        id: str | None = None,
    ) -> ClientSecretRecord:
        row = ClientSecret(
            id=id or new_id("cs"),
            secret_hash=secret_hash,
            api_key_id=api_key_id,
            session_id=session_id,
            session_config=session_config,
            expires_at=expires_at,
            use_count=0,
        )
        await self._add(row, "client secret", row.id)
        return ClientSecretRecord.from_row(row)

    async def get(self, id: str) -> ClientSecretRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ClientSecret, id)
            return None if row is None else ClientSecretRecord.from_row(row)

    async def get_by_hash(self, secret_hash: str) -> ClientSecretRecord | None:
        """Look up by hash regardless of expiry/revocation; check :meth:`ClientSecretRecord.is_usable`."""
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ClientSecret).where(ClientSecret.secret_hash == secret_hash))
            return None if row is None else ClientSecretRecord.from_row(row)

    async def record_use(self, id: str) -> ClientSecretRecord:
        """Atomically increment ``use_count`` and set ``last_used_at``; returns the updated record."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(
                update(ClientSecret)
                .where(ClientSecret.id == id)
                .values(use_count=ClientSecret.use_count + 1, last_used_at=utcnow())
                .returning(ClientSecret),
                execution_options={"populate_existing": True},
            )
            if row is None:
                raise RecordNotFound("client secret", id)
            return ClientSecretRecord.from_row(row)

    async def revoke(self, id: str) -> ClientSecretRecord | None:
        """Idempotent; returns ``None`` for an unknown id."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ClientSecret, id, with_for_update=True)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return ClientSecretRecord.from_row(row)

    async def count_created_since(self, api_key_id: str, since: datetime) -> int:
        """Secrets minted by ``api_key_id`` at or after ``since`` (revoked ones included), for rate limits."""
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(ClientSecret)
                .where(ClientSecret.api_key_id == api_key_id, ClientSecret.created_at >= since)
            )
            return int(count or 0)


class SessionRepository(_Repository):
    async def create(
        self,
        api_key_id: str | None,
        type: SessionType,
        model: str,
        config: dict[str, Any],
        *,
        status: SessionStatus = "created",
        id: str | None = None,
    ) -> SessionRecord:
        _check_choice("session type", type, SESSION_TYPES)
        _check_choice("session status", status, SESSION_STATUSES)
        now = utcnow()
        row = RealtimeSession(
            id=id or new_id("sess"),
            api_key_id=api_key_id,
            type=type,
            model=model,
            config=config,
            status=status,
            created_at=now,
            updated_at=now,
            hydrated_at=now if status in ("hydrated", "active") else None,
            closed_at=now if status == "closed" else None,
        )
        await self._add(row, "session", row.id)
        return SessionRecord.from_row(row)

    async def get(self, id: str) -> SessionRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(RealtimeSession, id)
            return None if row is None else SessionRecord.from_row(row)

    async def update_config(self, id: str, config: dict[str, Any], model: str | None = None) -> SessionRecord:
        """Replace the stored config (and the model when given)."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(RealtimeSession, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("session", id)
            row.config = config
            if model is not None:
                row.model = model
            row.updated_at = utcnow()
        return SessionRecord.from_row(row)

    async def set_status(self, id: str, status: SessionStatus) -> SessionRecord:
        """Set the status. The first hydrated/active stamps ``hydrated_at``; closed stamps ``closed_at``."""
        _check_choice("session status", status, SESSION_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(RealtimeSession, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("session", id)
            now = utcnow()
            row.status = status
            row.updated_at = now
            if status in ("hydrated", "active") and row.hydrated_at is None:
                row.hydrated_at = now
            if status == "closed" and row.closed_at is None:
                row.closed_at = now
        return SessionRecord.from_row(row)

    async def count_active(self, api_key_id: str) -> int:
        """Sessions of ``api_key_id`` that are hydrated or active (for concurrency limits)."""
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(RealtimeSession)
                .where(
                    RealtimeSession.api_key_id == api_key_id,
                    RealtimeSession.status.in_(ACTIVE_SESSION_STATUSES),
                )
            )
            return int(count or 0)


class CallRepository(_Repository):
    async def create(
        self,
        session_id: str,
        meta: dict[str, Any] | None = None,
        *,
        status: CallStatus = "new",
        id: str | None = None,
    ) -> CallRecord:
        _check_choice("call status", status, CALL_STATUSES)
        row = Call(id=id or new_id("rtc"), session_id=session_id, status=status, meta=meta or {})
        if status in TERMINAL_CALL_STATUSES:
            row.ended_at = utcnow()
        await self._add(row, "call", row.id)
        return CallRecord.from_row(row)

    async def get(self, id: str) -> CallRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(Call, id)
            return None if row is None else CallRecord.from_row(row)

    async def set_status(self, id: str, status: CallStatus) -> CallRecord:
        """Set the status; the first move to ended/failed stamps ``ended_at``."""
        _check_choice("call status", status, CALL_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(Call, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("call", id)
            row.status = status
            if status in TERMINAL_CALL_STATUSES and row.ended_at is None:
                row.ended_at = utcnow()
        return CallRecord.from_row(row)


class ConversationItemRepository(_Repository):
    APPEND_ATTEMPTS: Final = 8

    async def append(
        self,
        session_id: str,
        item_id: str | None,
        type: ItemType,
        role: str | None,
        status: ItemStatus,
        content: Any,
        previous_item_id: str | None = None,
    ) -> ConversationItemRecord:
        """Append an item at the end of the session's conversation (position = last + 1, from 0).

        ``item_id=None`` generates an ``item_...`` id. ``previous_item_id`` is stored as given; when ``None``
        it is filled with the id of the session's current last item (``None`` for the first item).
        Raises :class:`RecordNotFound` for an unknown session, :class:`DuplicateRecord` for a reused id.
        """
        _check_choice("item type", type, ITEM_TYPES)
        _check_choice("item status", status, ITEM_STATUSES)
        item_id = item_id or new_id("item")
        for attempt in range(self.APPEND_ATTEMPTS):
            try:
                return await self._append_once(
                    session_id, item_id, type, role, status, content, previous_item_id
                )
            except IntegrityError as exc:
                if classify_integrity_error(exc) == "foreign_key":
                    raise RecordNotFound("session", session_id) from exc
                if await self.get(item_id) is not None:
                    raise DuplicateRecord("conversation item", item_id) from exc
                if attempt == self.APPEND_ATTEMPTS - 1:
                    raise DuplicateRecord(
                        "conversation item", item_id, f" (position conflict after {attempt + 1} attempts)"
                    ) from exc
                # Lost a race for the next position: back off briefly and recompute it.
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise AssertionError("unreachable")

    async def _append_once(
        self,
        session_id: str,
        item_id: str,
        type: ItemType,
        role: str | None,
        status: ItemStatus,
        content: Any,
        previous_item_id: str | None,
    ) -> ConversationItemRecord:
        async with self._sessionmaker() as session, session.begin():
            # Serialises appends per session on Postgres (FOR UPDATE is a no-op on SQLite, where the
            # single INSERT ... (SELECT max) statement below is atomic under SQLite's write lock).
            found = await session.scalar(
                select(RealtimeSession.id).where(RealtimeSession.id == session_id).with_for_update()
            )
            if found is None:
                raise RecordNotFound("session", session_id)
            other = aliased(ConversationItem)
            next_position = (
                select(func.coalesce(func.max(other.position) + 1, 0))
                .where(other.session_id == session_id)
                .scalar_subquery()
            )
            last_item = (
                select(other.id)
                .where(other.session_id == session_id)
                .order_by(other.position.desc())
                .limit(1)
                .scalar_subquery()
            )
            now = utcnow()
            row = await session.scalar(
                insert(ConversationItem)
                .values(
                    id=item_id,
                    session_id=session_id,
                    position=next_position,
                    previous_item_id=previous_item_id if previous_item_id is not None else last_item,
                    type=type,
                    role=role,
                    status=status,
                    content=content,
                    created_at=now,
                    updated_at=now,
                )
                .returning(ConversationItem)
            )
            assert row is not None
            return ConversationItemRecord.from_row(row)

    async def get(self, item_id: str) -> ConversationItemRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ConversationItem, item_id)
            return None if row is None else ConversationItemRecord.from_row(row)

    async def update(
        self, item_id: str, *, status: ItemStatus | None = None, content: Any = None
    ) -> ConversationItemRecord:
        """Change status and/or content (``None`` leaves a field unchanged); bumps ``updated_at``."""
        if status is not None:
            _check_choice("item status", status, ITEM_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ConversationItem, item_id, with_for_update=True)
            if row is None:
                raise RecordNotFound("conversation item", item_id)
            if status is not None:
                row.status = status
            if content is not None:
                row.content = content
            row.updated_at = utcnow()
        return ConversationItemRecord.from_row(row)

    async def list_for_session(self, session_id: str) -> builtins.list[ConversationItemRecord]:
        """Items ordered by position (empty for an unknown session)."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationItem)
                .where(ConversationItem.session_id == session_id)
                .order_by(ConversationItem.position)
            )
            return [ConversationItemRecord.from_row(r) for r in rows]

    async def delete(self, item_id: str) -> ConversationItemRecord:
        """Delete and return the item; positions of later items are left as they are (gaps are fine)."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ConversationItem, item_id, with_for_update=True)
            if row is None:
                raise RecordNotFound("conversation item", item_id)
            record = ConversationItemRecord.from_row(row)
            await session.delete(row)
        return record


@dataclass(frozen=True, slots=True)
class Repositories:
    api_keys: ApiKeyRepository
    client_secrets: ClientSecretRepository
    sessions: SessionRepository
    calls: CallRepository
    items: ConversationItemRepository

    @classmethod
    def from_sessionmaker(cls, sessionmaker: async_sessionmaker[AsyncSession]) -> Repositories:
        return cls(
            api_keys=ApiKeyRepository(sessionmaker),
            client_secrets=ClientSecretRepository(sessionmaker),
            sessions=SessionRepository(sessionmaker),
            calls=CallRepository(sessionmaker),
            items=ConversationItemRepository(sessionmaker),
        )

    @classmethod
    def from_database(cls, db: Database) -> Repositories:
        return cls.from_sessionmaker(db.sessionmaker)
