"""Database: URL handling, SQLite connection settings, ping/dispose."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import StaticPool

from media_gateway.persistence.database import Database, mask_url
from tests.fixtures.postgres import PostgresServer


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://user:hunter2@db/gw",
        "postgresql://user:hunter2@db/gw",
        "sqlite:///gw.db",
        "postgresql+psycopg://user:hunter2@db/gw",
    ],
)
def test_rejects_unsupported_scheme_without_leaking_password(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme") as info:
        Database(url)
    message = str(info.value)
    assert url.split("://")[0] in message
    assert "hunter2" not in message


def test_rejects_garbage_url() -> None:
    with pytest.raises(ValueError, match="invalid database URL"):
        Database("not a url")


def test_mask_url_hides_password() -> None:
    assert (
        mask_url("postgresql+asyncpg://gw:s3cret@host:5432/db") == "postgresql+asyncpg://gw:***@host:5432/db"
    )
    assert "s3cret" not in repr(Database("postgresql+asyncpg://gw:s3cret@127.0.0.1:1/db"))


async def test_sqlite_creates_parent_dir_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "gw.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        assert db.dialect == "sqlite"
        assert path.parent.is_dir()
        await db.ping()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 5000
        assert path.exists()
    finally:
        await db.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_sqlite_in_memory_shares_one_database(url: str) -> None:
    db = Database(url)
    try:
        assert isinstance(db.engine.pool, StaticPool)
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await db.dispose()


async def test_postgres_ping(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        assert db.dialect == "postgresql"
        await db.ping()
    finally:
        await db.dispose()


async def test_ping_raises_when_unreachable() -> None:
    dead = PostgresServer(host="127.0.0.1", port=1, user="postgres")
    db = Database(dead.url("nope"))
    try:
        with pytest.raises(ConnectionRefusedError):
            await db.ping()
    finally:
        await db.dispose()


async def test_ping_raises_for_missing_database(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.url("gw_does_not_exist"))
    try:
        with pytest.raises(Exception, match="does not exist"):
            await db.ping()
    finally:
        await db.dispose()
