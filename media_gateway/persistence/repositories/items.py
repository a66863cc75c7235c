"""Conversation items, stored in the order of the live conversation.

Positions are integers with gaps (``POSITION_GAP`` apart when appended or renumbered), so an item inserted
between two others takes the midpoint and no other row moves. When two neighbours have no integer left
between them, the session's items are renumbered (rare: after about log2(POSITION_GAP) = 10 inserts into
the same gap). ``previous_item_id`` names the item before each one in that order, kept up to date by
inserts and deletes.

An append is one ``INSERT … SELECT`` (after ``SELECT … FOR UPDATE`` of the session row on Postgres); an
insert elsewhere and a delete hold the session's write lock (that row lock on Postgres, ``BEGIN IMMEDIATE``
on SQLite) from reading the neighbours to the commit. So concurrent writers of one session never pick
the same position.
"""

from __future__ import annotations

import builtins
from typing import Any, Final

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ..errors import DuplicateRecord, RecordNotFound, classify_integrity_error
from ..models import (
    ITEM_STATUSES,
    ITEM_TYPES,
    ConversationItem,
    ItemStatus,
    ItemType,
    RealtimeSession,
    new_id,
    utcnow,
)
from ..records import ConversationItemRecord
from ._base import Repository, check_choice

POSITION_GAP: Final = 1024


def _between(before: int | None, after: int | None) -> int | None:
    """A free position strictly between two neighbours (``None`` for a missing one), or None if none."""
    low = 0 if before is None else before
    if after is None:
        return low + POSITION_GAP
    return (low + after) // 2 if after - low >= 2 else None


class ConversationItemRepository(Repository):
    async def append(
        self,
        session_id: str,
        item_id: str | None,
        type: ItemType,
        role: str | None,
        status: ItemStatus,
        content: Any,
        previous_item_id: str | None = None,
    ) -> ConversationItemRecord:
        """Append an item at the end of the session's conversation (position = last + ``POSITION_GAP``).

        ``item_id=None`` generates an ``item_...`` id. ``previous_item_id`` is stored as given; when ``None``
        it is filled with the id of the session's current last item (``None`` for the first item).
        Raises :class:`RecordNotFound` for an unknown session, :class:`DuplicateRecord` for a reused id.
        """
        check_choice("item type", type, ITEM_TYPES)
        check_choice("item status", status, ITEM_STATUSES)
        item_id = item_id or new_id("item")
        other = aliased(ConversationItem)
        next_position = (
            select(func.coalesce(func.max(other.position), 0) + POSITION_GAP)
            .where(other.session_id == session_id)
            .scalar_subquery()
        )
        last_item = (
            select(other.id)
            .where(other.session_id == session_id)
            .order_by(other.position.desc())
            .limit(1)
            .scalar_subquery()
        )
        now = utcnow()
        statement = (
            insert(ConversationItem)
            .values(
                id=item_id,
                session_id=session_id,
                position=next_position,
                previous_item_id=previous_item_id if previous_item_id is not None else last_item,
                type=type,
                role=role,
                status=status,
                content=content,
                created_at=now,
                updated_at=now,
            )
            .returning(ConversationItem)
        )
        # One statement: on SQLite it runs under the database's write lock, which it takes itself, so the
        # lock is held for this statement and its commit only (appends are the hot path: every item of
        # every response). On Postgres the session's row lock orders it against other writers first.
        try:
            async with self._sessionmaker() as session, session.begin():
                if self._dialect == "postgresql":
                    found = await session.scalar(
                        select(RealtimeSession.id).where(RealtimeSession.id == session_id).with_for_update()
                    )
                    if found is None:
                        raise RecordNotFound("session", session_id)
                row = await session.scalar(statement)
                assert row is not None
                return ConversationItemRecord.from_row(row)
        except IntegrityError as exc:
            if classify_integrity_error(exc) == "foreign_key":
                raise RecordNotFound("session", session_id) from exc
            raise DuplicateRecord("conversation item", item_id) from exc

    async def insert(
        self,
        session_id: str,
        item_id: str | None,
        type: ItemType,
        role: str | None,
        status: ItemStatus,
        content: Any,
        *,
        after_item_id: str | None,
    ) -> ConversationItemRecord:
        """Insert an item right after ``after_item_id``, or first when it is ``None``.

        The new item's ``previous_item_id`` is ``after_item_id``; the item that followed it now names the
        new item as its previous one. ``list_for_session`` returns the items in this order.
        Raises :class:`RecordNotFound` for an unknown session or an ``after_item_id`` that is not an item of
        this session, :class:`DuplicateRecord` for a reused id.
        """
        check_choice("item type", type, ITEM_TYPES)
        check_choice("item status", status, ITEM_STATUSES)
        async with self._locked(RealtimeSession.id, session_id, "session") as session:
            before, following = await self._neighbours(session, session_id, after_item_id)
            position = _between(before, following.position if following is not None else None)
            if position is None:
                await self._renumber(session, session_id)
                before, following = await self._neighbours(session, session_id, after_item_id)
                position = _between(before, following.position if following is not None else None)
                assert position is not None
            record = await self._insert_row(
                session, session_id, item_id, type, role, status, content, position, after_item_id
            )
            if following is not None:
                await session.execute(
                    update(ConversationItem)
                    .where(ConversationItem.id == following.id)
                    .values(previous_item_id=record.id)
                )
            return record

    async def _neighbours(
        self, session: AsyncSession, session_id: str, after_item_id: str | None
    ) -> tuple[int | None, Row[str, int] | None]:
        """The position of ``after_item_id`` (None: insert first), and id and position of the next item."""
        before: int | None = None
        if after_item_id is not None:
            before = await session.scalar(
                select(ConversationItem.position).where(
                    ConversationItem.id == after_item_id, ConversationItem.session_id == session_id
                )
            )
            if before is None:
                raise RecordNotFound("conversation item", after_item_id)
        query = select(ConversationItem.id, ConversationItem.position).where(
            ConversationItem.session_id == session_id
        )
        if before is not None:
            query = query.where(ConversationItem.position > before)
        following = (await session.execute(query.order_by(ConversationItem.position).limit(1))).first()
        return before, following

    async def _renumber(self, session: AsyncSession, session_id: str) -> None:
        """Space the session's positions ``POSITION_GAP`` apart again, keeping their order.

        UNIQUE(session_id, position) is checked row by row while an UPDATE runs (Postgres and SQLite), so
        moving rows straight to their new positions could collide with a row not yet moved. First every
        row moves to a distinct negative position (-1 - position), then each to its final one.
        """
        ids = (
            await session.scalars(
                select(ConversationItem.id)
                .where(ConversationItem.session_id == session_id)
                .order_by(ConversationItem.position)
            )
        ).all()
        await session.execute(
            update(ConversationItem)
            .where(ConversationItem.session_id == session_id)
            .values(position=-1 - ConversationItem.position)
        )
        await session.execute(
            update(ConversationItem),
            [{"id": item, "position": (index + 1) * POSITION_GAP} for index, item in enumerate(ids)],
        )

    async def _insert_row(
        self,
        session: AsyncSession,
        session_id: str,
        item_id: str | None,
        type: ItemType,
        role: str | None,
        status: ItemStatus,
        content: Any,
        position: int,
        previous_item_id: str | None,
    ) -> ConversationItemRecord:
        now = utcnow()
        row = ConversationItem(
            id=item_id or new_id("item"),
            session_id=session_id,
            position=position,
            previous_item_id=previous_item_id,
            type=type,
            role=role,
            status=status,
            content=content,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            if classify_integrity_error(exc) == "foreign_key":
                raise RecordNotFound("session", session_id) from exc
            raise DuplicateRecord("conversation item", row.id) from exc
        return ConversationItemRecord.from_row(row)

    async def get(self, item_id: str) -> ConversationItemRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ConversationItem, item_id)
            return None if row is None else ConversationItemRecord.from_row(row)

    async def update(
        self, item_id: str, *, status: ItemStatus | None = None, content: Any = None
    ) -> ConversationItemRecord:
        """Change status and/or content (``None`` leaves a field unchanged); bumps ``updated_at``."""
        if status is not None:
            check_choice("item status", status, ITEM_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ConversationItem, item_id, with_for_update=True)
            if row is None:
                raise RecordNotFound("conversation item", item_id)
            if status is not None:
                row.status = status
            if content is not None:
                row.content = content
            row.updated_at = utcnow()
        return ConversationItemRecord.from_row(row)

    async def list_for_session(self, session_id: str) -> builtins.list[ConversationItemRecord]:
        """The session's items in conversation order (empty for an unknown session)."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationItem)
                .where(ConversationItem.session_id == session_id)
                .order_by(ConversationItem.position)
            )
            return [ConversationItemRecord.from_row(r) for r in rows]

    async def delete(self, item_id: str) -> ConversationItemRecord:
        """Delete and return the item. Other positions stay as they are; the item that followed it now
        names the deleted item's predecessor as its previous one."""
        async with self._sessionmaker() as session:
            session_id = await session.scalar(
                select(ConversationItem.session_id).where(ConversationItem.id == item_id)
            )
        if session_id is None:
            raise RecordNotFound("conversation item", item_id)
        async with self._locked(RealtimeSession.id, session_id, "session") as session:
            row = await session.get(ConversationItem, item_id)
            if row is None:  # deleted meanwhile
                raise RecordNotFound("conversation item", item_id)
            record = ConversationItemRecord.from_row(row)
            await session.delete(row)
            await session.flush()
            following = await session.scalar(
                select(ConversationItem.id)
                .where(ConversationItem.session_id == session_id, ConversationItem.position > record.position)
                .order_by(ConversationItem.position)
                .limit(1)
            )
            if following is not None:
                predecessor = await session.scalar(
                    select(ConversationItem.id)
                    .where(
                        ConversationItem.session_id == session_id, ConversationItem.position < record.position
                    )
                    .order_by(ConversationItem.position.desc())
                    .limit(1)
                )
                await session.execute(
                    update(ConversationItem)
                    .where(ConversationItem.id == following)
                    .values(previous_item_id=predecessor)
                )
        return record
