"""The Postgres test plugin itself: it fails loudly (never skips) and reports the server log."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import postgres as pg

FAKE_INITDB = """#!/bin/sh
exit 0
"""

# Writes a FATAL line to the file given with -l (as the real pg_ctl's server would), then fails.
FAKE_PG_CTL = """#!/bin/sh
log=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-l" ]; then log="$2"; fi
  shift
done
[ -n "$log" ] && echo "FATAL:  could not create lock file: simulated failure" >> "$log"
echo "pg_ctl: could not start server" >&2
exit 1
"""


@pytest.fixture
def fake_bindir() -> Iterator[Path]:
    # Not tmp_path: when running as root the scripts run as `postgres`, which cannot enter pytest's 0700 dirs.
    directory = Path(tempfile.mkdtemp(prefix="gw-fake-pg-"))
    directory.chmod(0o755)
    for name, body in (("initdb", FAKE_INITDB), ("pg_ctl", FAKE_PG_CTL)):
        script = directory / name
        script.write_text(body)
        script.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_find_pg_bindir_finds_server_binaries() -> None:
    bindir = pg.find_pg_bindir()
    assert (bindir / "initdb").is_file()
    assert (bindir / "pg_ctl").is_file()


def test_find_pg_bindir_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(pg.PostgresStartError, match="Install the `postgresql` package"):
        pg.find_pg_bindir(search_root=tmp_path)


def test_start_failure_reports_server_log(fake_bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "find_pg_bindir", lambda: fake_bindir)
    before = set(Path(tempfile.gettempdir()).glob("gw-pg-*"))
    with pytest.raises(pg.PostgresStartError) as info:
        pg.start_postgres_cluster()
    message = str(info.value)
    assert "pg_ctl start failed" in message
    assert "simulated failure" in message  # the server log tail
    assert "could not start server" in message  # pg_ctl's stderr
    assert set(Path(tempfile.gettempdir()).glob("gw-pg-*")) == before  # temp dir removed


def test_fixture_fails_instead_of_skipping(fake_bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.TEST_PG_URL_ENV, raising=False)
    monkeypatch.setattr(pg, "find_pg_bindir", lambda: fake_bindir)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)could not start PostgreSQL.*simulated failure"):
        next(pg.serve_postgres())


def test_test_pg_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg.TEST_PG_URL_ENV, "postgresql://admin:p%40ss@db.example:6543/postgres")
    monkeypatch.setattr(pg, "start_postgres_cluster", lambda: pytest.fail("must not start a cluster"))
    server = next(pg.serve_postgres())
    assert server == pg.PostgresServer(
        host="db.example", port=6543, user="admin", password="p@ss", admin_database="postgres"
    )
    assert server.url("gw_x") == "postgresql+asyncpg://admin:p%40ss@db.example:6543/gw_x"


async def test_fresh_database_is_created_and_dropped(postgres_server: pg.PostgresServer) -> None:
    async with pg.fresh_postgres_url(postgres_server) as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("gw_")
        conn = await postgres_server.connect_admin()
        try:
            assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) == 1
        finally:
            await conn.close()
    conn = await postgres_server.connect_admin()
    try:
        assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None
    finally:
        await conn.close()
