"""Alembic environment for media_gateway (async engines, SQLite and PostgreSQL).

The database is taken, in order, from:

1. ``config.attributes["connection"]``: a sync :class:`~sqlalchemy.engine.Connection` handed in by
   :func:`media_gateway.persistence.migrate.upgrade_to_head` via ``AsyncConnection.run_sync`` (works inside a
   running event loop);
2. ``-x url=...`` on the alembic command line;
3. the ``sqlalchemy.url`` main option (set by :func:`media_gateway.persistence.migrate.alembic_config`);
4. the ``MEDIA_GATEWAY_DATABASE_URL`` environment variable.

Without a connection the migrations run on a ``NullPool`` async engine under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from media_gateway.persistence.database import create_engine_for, mask_url
from media_gateway.persistence.models import Base, UTCDateTime

URL_ENV_VAR = "MEDIA_GATEWAY_DATABASE_URL"

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | bool:
    """Render the model-only ``UTCDateTime`` decorator as its plain SQL type in generated revisions."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure_kwargs(dialect_name: str) -> dict[str, object]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get(URL_ENV_VAR)
    )
    if not url:
        raise RuntimeError(f"no database URL: pass -x url=..., or set {URL_ENV_VAR}")
    return url


def _run_with_connection(connection: Connection) -> None:
    context.configure(connection=connection, **_configure_kwargs(connection.dialect.name))  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine_for(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    url = _url()
    dialect_name = "sqlite" if url.startswith("sqlite") else "postgresql"
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_kwargs(dialect_name),  # type: ignore[arg-type]
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with_connection(connection)
        return
    url = _url()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url))
        return
    raise RuntimeError(
        f"alembic was invoked inside a running event loop for {mask_url(url)}; use "
        "media_gateway.persistence.migrate.upgrade_to_head(), or run command.upgrade in a thread"
    )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
