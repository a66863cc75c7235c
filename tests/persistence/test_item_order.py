"""Conversation items read back in the live conversation's order, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from media_gateway.persistence.database import Database
from media_gateway.persistence.errors import DuplicateRecord, RecordNotFound
from media_gateway.persistence.records import ConversationItemRecord
from media_gateway.persistence.repositories import POSITION_GAP, ConversationItemRepository, Repositories
from media_gateway.realtime.conversation import ROOT, Conversation


@pytest.fixture
def repos(migrated_database: Database) -> Repositories:
    return Repositories.from_database(migrated_database)


def message(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if item_id is not None:
        item["id"] = item_id
    return item


async def stored_ids(repos: Repositories, session_id: str) -> list[str]:
    items = await repos.items.list_for_session(session_id)
    assert [item.previous_item_id for item in items] == [None, *(item.id for item in items[:-1])], (
        "previous_item_id must name the item before each one"
    )
    positions = [item.position for item in items]
    assert positions == sorted(set(positions))
    return [item.id for item in items]


class PlacingItems:
    """The repository as `Conversation` will use it: an item the client placed with `previous_item_id`
    is stored with `insert` after the item the live conversation puts before it (the engine's side of
    this change is in `realtime/conversation.py`); everything else is delegated."""

    def __init__(self, items: ConversationItemRepository) -> None:
        self._items = items

    async def append(
        self, session_id: str, item_id: str | None, *args: Any, previous_item_id: str | None = None
    ) -> ConversationItemRecord:
        return await self._items.insert(session_id, item_id, *args, after_item_id=previous_item_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._items, name)


async def drive(conversation: Conversation) -> None:
    """A client's sequence of conversation.item.create events with and without previous_item_id."""
    await conversation.add(message("a", "item_a"))
    await conversation.add(message("b", "item_b"))
    await conversation.add(message("first", "item_first"), previous_item_id=ROOT)
    await conversation.add(message("after a", "item_after_a"), previous_item_id="item_a")
    await conversation.add(message("c", "item_c"))
    await conversation.add(message("very first", "item_very_first"), previous_item_id=ROOT)
    await conversation.delete("item_b", None)
    await conversation.add(message("after first", "item_after_first"), previous_item_id="item_first")


async def test_items_placed_with_previous_item_id_read_back_in_the_live_order(repos: Repositories) -> None:
    session = await repos.sessions.create(None, "realtime", "m", {})
    conversation = Conversation(session.id, PlacingItems(repos.items))  # type: ignore[arg-type]
    await drive(conversation)
    live = [item["id"] for item in conversation.items]
    assert live == [
        "item_very_first",
        "item_first",
        "item_after_first",
        "item_a",
        "item_after_a",
        "item_c",
    ]
    assert await stored_ids(repos, session.id) == live


async def test_the_conversation_stores_placed_items_in_its_live_order(repos: Repositories) -> None:
    """The engine's conversation (which once appended every item, whatever its previous_item_id) and the
    database agree on the order, and a conversation loaded back has it too."""
    session = await repos.sessions.create(None, "realtime", "m", {})
    conversation = Conversation(session.id, repos.items)
    await drive(conversation)
    live = [item["id"] for item in conversation.items]
    assert [item.id for item in await repos.items.list_for_session(session.id)] == live
    reloaded = Conversation(session.id, repos.items)
    await reloaded.load()
    assert [item["id"] for item in reloaded.items] == live


async def test_many_inserts_into_one_gap_renumber_and_keep_the_order(repos: Repositories) -> None:
    session = await repos.sessions.create(None, "realtime", "m", {})
    expected: list[str] = []
    for name in ("item_x", "item_y"):
        await repos.items.append(session.id, name, "message", "user", "completed", [])
        expected.append(name)
    # 25 inserts right after item_x, each before the previous one: the gap is exhausted after ~10.
    for n in range(25):
        record = await repos.items.insert(
            session.id, f"item_{n:02d}", "message", "user", "completed", [n], after_item_id="item_x"
        )
        expected.insert(expected.index("item_x") + 1, record.id)
        # and one at the very front every fifth time
        if n % 5 == 0:
            front = await repos.items.insert(
                session.id, f"item_front_{n:02d}", "message", "user", "completed", [], after_item_id=None
            )
            expected.insert(0, front.id)
    assert await stored_ids(repos, session.id) == expected
    # 25 midpoints in one gap of POSITION_GAP cannot fit without renumbering, which moved item_y.
    positions = {item.id: item.position for item in await repos.items.list_for_session(session.id)}
    assert positions["item_y"] > 2 * POSITION_GAP
    assert min(positions.values()) > 0


async def test_random_placements_match_an_in_memory_list(repos: Repositories) -> None:
    rng = random.Random(8)
    session = await repos.sessions.create(None, "realtime", "m", {})
    expected: list[str] = []
    for n in range(120):
        item_id = f"item_{n:03d}"
        choice = rng.random()
        if not expected or choice < 0.2:
            await repos.items.insert(
                session.id, item_id, "message", "user", "completed", [], after_item_id=None
            )
            expected.insert(0, item_id)
        elif choice < 0.4:
            await repos.items.append(session.id, item_id, "message", "user", "completed", [])
            expected.append(item_id)
        elif choice < 0.9:
            after = rng.choice(expected)
            await repos.items.insert(
                session.id, item_id, "message", "user", "completed", [], after_item_id=after
            )
            expected.insert(expected.index(after) + 1, item_id)
        else:
            gone = rng.choice(expected)
            await repos.items.delete(gone)
            expected.remove(gone)
    assert await stored_ids(repos, session.id) == expected


async def test_concurrent_inserts_of_one_session(repos: Repositories) -> None:
    session = await repos.sessions.create(None, "realtime", "m", {})
    await repos.items.append(session.id, "item_anchor", "message", "user", "completed", [])
    await asyncio.gather(
        *(
            repos.items.insert(
                session.id, f"item_{n}", "message", "user", "completed", [], after_item_id="item_anchor"
            )
            for n in range(12)
        ),
        *(
            repos.items.append(session.id, f"item_tail_{n}", "message", "user", "completed", [])
            for n in range(6)
        ),
    )
    ids = await stored_ids(repos, session.id)  # a consistent chain, distinct positions
    assert ids[0] == "item_anchor"
    assert len(ids) == 19
    assert set(ids[1:13]) == {f"item_{n}" for n in range(12)}
    assert set(ids[13:]) == {f"item_tail_{n}" for n in range(6)}


async def test_insert_errors(repos: Repositories) -> None:
    session = await repos.sessions.create(None, "realtime", "m", {})
    other = await repos.sessions.create(None, "realtime", "m", {})
    await repos.items.append(other.id, "item_elsewhere", "message", "user", "completed", [])
    await repos.items.insert(session.id, "item_1", "message", "user", "completed", [], after_item_id=None)
    with pytest.raises(RecordNotFound, match="item_elsewhere"):
        await repos.items.insert(
            session.id, "item_2", "message", "user", "completed", [], after_item_id="item_elsewhere"
        )
    with pytest.raises(RecordNotFound, match="item_nope"):
        await repos.items.insert(
            session.id, "item_2", "message", "user", "completed", [], after_item_id="item_nope"
        )
    with pytest.raises(DuplicateRecord):
        await repos.items.insert(session.id, "item_1", "message", "user", "completed", [], after_item_id=None)
    with pytest.raises(DuplicateRecord):
        await repos.items.insert(
            session.id, "item_elsewhere", "message", "user", "completed", [], after_item_id="item_1"
        )
    with pytest.raises(RecordNotFound, match="session"):
        await repos.items.insert(
            "sess_missing", "item_3", "message", "user", "completed", [], after_item_id=None
        )
    with pytest.raises(ValueError, match="item type"):
        await repos.items.insert(session.id, None, "audio", "user", "completed", [], after_item_id=None)  # type: ignore[arg-type]
    assert await stored_ids(repos, session.id) == ["item_1"]
