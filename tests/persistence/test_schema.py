"""Schema behaviour on both backends: FKs, JSON, timezone-aware datetimes, durability across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from media_gateway.persistence.database import Database
from media_gateway.persistence.migrate import upgrade_to_head
from media_gateway.persistence.models import ApiKey, ConversationItem, RealtimeSession, new_id
from media_gateway.persistence.repositories import POSITION_GAP, Repositories


def test_new_id_format() -> None:
    ids = {new_id("sess") for _ in range(1000)}
    assert len(ids) == 1000
    sample = next(iter(ids))
    prefix, _, rand = sample.partition("_")
    assert prefix == "sess"
    assert len(rand) == 32
    int(rand, 16)  # hex, 128 bits
    assert new_id("key_").startswith("key_")
    assert "__" not in new_id("key_")


async def test_foreign_keys_enforced(migrated_database: Database) -> None:
    async with migrated_database.sessionmaker() as session:
        session.add(
            ConversationItem(
                id=new_id("item"),
                session_id="sess_missing",
                position=0,
                type="message",
                role="user",
                status="completed",
                content=[],
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_cascade_delete(migrated_database: Database) -> None:
    repos = Repositories.from_database(migrated_database)
    key = await repos.api_keys.create("k", ["realtime"], "hash-cascade", "gw_abc")
    sess = await repos.sessions.create(key.id, "realtime", "m", {})
    secret = await repos.client_secrets.create(
        "cs-hash", key.id, sess.id, {"model": "m"}, datetime.now(UTC) + timedelta(minutes=1)
    )
    item = await repos.items.append(sess.id, None, "message", "user", "completed", [])
    call = await repos.calls.create(sess.id, {})
    async with migrated_database.sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM realtime_sessions WHERE id = :id"), {"id": sess.id})
    assert await repos.items.get(item.id) is None
    assert await repos.calls.get(call.id) is None
    after = await repos.client_secrets.get(secret.id)
    assert after is not None
    assert after.session_id is None
    async with migrated_database.sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM api_keys WHERE id = :id"), {"id": key.id})
    assert await repos.client_secrets.get(secret.id) is None  # CASCADE


async def test_check_constraint_rejects_unknown_status(migrated_database: Database) -> None:
    async with migrated_database.sessionmaker() as session:
        session.add(RealtimeSession(id=new_id("sess"), type="realtime", model="m", config={}, status="bogus"))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_json_round_trip_and_query(migrated_database: Database) -> None:
    repos = Repositories.from_database(migrated_database)
    config = {
        "voice": "alloy",
        "modalities": ["audio", "text"],
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
        "tools": [],
        "instructions": 'héllo ☃ "quoted"',
        "nullable": None,
        "flag": True,
    }
    a = await repos.sessions.create(None, "realtime", "m", config)
    await repos.sessions.create(None, "realtime", "m", {**config, "voice": "verse"})
    got = await repos.sessions.get(a.id)
    assert got is not None
    assert got.config == config
    async with migrated_database.sessionmaker() as session:
        ids = (
            await session.scalars(
                select(RealtimeSession.id).where(RealtimeSession.config["voice"].as_string() == "alloy")
            )
        ).all()
        assert ids == [a.id]
        vad = (
            await session.scalars(
                select(RealtimeSession.id).where(
                    RealtimeSession.config["turn_detection"]["type"].as_string() == "server_vad"
                )
            )
        ).all()
        assert len(vad) == 2
    key = await repos.api_keys.create("k", ["realtime", "admin"], "h-json", "gw_json")
    assert key.scopes == ("realtime", "admin")
    reloaded = await repos.api_keys.get(key.id)
    assert reloaded is not None
    assert reloaded.scopes == ("realtime", "admin")


async def test_datetimes_are_utc_aware(migrated_database: Database) -> None:
    repos = Repositories.from_database(migrated_database)
    plus_two = timezone(timedelta(hours=2))
    expires_local = datetime(2030, 1, 1, 14, 0, tzinfo=plus_two)
    key = await repos.api_keys.create("k", [], "h-tz", "gw_tz")
    secret = await repos.client_secrets.create("h-tz-cs", key.id, None, {}, expires_local)
    loaded = await repos.client_secrets.get(secret.id)
    assert loaded is not None
    key_loaded = await repos.api_keys.get(key.id)
    assert key_loaded is not None
    for value in (loaded.created_at, loaded.expires_at, key_loaded.created_at):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert loaded.expires_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    # Comparisons in SQL work across offsets.
    async with migrated_database.sessionmaker() as session:
        row = await session.scalar(
            select(ApiKey.id).where(ApiKey.created_at > datetime.now(plus_two) - timedelta(minutes=1))
        )
        assert row == key.id


async def test_naive_datetime_rejected(migrated_database: Database) -> None:
    repos = Repositories.from_database(migrated_database)
    key = await repos.api_keys.create("k", [], "h-naive", "gw_naive")
    with pytest.raises(StatementError, match="naive datetime"):
        await repos.client_secrets.create("h-naive-cs", key.id, None, {}, datetime(2030, 1, 1))


async def test_items_survive_restart(database_url: str) -> None:
    db = Database(database_url)
    await upgrade_to_head(db)
    repos = Repositories.from_database(db)
    sess = await repos.sessions.create(None, "realtime", "m", {"voice": "alloy"})
    for i in range(3):
        await repos.items.append(sess.id, f"item_{i}", "message", "user", "completed", [{"text": str(i)}])
    await db.dispose()

    reopened = Database(database_url)
    try:
        repos = Repositories.from_database(reopened)
        items = await repos.items.list_for_session(sess.id)
        assert [i.id for i in items] == ["item_0", "item_1", "item_2"]
        assert [i.content for i in items] == [[{"text": "0"}], [{"text": "1"}], [{"text": "2"}]]
        got = await repos.sessions.get(sess.id)
        assert got is not None
        assert got.config == {"voice": "alloy"}
        nxt = await repos.items.append(sess.id, None, "message", "assistant", "in_progress", [])
        assert nxt.position == 4 * POSITION_GAP
        assert nxt.previous_item_id == "item_2"
    finally:
        await reopened.dispose()
