"""Items a client places with `previous_item_id` (or "root") are stored in the live conversation's order."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gateway
from tests.support.realtime import RealtimeClient, connect


def user_message(item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": item_id}],
    }


async def create(client: RealtimeClient, item_id: str, previous_item_id: str | None = None) -> None:
    event: dict[str, Any] = {"type": "conversation.item.create", "item": user_message(item_id)}
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    await client.send(event)
    done = await client.wait_for("conversation.item.done")
    assert done["item"]["id"] == item_id


async def test_placed_items_are_stored_in_the_live_order(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        session_id = (await client.recv())["session"]["id"]
        await create(client, "item_a")
        await create(client, "item_b")
        await create(client, "item_first", "root")
        await create(client, "item_after_a", "item_a")
    stored = [item.id for item in await gateway.repositories.items.list_for_session(session_id)]
    assert stored == ["item_first", "item_a", "item_after_a", "item_b"]
