"""Programmatic Alembic: no alembic.ini, the migration scripts ship inside the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from .database import Database, mask_url

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseNotMigrated",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "require_migrated",
    "upgrade",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class DatabaseNotMigrated(RuntimeError):
    def __init__(self, url: str, current: str | None, expected: str) -> None:
        super().__init__(
            f"database at {mask_url(url)} is at revision {current or 'base (no schema)'}, code expects "
            f"{expected}; run `media-gateway migrate`"
        )
        self.current = current
        self.expected = expected


def alembic_config(url: str) -> Config:
    """An alembic ``Config`` pointing at the packaged migrations, with ``sqlalchemy.url`` set to ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolation: a literal "%" (e.g. in an escaped password) must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError(f"no alembic revisions found in {MIGRATIONS_DIR}")
    return head


def _run_command(connection: Connection, config: Config, fn: Any, revision: str) -> None:
    config.attributes["connection"] = connection
    fn(config, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade on one of ``db``'s connections (safe inside a running event loop), then commit."""
    config = alembic_config(db.url)
    async with db.engine.begin() as connection:
        await connection.run_sync(_run_command, config, command.upgrade, revision)


async def upgrade_to_head(db: Database) -> None:
    await upgrade(db, "head")


async def downgrade(db: Database, revision: str = "base") -> None:
    config = alembic_config(db.url)
    async with db.engine.begin() as connection:
        await connection.run_sync(_run_command, config, command.downgrade, revision)


async def current_revision(db: Database) -> str | None:
    """The revision stamped in ``alembic_version``; ``None`` for a database that was never migrated."""

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(_current)


async def require_migrated(db: Database) -> None:
    """Raise :class:`DatabaseNotMigrated` unless the database is exactly at the code's head revision."""
    expected = head_revision()
    current = await current_revision(db)
    if current != expected:
        raise DatabaseNotMigrated(db.url, current, expected)
