"""The conversation of one realtime session: ordered items, kept in memory and written through to the
database before the client hears about them (write, then acknowledge), so a restart loses nothing that
was acknowledged. A session that connects again (the same client secret, a later connection) loads its
items back, in the order the live session had them."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Literal

from media_gateway.persistence.errors import DuplicateRecord, RecordNotFound
from media_gateway.persistence.repositories import ConversationItemRecord, ConversationItemRepository
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import item_id as new_item_id

Item = dict[str, Any]
ItemStatus = Literal["in_progress", "completed", "incomplete"]
ROOT = "root"
MAX_ITEMS = 4096


class Conversation:
    def __init__(self, session_id: str, repository: ConversationItemRepository) -> None:
        self._session_id = session_id
        self._repository = repository
        self._items: list[Item] = []

    async def load(self) -> None:
        """Read the session's stored items (an earlier connection's), in conversation order."""
        records = await self._repository.list_for_session(self._session_id)
        self._items = [_item_from_record(record) for record in records]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[Item]:
        return list(self._items)

    def get(self, item_id: str) -> Item | None:
        for item in self._items:
            if item["id"] == item_id:
                return item
        return None

    def require(self, item_id: str, event_id: str | None, param: str = "item_id") -> Item:
        item = self.get(item_id)
        if item is None:
            raise RealtimeError(
                f"Item with item_id '{item_id[:128]}' not found.",
                code="item_not_found",
                param=param,
                event_id=event_id,
            )
        return item

    async def add(
        self, item: Item, *, previous_item_id: str | None = None, event_id: str | None = None
    ) -> tuple[Item, str | None]:
        """Insert `item` after `previous_item_id` (None: at the end; "root": first), persist it, and
        return it with the id of the item now before it."""
        if len(self._items) >= MAX_ITEMS:
            raise RealtimeError(
                f"The conversation already holds {MAX_ITEMS} items; delete some first.",
                code="conversation_full",
                event_id=event_id,
            )
        item = copy.deepcopy(item)
        item.setdefault("id", new_item_id())
        item["object"] = "realtime.item"
        if self.get(item["id"]) is not None:
            raise RealtimeError(
                f"Item with id '{item['id'][:128]}' already exists.",
                code="duplicate_item_id",
                param="item.id",
                event_id=event_id,
            )
        if previous_item_id is None:
            index = len(self._items)
        elif previous_item_id == ROOT:
            index = 0
        else:
            self.require(previous_item_id, event_id, param="previous_item_id")
            index = next(i for i, it in enumerate(self._items) if it["id"] == previous_item_id) + 1
        before = self._items[index - 1]["id"] if index else None
        fields = (
            self._session_id,
            item["id"],
            item["type"],
            item.get("role"),
            item.get("status", "completed"),
            item.get("content", item_payload(item)),
        )
        try:
            if index == len(self._items):  # at the end: the cheap path of every turn
                await self._repository.append(*fields, previous_item_id=before)
            else:  # the stored order must be the live order, read back on reconnect
                await self._repository.insert(*fields, after_item_id=before)
        except DuplicateRecord:
            raise RealtimeError(
                f"Item with id '{item['id'][:128]}' already exists.",
                code="duplicate_item_id",
                param="item.id",
                event_id=event_id,
            ) from None
        self._items.insert(index, item)
        return item, before

    async def save(self, item: Item) -> None:
        """Write an item's new status and content through to the database."""
        status = item.get("status", "completed")
        content = item.get("content", item_payload(item))
        with contextlib.suppress(RecordNotFound):  # deleted meanwhile: nothing left to update
            await self._repository.update(item["id"], status=status, content=content)

    async def delete(self, item_id: str, event_id: str | None) -> None:
        item = self.require(item_id, event_id)
        self._items.remove(item)
        with contextlib.suppress(RecordNotFound):
            await self._repository.delete(item_id)


def item_payload(item: Item) -> dict[str, Any]:
    """What to store for items without a `content` list (function calls and their outputs)."""
    return {
        key: value for key, value in item.items() if key not in ("id", "object", "type", "role", "status")
    }


def public_item(item: Item) -> Item:
    """The item as clients see it: without internal bookkeeping fields (prefixed with `_`)."""
    return {key: value for key, value in item.items() if not key.startswith("_")}


def _item_from_record(record: ConversationItemRecord) -> Item:
    item: Item = {"id": record.id, "object": "realtime.item", "type": record.type, "status": record.status}
    if record.role is not None:
        item["role"] = record.role
    if isinstance(record.content, list):
        item["content"] = record.content
    elif isinstance(record.content, dict):
        item.update(record.content)  # function calls and their outputs: stored by `item_payload`
    return item
