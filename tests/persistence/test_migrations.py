"""Alembic: upgrade/downgrade, the not-migrated guard, model/migration drift, packaging of the scripts."""

from __future__ import annotations

import argparse
import asyncio
import io
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect, text
from sqlalchemy.engine import Connection

from media_gateway.persistence.database import Database
from media_gateway.persistence.migrate import (
    MIGRATIONS_DIR,
    DatabaseNotMigrated,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    require_migrated,
    upgrade,
    upgrade_to_head,
)
from media_gateway.persistence.models import Base
from media_gateway.persistence.repositories import Repositories

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_TABLES = {
    "api_keys",
    "client_secrets",
    "realtime_sessions",
    "calls",
    "conversation_items",
    "gateway_instances",
}


async def table_names(db: Database) -> set[str]:
    def _names(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with db.engine.connect() as conn:
        return await conn.run_sync(_names)


async def drift(db: Database, metadata: MetaData) -> list[object]:
    def _diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
        )
        return list(compare_metadata(context, metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(_diff)


def test_head_revision() -> None:
    assert head_revision() == "0003"


async def test_require_migrated_then_upgrade(database: Database) -> None:
    assert await current_revision(database) is None
    with pytest.raises(
        DatabaseNotMigrated, match=r"is at revision base .* expects 0003; run `media-gateway migrate`"
    ):
        await require_migrated(database)
    await upgrade_to_head(database)
    assert await current_revision(database) == head_revision()
    await require_migrated(database)
    assert await table_names(database) >= APP_TABLES
    await upgrade_to_head(database)  # idempotent
    await require_migrated(database)


def test_not_migrated_message_masks_password() -> None:
    exc = DatabaseNotMigrated("postgresql+asyncpg://gw:s3cret@db:5432/gw", "0000", "0001")
    assert "s3cret" not in str(exc)
    assert str(exc) == (
        "database at postgresql+asyncpg://gw:***@db:5432/gw is at revision 0000, code expects 0001; "
        "run `media-gateway migrate`"
    )


async def test_downgrade_to_base_and_back(migrated_database: Database) -> None:
    repos = Repositories.from_database(migrated_database)
    await repos.api_keys.create("k", [], "h", "p")
    await downgrade(migrated_database, "base")
    assert await current_revision(migrated_database) is None
    assert not (APP_TABLES & await table_names(migrated_database))
    with pytest.raises(DatabaseNotMigrated):
        await require_migrated(migrated_database)
    await upgrade_to_head(migrated_database)
    await require_migrated(migrated_database)
    assert await repos.api_keys.list() == []
    await repos.api_keys.create("k", [], "h", "p")


async def test_0002_keeps_data_and_lets_minted_sessions_expire_with_their_secret(database: Database) -> None:
    """Upgrade a 0001 database holding a hydrated session and a session left active: the hydrated one
    gets its secret's expiry, neither counts as live afterwards (the secret has expired, and the active
    one has no live instance), and the step down to 0001 keeps the rows."""
    await upgrade(database, "0001")
    expired = datetime.now(UTC) - timedelta(seconds=5)
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, created_at) "
                "VALUES ('key_1', 'k', 'sk_1', 'h', '[]', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        for session_id, status in (("sess_h", "hydrated"), ("sess_a", "active")):
            await conn.execute(
                text(
                    "INSERT INTO realtime_sessions (id, api_key_id, type, model, config, status, created_at, "
                    "updated_at) VALUES (:id, 'key_1', 'realtime', 'm', '{}', :status, :now, :now)"
                ),
                {"id": session_id, "status": status, "now": datetime.now(UTC)},
            )
        await conn.execute(
            text(
                "INSERT INTO client_secrets (id, secret_hash, api_key_id, session_id, session_config, "
                "created_at, expires_at, use_count) VALUES ('cs_1', 'sh', 'key_1', 'sess_h', '{}', :now, "
                ":expires, 0)"
            ),
            {
                "now": datetime.now(UTC),
                "expires": expired.replace(tzinfo=None) if database.dialect == "sqlite" else expired,
            },
        )
    await upgrade_to_head(database)
    repos = Repositories.from_database(database)
    hydrated = await repos.sessions.get("sess_h")
    assert hydrated is not None
    assert hydrated.expires_at is not None
    assert abs((hydrated.expires_at - expired).total_seconds()) < 1
    assert (await repos.sessions.get("sess_a")) is not None
    assert await repos.sessions.count_live("key_1") == 0
    await downgrade(database, "0001")
    async with database.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM realtime_sessions"))
    assert count == 2
    assert "gateway_instances" not in await table_names(database)


async def test_0003_keeps_calls_and_records_sip_calls_without_a_session(migrated_database: Database) -> None:
    """A call that was never answered has no session and ends rejected/cancelled/unanswered/refused; the
    step down to 0002 keeps the answered calls and drops only those it cannot represent."""
    repos = Repositories.from_database(migrated_database)
    key = await repos.api_keys.create("k", [], "h", "p")
    session = await repos.sessions.create(key.id, "realtime", "m", {})
    answered = await repos.calls.create(session.id, {"transport": "sip"}, status="connected")
    rejected = await repos.calls.create(None, {"transport": "sip"}, status="rejected")
    assert rejected.session_id is None
    assert rejected.ended_at is not None
    ringing = await repos.calls.create(None, {"sip_headers": []}, status="new")
    moved = await repos.calls.answered(ringing.id, session.id, {"codec": "pcmu"})
    assert (moved.session_id, moved.status, moved.meta) == (
        session.id,
        "connected",
        {"sip_headers": [], "codec": "pcmu"},
    )
    await downgrade(migrated_database, "0002")
    async with migrated_database.engine.connect() as conn:
        ids = set((await conn.execute(text("SELECT id FROM calls"))).scalars())
    assert ids == {answered.id, ringing.id}
    await upgrade_to_head(migrated_database)


async def test_models_and_migrations_do_not_drift(migrated_database: Database) -> None:
    assert await drift(migrated_database, Base.metadata) == []


async def test_drift_check_detects_a_change(migrated_database: Database) -> None:
    """Guard against a vacuous drift test: an extra model column must show up in the diff."""
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["calls"].append_column(Column("extra", String(10), nullable=True))
    diff = await drift(migrated_database, changed)
    assert len(diff) == 1
    assert "add_column" in repr(diff[0])
    assert "extra" in repr(diff[0])


async def test_env_without_connection_uses_x_url(database_url: str) -> None:
    """The alembic CLI path: no connection passed, URL via ``-x url=``; runs asyncio.run in its own thread."""
    config = Config(cmd_opts=argparse.Namespace(x=[f"url={database_url}"]))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    await asyncio.to_thread(command.upgrade, config, "head")
    db = Database(database_url)
    try:
        await require_migrated(db)
    finally:
        await db.dispose()


async def test_env_without_connection_uses_env_var(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_GATEWAY_DATABASE_URL", database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    await asyncio.to_thread(command.upgrade, config, "head")
    db = Database(database_url)
    try:
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


async def test_command_inside_running_loop_gives_clear_error(sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        command.upgrade(alembic_config(sqlite_url), "head")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://u@h/db", ["CREATE TABLE api_keys", "JSONB", "TIMESTAMP WITH TIME ZONE"]),
        ("sqlite+aiosqlite:///x.db", ["CREATE TABLE api_keys", "JSON", "DATETIME"]),
    ],
)
def test_offline_sql(url: str, expected: list[str]) -> None:
    buffer = io.StringIO()
    config = alembic_config(url)
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    for fragment in expected:
        assert fragment in sql
    assert "INSERT INTO alembic_version" in sql


def test_versions_package_init_is_ignored_by_alembic() -> None:
    assert (MIGRATIONS_DIR / "versions" / "__init__.py").is_file()
    script = ScriptDirectory.from_config(alembic_config(""))
    assert [r.revision for r in script.walk_revisions()] == ["0003", "0002", "0001"]
    assert script.get_heads() == ["0003"]


def test_migration_scripts_are_packaged() -> None:
    """setuptools must ship env.py, script.py.mako and every revision.

    ``[tool.setuptools.packages.find]`` only picks up directories with an ``__init__.py`` (so the .py files
    ship as modules), and ``package-data`` must match the mako template.
    """
    setuptools_cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools_cfg["packages"]["find"]["include"] == ["media_gateway*"]
    package_root = REPO_ROOT / "media_gateway"
    for directory in (MIGRATIONS_DIR, MIGRATIONS_DIR / "versions", *MIGRATIONS_DIR.parents):
        if directory == package_root.parent:
            break
        assert (directory / "__init__.py").is_file(), (
            f"{directory} is not a package: setuptools would skip it"
        )
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py")) == [
        "0001_initial.py",
        "0002_live_sessions.py",
        "0003_sip_calls.py",
    ]
    data = {
        p for pattern in setuptools_cfg["package-data"]["media_gateway"] for p in package_root.glob(pattern)
    }
    assert MIGRATIONS_DIR / "script.py.mako" in data
