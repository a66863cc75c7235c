"""Every repository method, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from media_gateway.persistence.database import Database
from media_gateway.persistence.errors import (
    AmbiguousRecord,
    DuplicateRecord,
    RecordNotFound,
    ReferencedRecordNotFound,
)
from media_gateway.persistence.repositories import (
    POSITION_GAP,
    ApiKeyRecord,
    NewSession,
    Repositories,
    SessionClaim,
)


@pytest.fixture
def repos(migrated_database: Database) -> Repositories:
    return Repositories.from_database(migrated_database)


def soon(minutes: int = 10) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def make_key(repos: Repositories, n: int = 0, prefix: str | None = None) -> ApiKeyRecord:
    return await repos.api_keys.create(f"key {n}", ["realtime"], f"hash-{n}", prefix or f"gw_{n:04d}")


# ---------------------------------------------------------------------------------------------- api keys


async def test_api_key_create_get_list(repos: Repositories) -> None:
    a = await make_key(repos, 1)
    b = await make_key(repos, 2)
    assert a.id.startswith("key_")
    assert a.name == "key 1"
    assert a.prefix == "gw_0001"
    assert a.scopes == ("realtime",)
    assert a.revoked_at is None
    assert a.last_used_at is None
    assert not a.revoked
    assert await repos.api_keys.get(a.id) == a
    assert await repos.api_keys.get_by_hash("hash-2") == b
    assert await repos.api_keys.get_by_hash("nope") is None
    assert await repos.api_keys.get("key_nope") is None
    assert [k.id for k in await repos.api_keys.list()] == [a.id, b.id]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "x"  # type: ignore[misc]


async def test_api_key_duplicate_hash(repos: Repositories) -> None:
    await make_key(repos, 1)
    with pytest.raises(DuplicateRecord):
        await repos.api_keys.create("other", [], "hash-1", "gw_other")
    assert len(await repos.api_keys.list()) == 1


async def test_api_key_revoke_by_id_and_prefix_idempotent(repos: Repositories) -> None:
    a = await make_key(repos, 1)
    b = await make_key(repos, 2)
    first = await repos.api_keys.revoke(a.id)
    assert first is not None
    assert first.revoked
    assert first.revoked_at is not None
    again = await repos.api_keys.revoke(a.id)
    assert again is not None
    assert again.revoked_at == first.revoked_at
    by_prefix = await repos.api_keys.revoke(b.prefix)
    assert by_prefix is not None
    assert by_prefix.id == b.id
    assert by_prefix.revoked
    assert await repos.api_keys.revoke("gw_unknown") is None
    stored = await repos.api_keys.get(a.id)
    assert stored is not None
    assert stored.revoked_at == first.revoked_at


async def test_api_key_revoke_ambiguous_prefix(repos: Repositories) -> None:
    await make_key(repos, 1, prefix="gw_same")
    await make_key(repos, 2, prefix="gw_same")
    with pytest.raises(AmbiguousRecord):
        await repos.api_keys.revoke("gw_same")
    assert not any(k.revoked for k in await repos.api_keys.list())


async def test_api_key_touch(repos: Repositories) -> None:
    a = await make_key(repos, 1)
    await repos.api_keys.touch(a.id)
    touched = await repos.api_keys.get(a.id)
    assert touched is not None
    assert touched.last_used_at is not None
    assert abs(touched.last_used_at - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(RecordNotFound):
        await repos.api_keys.touch("key_nope")


# ---------------------------------------------------------------------------------------- client secrets


async def test_client_secret_lifecycle(repos: Repositories) -> None:
    key = await make_key(repos)
    sess = await repos.sessions.create(key.id, "realtime", "m", {"voice": "alloy"})
    cs = await repos.client_secrets.create("cs-hash", key.id, sess.id, {"voice": "alloy"}, soon())
    assert cs.id.startswith("cs_")
    assert cs.use_count == 0
    assert cs.last_used_at is None
    assert cs.session_config == {"voice": "alloy"}
    assert cs.is_usable()
    assert await repos.client_secrets.get_by_hash("cs-hash") == cs
    assert await repos.client_secrets.get_by_hash("nope") is None

    used = await repos.client_secrets.record_use(cs.id)
    assert used.use_count == 1
    assert used.last_used_at is not None
    used = await repos.client_secrets.record_use(cs.id)
    assert used.use_count == 2
    with pytest.raises(RecordNotFound):
        await repos.client_secrets.record_use("cs_nope")

    revoked = await repos.client_secrets.revoke(cs.id)
    assert revoked is not None
    assert revoked.revoked
    assert not revoked.is_usable()
    again = await repos.client_secrets.revoke(cs.id)
    assert again is not None
    assert again.revoked_at == revoked.revoked_at
    assert await repos.client_secrets.revoke("cs_nope") is None


async def test_client_secret_record_use_is_atomic(repos: Repositories) -> None:
    key = await make_key(repos)
    cs = await repos.client_secrets.create("cs-hash", key.id, None, {}, soon())
    await asyncio.gather(*(repos.client_secrets.record_use(cs.id) for _ in range(10)))
    final = await repos.client_secrets.get(cs.id)
    assert final is not None
    assert final.use_count == 10


async def test_client_secret_expiry(repos: Repositories) -> None:
    key = await make_key(repos)
    cs = await repos.client_secrets.create("cs-old", key.id, None, {}, soon(-1))
    assert cs.is_expired()
    assert not cs.is_usable()
    assert not cs.is_expired(datetime.now(UTC) - timedelta(minutes=5))


async def test_client_secret_errors(repos: Repositories) -> None:
    key = await make_key(repos)
    with pytest.raises(ReferencedRecordNotFound):
        await repos.client_secrets.create("h1", "key_missing", None, {}, soon())
    with pytest.raises(RecordNotFound):  # ReferencedRecordNotFound is a RecordNotFound
        await repos.client_secrets.create("h2", key.id, "sess_missing", {}, soon())
    await repos.client_secrets.create("h3", key.id, None, {}, soon())
    with pytest.raises(DuplicateRecord):
        await repos.client_secrets.create("h3", key.id, None, {}, soon())


async def test_client_secret_count_created_since(repos: Repositories) -> None:
    a = await make_key(repos, 1)
    b = await make_key(repos, 2)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        await repos.client_secrets.create(f"a-{i}", a.id, None, {}, soon())
    await repos.client_secrets.create("b-0", b.id, None, {}, soon())
    revoked = await repos.client_secrets.create("a-revoked", a.id, None, {}, soon())
    await repos.client_secrets.revoke(revoked.id)
    assert await repos.client_secrets.count_created_since(a.id, before) == 4
    assert await repos.client_secrets.count_created_since(b.id, before) == 1
    assert await repos.client_secrets.count_created_since(a.id, datetime.now(UTC) + timedelta(seconds=1)) == 0
    assert await repos.client_secrets.count_created_since("key_none", before) == 0


# ---------------------------------------------------------------------------------------------- sessions


async def test_session_create_get_update(repos: Repositories) -> None:
    key = await make_key(repos)
    s = await repos.sessions.create(key.id, "realtime", "gpt-realtime", {"voice": "alloy"})
    assert s.id.startswith("sess_")
    assert s.status == "created"
    assert s.type == "realtime"
    assert s.hydrated_at is None
    assert s.closed_at is None
    assert s.created_at == s.updated_at
    assert await repos.sessions.get(s.id) == s
    assert await repos.sessions.get("sess_nope") is None

    u = await repos.sessions.update_config(s.id, {"voice": "verse"})
    assert u.config == {"voice": "verse"}
    assert u.model == "gpt-realtime"
    assert u.updated_at >= s.updated_at
    u = await repos.sessions.update_config(s.id, {"voice": "ash"}, model="other")
    assert u.model == "other"
    assert await repos.sessions.get(s.id) == u
    with pytest.raises(RecordNotFound):
        await repos.sessions.update_config("sess_nope", {})

    t = await repos.sessions.create(None, "transcription", "whisper", {})
    assert t.api_key_id is None
    assert t.type == "transcription"
    with pytest.raises(ValueError, match="session type"):
        await repos.sessions.create(None, "bogus", "m", {})  # type: ignore[arg-type]
    with pytest.raises(DuplicateRecord):
        await repos.sessions.create(None, "realtime", "m", {}, id=s.id)
    with pytest.raises(ReferencedRecordNotFound):
        await repos.sessions.create("key_missing", "realtime", "m", {})


async def test_session_status_timestamps(repos: Repositories) -> None:
    s = await repos.sessions.create(None, "realtime", "m", {})
    h = await repos.sessions.set_status(s.id, "hydrated")
    assert h.status == "hydrated"
    assert h.hydrated_at is not None
    assert h.closed_at is None
    a = await repos.sessions.set_status(s.id, "active")
    assert a.status == "active"
    assert a.hydrated_at == h.hydrated_at
    c = await repos.sessions.set_status(s.id, "closed")
    assert c.status == "closed"
    assert c.closed_at is not None
    assert c.hydrated_at == h.hydrated_at
    c2 = await repos.sessions.set_status(s.id, "closed")
    assert c2.closed_at == c.closed_at
    with pytest.raises(ValueError, match="session status"):
        await repos.sessions.set_status(s.id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(RecordNotFound):
        await repos.sessions.set_status("sess_nope", "active")
    direct = await repos.sessions.create(None, "realtime", "m", {}, status="active")
    assert direct.hydrated_at is not None


async def test_session_count_live(repos: Repositories) -> None:
    """Live: active on a live instance, or hydrated before the session's expiry. Nothing else counts."""
    a = await make_key(repos, 1)
    b = await make_key(repos, 2)
    await repos.instances.register("gw-live", boot_id="b1", hostname="h", pid=1, ttl_seconds=30)
    for status in ("created", "closed"):
        await repos.sessions.create(a.id, "realtime", "m", {}, status=status)  # type: ignore[arg-type]
    await repos.sessions.create(a.id, "realtime", "m", {}, status="hydrated", expires_at=soon())
    await repos.sessions.create(a.id, "realtime", "m", {}, status="hydrated", expires_at=soon(-1))
    for _ in range(2):
        claim = SessionClaim(
            api_key_id=a.id,
            instance_id="gw-live",
            max_live_sessions=10,
            new_session=NewSession("realtime", "m", {}),
        )
        assert (await repos.admission.claim(claim)).outcome == "claimed"
    # Active on an instance that never registered (or whose row is gone): not live.
    await repos.sessions.create(a.id, "realtime", "m", {}, status="active")
    await repos.sessions.create(b.id, "realtime", "m", {}, status="hydrated", expires_at=soon())
    assert await repos.sessions.count_live(a.id) == 3
    assert await repos.sessions.count_live(b.id) == 1
    assert await repos.sessions.count_live("key_none") == 0


# ------------------------------------------------------------------------------------------------- calls


async def test_calls(repos: Repositories) -> None:
    s = await repos.sessions.create(None, "realtime", "m", {})
    c = await repos.calls.create(s.id, {"sdp_offer_bytes": 1234, "ua": "test"})
    assert c.id.startswith("rtc_")
    assert c.status == "new"
    assert c.ended_at is None
    assert c.meta == {"sdp_offer_bytes": 1234, "ua": "test"}
    assert await repos.calls.get(c.id) == c
    assert await repos.calls.get("rtc_nope") is None
    c1 = await repos.calls.set_status(c.id, "connecting")
    assert c1.status == "connecting"
    assert c1.ended_at is None
    c2 = await repos.calls.set_status(c.id, "connected")
    c3 = await repos.calls.set_status(c.id, "ended")
    assert c2.status == "connected"
    assert c3.status == "ended"
    assert c3.ended_at is not None
    c4 = await repos.calls.set_status(c.id, "failed")
    assert c4.ended_at == c3.ended_at
    with pytest.raises(RecordNotFound):
        await repos.calls.set_status("rtc_nope", "ended")
    with pytest.raises(ValueError, match="call status"):
        await repos.calls.set_status(c.id, "ringing")  # type: ignore[arg-type]
    with pytest.raises(ReferencedRecordNotFound):
        await repos.calls.create("sess_missing")
    empty = await repos.calls.create(s.id)
    assert empty.meta == {}


# ------------------------------------------------------------------------------------ conversation items


async def test_items_append_list_update_delete(repos: Repositories) -> None:
    s = await repos.sessions.create(None, "realtime", "m", {})
    content = [{"type": "input_text", "text": "hello"}]
    first = await repos.items.append(s.id, "item_a", "message", "user", "completed", content)
    assert first.position == POSITION_GAP
    assert first.previous_item_id is None
    assert first.content == content
    second = await repos.items.append(s.id, None, "function_call", None, "in_progress", {"name": "f"})
    assert second.id.startswith("item_")
    assert second.position == 2 * POSITION_GAP
    assert second.previous_item_id == "item_a"
    third = await repos.items.append(
        s.id, "item_c", "function_call_output", None, "completed", {"out": 1}, previous_item_id="item_a"
    )
    assert third.position == 3 * POSITION_GAP
    assert third.previous_item_id == "item_a"
    assert [i.id for i in await repos.items.list_for_session(s.id)] == ["item_a", second.id, "item_c"]
    assert await repos.items.list_for_session("sess_other") == []
    assert await repos.items.get("item_a") == first
    assert await repos.items.get("item_nope") is None

    updated = await repos.items.update(
        second.id, status="completed", content={"name": "f", "arguments": "{}"}
    )
    assert updated.status == "completed"
    assert updated.content == {"name": "f", "arguments": "{}"}
    assert updated.updated_at >= second.updated_at
    assert updated.position == 2 * POSITION_GAP
    only_status = await repos.items.update(second.id, status="incomplete")
    assert only_status.content == {"name": "f", "arguments": "{}"}
    with pytest.raises(RecordNotFound):
        await repos.items.update("item_nope", status="completed")
    with pytest.raises(ValueError, match="item status"):
        await repos.items.update(second.id, status="done")  # type: ignore[arg-type]

    deleted = await repos.items.delete(second.id)
    assert deleted.id == second.id
    remaining = await repos.items.list_for_session(s.id)
    assert [i.position for i in remaining] == [POSITION_GAP, 3 * POSITION_GAP]
    assert remaining[1].previous_item_id == "item_a"  # relinked past the deleted item
    with pytest.raises(RecordNotFound):
        await repos.items.delete(second.id)
    after = await repos.items.append(s.id, None, "message", "assistant", "completed", [])
    assert after.position == 4 * POSITION_GAP
    assert after.previous_item_id == "item_c"


async def test_items_errors(repos: Repositories) -> None:
    s = await repos.sessions.create(None, "realtime", "m", {})
    await repos.items.append(s.id, "item_x", "message", "user", "completed", [])
    with pytest.raises(DuplicateRecord):
        await repos.items.append(s.id, "item_x", "message", "user", "completed", [])
    with pytest.raises(RecordNotFound):
        await repos.items.append("sess_missing", "item_y", "message", "user", "completed", [])
    with pytest.raises(ValueError, match="item type"):
        await repos.items.append(s.id, None, "audio", "user", "completed", [])  # type: ignore[arg-type]
    assert len(await repos.items.list_for_session(s.id)) == 1


async def test_items_positions_are_per_session(repos: Repositories) -> None:
    a = await repos.sessions.create(None, "realtime", "m", {})
    b = await repos.sessions.create(None, "realtime", "m", {})
    for _ in range(2):
        await repos.items.append(a.id, None, "message", "user", "completed", [])
    item_b = await repos.items.append(b.id, None, "message", "user", "completed", [])
    assert item_b.position == POSITION_GAP
    assert item_b.previous_item_id is None


async def test_items_concurrent_appends(repos: Repositories) -> None:
    s = await repos.sessions.create(None, "realtime", "m", {})
    other = await repos.sessions.create(None, "realtime", "m", {})
    results = await asyncio.gather(
        *(repos.items.append(s.id, f"item_{i}", "message", "user", "completed", [i]) for i in range(10)),
        *(repos.items.append(other.id, None, "message", "user", "completed", []) for _ in range(5)),
    )
    mine = [r for r in results if r.session_id == s.id]
    gapped = [POSITION_GAP * n for n in range(1, 11)]
    assert sorted(r.position for r in mine) == gapped
    listed = await repos.items.list_for_session(s.id)
    assert [i.position for i in listed] == gapped
    assert {i.id for i in listed} == {f"item_{i}" for i in range(10)}
    # previous_item_id forms a chain in position order.
    assert [i.previous_item_id for i in listed] == [None, *(i.id for i in listed[:-1])]
    assert [i.position for i in await repos.items.list_for_session(other.id)] == [
        POSITION_GAP * n for n in range(1, 6)
    ]


async def test_session_type_hints_roundtrip(repos: Repositories) -> None:
    """Records are plain frozen dataclasses detached from any SQLAlchemy session."""
    s = await repos.sessions.create(None, "realtime", "m", {"a": [1, 2]})
    s.config["a"].append(3)  # mutating a record's JSON does not touch the database
    fresh = await repos.sessions.get(s.id)
    assert fresh is not None
    assert fresh.config == {"a": [1, 2]}
