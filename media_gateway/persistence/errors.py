"""Domain exceptions raised by the repositories (never raw SQLAlchemy errors for expected cases)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import IntegrityError

__all__ = [
    "AmbiguousRecord",
    "DuplicateRecord",
    "PersistenceError",
    "RecordNotFound",
    "ReferencedRecordNotFound",
    "classify_integrity_error",
]


class PersistenceError(Exception):
    """Base class of every persistence-layer error."""


class RecordNotFound(PersistenceError, LookupError):
    """The record addressed by id does not exist."""

    def __init__(self, entity: str, key: str) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key


class ReferencedRecordNotFound(RecordNotFound):
    """A foreign key points at a record that does not exist (e.g. a client secret for an unknown API key)."""

    def __init__(self, entity: str, key: str, detail: str = "") -> None:
        super().__init__(entity, key)
        self.args = (f"{entity} {key!r} references a record that does not exist{detail}",)


class DuplicateRecord(PersistenceError):
    """A unique constraint (primary key, hash, position) would be violated."""

    def __init__(self, entity: str, key: str, detail: str = "") -> None:
        super().__init__(f"{entity} {key!r} already exists{detail}")
        self.entity = entity
        self.key = key


class AmbiguousRecord(PersistenceError):
    """A lookup by a non-unique attribute (e.g. a display prefix) matched more than one record."""

    def __init__(self, entity: str, key: str, count: int) -> None:
        super().__init__(f"{key!r} matches {count} {entity} records; use the full id")
        self.entity = entity
        self.key = key
        self.count = count


IntegrityKind = Literal["unique", "foreign_key", "not_null", "check", "other"]

_PG_SQLSTATES: dict[str, IntegrityKind] = {
    "23505": "unique",
    "23503": "foreign_key",
    "23502": "not_null",
    "23514": "check",
}


def classify_integrity_error(exc: IntegrityError) -> IntegrityKind:
    """Tell which kind of constraint an ``IntegrityError`` from asyncpg or aiosqlite violated."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate in _PG_SQLSTATES:
        return _PG_SQLSTATES[sqlstate]
    message = str(orig).upper()
    if "UNIQUE CONSTRAINT" in message or "PRIMARY KEY" in message or "DUPLICATE KEY" in message:
        return "unique"
    if "FOREIGN KEY" in message:
        return "foreign_key"
    if "NOT NULL" in message:
        return "not_null"
    if "CHECK CONSTRAINT" in message:
        return "check"
    return "other"
