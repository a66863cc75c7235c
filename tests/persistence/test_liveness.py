"""Live sessions, instance heartbeats and the locked admission transactions, on SQLite and PostgreSQL.

Two `Database` handles on one database stand for two gateway processes: each has its own engine and
connection pool, so nothing but the database is shared between them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from media_gateway.persistence.database import Database
from media_gateway.persistence.errors import RecordNotFound
from media_gateway.persistence.models import GatewayInstance
from media_gateway.persistence.repositories import (
    ApiKeyRecord,
    NewSession,
    Repositories,
    SecretMint,
    SessionClaim,
)

TTL = 15.0


@pytest.fixture
def repos(migrated_database: Database) -> Repositories:
    return Repositories.from_database(migrated_database)


@pytest.fixture
async def other_process(migrated_database: Database) -> AsyncIterator[Repositories]:
    """Repositories on a second engine and pool: another gateway process on the same database."""
    db = Database(migrated_database.url)
    try:
        yield Repositories.from_database(db)
    finally:
        await db.dispose()


async def make_key(repos: Repositories, n: int = 0) -> ApiKeyRecord:
    return await repos.api_keys.create(f"key {n}", ["realtime"], f"hash-{n}", f"sk_{n:04d}")


async def start_instance(repos: Repositories, instance_id: str, boot_id: str = "boot-1") -> None:
    await repos.instances.register(instance_id, boot_id=boot_id, hostname="host", pid=1, ttl_seconds=TTL)


def new_claim(key: ApiKeyRecord, instance_id: str, limit: int = 10) -> SessionClaim:
    return SessionClaim(
        api_key_id=key.id,
        instance_id=instance_id,
        max_live_sessions=limit,
        new_session=NewSession("realtime", "gpt-realtime", {"type": "realtime"}),
    )


async def expire_instance(db: Database, instance_id: str) -> None:
    """What the passage of one TTL without heartbeats does to an instance's row."""
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(GatewayInstance)
            .where(GatewayInstance.id == instance_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_a_dead_instance_stops_holding_slots_and_a_restart_releases_at_once(
    repos: Repositories, migrated_database: Database
) -> None:
    key = await make_key(repos)
    await start_instance(repos, "gw-a")
    await start_instance(repos, "gw-b")
    for instance_id in ("gw-a", "gw-a", "gw-b"):
        assert (await repos.admission.claim(new_claim(key, instance_id))).outcome == "claimed"
    assert await repos.sessions.count_live(key.id) == 3

    await expire_instance(migrated_database, "gw-a")  # gw-a died and never heartbeats again
    assert await repos.sessions.count_live(key.id) == 1

    # gw-b restarts under its id (a new boot): the session its previous run left is closed before it serves.
    started = await repos.instances.register(
        "gw-b", boot_id="boot-2", hostname="host", pid=2, ttl_seconds=TTL
    )
    assert started.released_sessions == 1
    assert started.replaced_live_boot  # the old boot's heartbeat had not expired yet
    assert await repos.sessions.count_live(key.id) == 0


async def test_heartbeat_renews_and_notices_a_taken_or_missing_row(
    repos: Repositories, migrated_database: Database
) -> None:
    key = await make_key(repos)
    await start_instance(repos, "gw-a")
    assert (await repos.admission.claim(new_claim(key, "gw-a"))).outcome == "claimed"
    await expire_instance(migrated_database, "gw-a")
    assert await repos.sessions.count_live(key.id) == 0
    beat = {"boot_id": "boot-1", "hostname": "host", "pid": 1, "ttl_seconds": TTL}
    assert await repos.instances.heartbeat("gw-a", **beat) == "renewed"  # a stalled process comes back
    assert await repos.sessions.count_live(key.id) == 1
    assert await repos.instances.heartbeat("gw-a", **{**beat, "boot_id": "boot-x"}) == "taken"
    assert await repos.instances.reap(0) == 0  # not expired: nothing to reap
    assert await repos.instances.heartbeat("gw-gone", **beat) == "missing"
    assert await repos.instances.heartbeat("gw-gone", **beat) == "renewed"


async def test_retire_and_reap(repos: Repositories, migrated_database: Database) -> None:
    key = await make_key(repos)
    for instance_id in ("gw-a", "gw-b"):
        await start_instance(repos, instance_id)
        assert (await repos.admission.claim(new_claim(key, instance_id))).outcome == "claimed"
    assert await repos.instances.retire("gw-a", boot_id="not-mine") == 0
    assert await repos.instances.retire("gw-a", boot_id="boot-1") == 1
    assert await repos.sessions.count_live(key.id) == 1
    await expire_instance(migrated_database, "gw-b")
    assert await repos.instances.reap(3600) == 0  # expired, but not for an hour yet
    assert await repos.instances.reap(0) == 1
    async with migrated_database.sessionmaker() as session:
        assert await session.get(GatewayInstance, "gw-b") is None


async def test_claim_enforces_the_limit_and_one_primary_connection(
    repos: Repositories, other_process: Repositories
) -> None:
    key = await make_key(repos)
    await start_instance(repos, "gw-a")
    await start_instance(repos, "gw-b")
    first = await repos.admission.claim(new_claim(key, "gw-a", limit=2))
    assert first.outcome == "claimed"
    assert first.session_id is not None
    assert (await repos.admission.claim(new_claim(key, "gw-a", limit=2))).outcome == "claimed"
    full = await repos.admission.claim(new_claim(key, "gw-b", limit=2))
    assert (full.outcome, full.live_sessions) == ("limit_reached", 2)

    # The same session from another process: refused while gw-a holds it, then free once released.
    reopen = SessionClaim(
        api_key_id=key.id, instance_id="gw-b", max_live_sessions=2, session_id=first.session_id
    )
    assert (await other_process.admission.usage(key.id, first.session_id)).session_live
    assert (await other_process.admission.claim(reopen)).outcome == "session_in_use"
    assert not await other_process.admission.release(first.session_id, "gw-b")  # not gw-b's to release
    assert await repos.admission.release(first.session_id, "gw-a")
    assert not await repos.admission.release(first.session_id, "gw-a")  # idempotent
    usage = await other_process.admission.usage(key.id, first.session_id)
    assert (usage.live_sessions, usage.session_live) == (1, False)
    assert (await other_process.admission.claim(reopen)).outcome == "claimed"
    record = await repos.sessions.get(first.session_id)
    assert record is not None
    assert (record.status, record.instance_id, record.closed_at) == ("active", "gw-b", None)

    with pytest.raises(RecordNotFound):
        await repos.admission.claim(SessionClaim(key.id, "gw-a", 10, session_id="sess_missing"))
    with pytest.raises(RecordNotFound):
        await repos.admission.claim(
            SessionClaim("key_missing", "gw-a", 10, new_session=NewSession("realtime", "m", {}))
        )


async def test_racing_claims_from_two_processes_admit_exactly_the_limit(
    repos: Repositories, other_process: Repositories
) -> None:
    key = await make_key(repos)
    await start_instance(repos, "gw-a")
    await start_instance(other_process, "gw-b")
    results = await asyncio.gather(
        *(
            (repos if n % 2 else other_process).admission.claim(new_claim(key, "gw-a" if n % 2 else "gw-b"))
            for n in range(40)
        )
    )
    outcomes = Counter(result.outcome for result in results)
    assert outcomes == {"claimed": 10, "limit_reached": 30}
    assert await repos.sessions.count_live(key.id) == 10


async def test_racing_mints_respect_both_limits(repos: Repositories, other_process: Repositories) -> None:
    key = await make_key(repos)
    now = datetime.now(UTC)

    def mint(n: int) -> SecretMint:
        return SecretMint(
            api_key_id=key.id,
            session=NewSession("realtime", "m", {}),
            secret_hash=f"secret-{n}",
            expires_at=now + timedelta(minutes=1),
            window_start=now - timedelta(minutes=1),
            max_mints=5,
            max_live_sessions=10,
        )

    results = await asyncio.gather(
        *((repos if n % 2 else other_process).admission.mint(mint(n)) for n in range(12))
    )
    assert Counter(result.exceeded for result in results) == {(): 5, ("mints_per_minute",): 7}
    minted = [result for result in results if not result.exceeded]
    assert all(r.session is not None and r.secret is not None for r in minted)
    assert all(r.secret.session_id == r.session.id for r in minted if r.secret and r.session)
    assert all(r.session.expires_at == r.secret.expires_at for r in minted if r.secret and r.session)

    # A hydrated session counts until its secret expires; at the session limit, minting is refused too.
    for result in minted:
        assert result.session is not None
        await repos.sessions.set_status(result.session.id, "hydrated")
    full = await repos.admission.mint(dataclasses.replace(mint(99), max_mints=100, max_live_sessions=5))
    assert full.exceeded == ("concurrent_sessions",)


async def test_revoked_sessions_of_this_instance(repos: Repositories) -> None:
    revoked_key, other_key = await make_key(repos, 1), await make_key(repos, 2)
    await start_instance(repos, "gw-a")
    await start_instance(repos, "gw-b")
    by_key = await repos.admission.claim(new_claim(revoked_key, "gw-a"))
    elsewhere = await repos.admission.claim(new_claim(revoked_key, "gw-b"))
    minted = await repos.admission.mint(
        SecretMint(
            api_key_id=other_key.id,
            session=NewSession("realtime", "m", {}),
            secret_hash="secret-1",
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
            window_start=datetime.now(UTC) - timedelta(minutes=1),
            max_mints=10,
            max_live_sessions=10,
        )
    )
    assert minted.session is not None
    assert minted.secret is not None
    by_secret = await repos.admission.claim(
        SessionClaim(
            other_key.id, "gw-a", 10, session_id=minted.session.id, client_secret_id=minted.secret.id
        )
    )
    untouched = await repos.admission.claim(new_claim(other_key, "gw-a"))
    assert all(r.outcome == "claimed" for r in (by_key, elsewhere, by_secret, untouched))
    assert await repos.instances.revoked_sessions("gw-a") == []

    await repos.api_keys.revoke(revoked_key.id)
    await repos.client_secrets.revoke(minted.secret.id)
    found = {(r.session_id, r.credential) for r in await repos.instances.revoked_sessions("gw-a")}
    assert found == {(by_key.session_id, "api_key"), (by_secret.session_id, "client_secret")}
    secret = await repos.client_secrets.get(minted.secret.id)
    assert secret is not None
    assert secret.use_count == 1  # the claim counted the connection's use of the secret
