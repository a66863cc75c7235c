"""What every repository shares: the session factory, choice checks, error translation, the database clock
and the short write lock of the count-then-write transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from ..errors import (
    DuplicateRecord,
    PersistenceError,
    RecordNotFound,
    ReferencedRecordNotFound,
    classify_integrity_error,
)
from ..models import UTCDateTime, utcnow


def check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"invalid {field} {value!r}; expected one of {', '.join(allowed)}")


def translate(exc: IntegrityError, entity: str, key: str) -> PersistenceError | IntegrityError:
    kind = classify_integrity_error(exc)
    if kind == "unique":
        return DuplicateRecord(entity, key)
    if kind == "foreign_key":
        return ReferencedRecordNotFound(entity, key)
    return exc


class Repository:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        bind = sessionmaker.kw.get("bind")
        self._dialect: str = bind.dialect.name if bind is not None else "sqlite"

    async def _add(self, obj: Any, entity: str, key: str) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                session.add(obj)
        except IntegrityError as exc:
            raise translate(exc, entity, key) from exc

    def _now(self) -> ColumnElement[datetime]:
        """The time to compare liveness against. Postgres: the database's clock, so gateways on machines
        whose clocks disagree still agree on which heartbeat has expired. SQLite is local to one machine:
        this process's clock."""
        if self._dialect == "postgresql":
            return func.now()
        return bindparam(None, utcnow(), type_=UTCDateTime())

    def _now_plus(self, seconds: float) -> ColumnElement[datetime]:
        if self._dialect == "postgresql":
            return func.now() + timedelta(seconds=seconds)
        return bindparam(None, utcnow() + timedelta(seconds=seconds), type_=UTCDateTime())

    @asynccontextmanager
    async def _locked(
        self, column: InstrumentedAttribute[str], key: str, entity: str
    ) -> AsyncIterator[AsyncSession]:
        """A transaction that first takes a write lock, held until it commits (on leaving the block) or
        rolls back (on an exception).

        Postgres: ``SELECT … FOR UPDATE`` of the one row ``column == key``: transactions locking other rows
        do not wait. SQLite: ``BEGIN IMMEDIATE``, the database's single write lock, taken before the first
        read so that the count and the write that follows it see the same data (SQLite has one writer at a
        time anyway; other connections wait up to the busy timeout). Raises :class:`RecordNotFound` when
        the row does not exist.
        """
        async with self._sessionmaker() as session:
            lookup = select(column).where(column == key)
            if self._dialect == "sqlite":
                await session.execute(text("BEGIN IMMEDIATE"))
            else:
                lookup = lookup.with_for_update()
            if await session.scalar(lookup) is None:
                raise RecordNotFound(entity, key)
            yield session
            await session.commit()
