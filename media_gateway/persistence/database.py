"""Async database handle: one :class:`AsyncEngine` plus its session factory.

Only two backends are supported:

* SQLite through ``sqlite+aiosqlite:///path/to/file.db`` (or ``sqlite+aiosqlite://`` for in-memory), with
  foreign keys on, WAL journaling and a busy timeout set on every new connection;
* PostgreSQL through ``postgresql+asyncpg://user:password@host:port/dbname``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import Pool, StaticPool

__all__ = ["SUPPORTED_SCHEMES", "Database", "DialectName", "create_engine_for", "mask_url"]

DialectName = Literal["sqlite", "postgresql"]

SUPPORTED_SCHEMES: dict[str, DialectName] = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql",
}

SQLITE_BUSY_TIMEOUT_MS = 5000


def mask_url(url: str | URL) -> str:
    """Render ``url`` with its password replaced by ``***`` (safe for logs and error messages)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not parseable as a SQLAlchemy URL: hide anything between "://" and "@".
        raw = str(url)
        scheme, sep, rest = raw.partition("://")
        if sep and "@" in rest:
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return raw
    return parsed.render_as_string(hide_password=True)


def _parse(url: str) -> tuple[URL, DialectName]:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"invalid database URL {mask_url(url)!r}") from exc
    dialect = SUPPORTED_SCHEMES.get(parsed.drivername)
    if dialect is None:
        supported = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r} in {mask_url(parsed)!r}; "
            f"use one of: {supported}"
        )
    return parsed, dialect


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:")


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_engine_for(
    url: str, *, echo: bool = False, poolclass: type[Pool] | None = None, pool_size: int | None = None
) -> AsyncEngine:
    """Create an :class:`AsyncEngine` for a supported URL, with the SQLite connection settings applied.

    ``poolclass`` overrides the pool (e.g. :class:`NullPool` for one-shot migration runs); ``pool_size``
    caps the default pool at that many connections (no overflow). An in-memory SQLite URL always uses
    :class:`StaticPool`, since every new connection would be a new empty database.
    """
    parsed, dialect = _parse(url)
    kwargs: dict[str, Any] = {"echo": echo}
    sized = {"pool_size": pool_size, "max_overflow": 0} if pool_size is not None and poolclass is None else {}
    if dialect == "sqlite":
        if _is_sqlite_memory(parsed):
            kwargs["poolclass"] = StaticPool
        else:
            assert parsed.database is not None
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            if poolclass is not None:
                kwargs["poolclass"] = poolclass
            kwargs.update(sized)
    else:
        if poolclass is not None:
            kwargs["poolclass"] = poolclass
        else:
            kwargs["pool_pre_ping"] = True
            kwargs.update(sized)
    engine = create_async_engine(parsed, **kwargs)
    if dialect == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


class Database:
    """An async engine and an ``async_sessionmaker(expire_on_commit=False)`` bound to it.

    ``pool_size`` caps the pool (no overflow), e.g. 1 for a background task's own connection.
    """

    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    dialect: DialectName
    in_memory: bool

    def __init__(self, url: str, *, echo: bool = False, pool_size: int | None = None) -> None:
        parsed, self.dialect = _parse(url)
        self.url = url
        self.in_memory = self.dialect == "sqlite" and _is_sqlite_memory(parsed)
        self.engine = create_engine_for(url, echo=echo, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises whatever the driver raises when the database is unreachable."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.masked_url!r})"
