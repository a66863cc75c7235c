"""Realtime sessions, and the rule that says which of them are live.

A session is **live** (it holds one of its API key's `concurrent_sessions` slots) when it is

* ``active`` on a gateway instance whose heartbeat has not expired (``gateway_instances.expires_at``), or
* ``hydrated`` and its client secret has not expired (``realtime_sessions.expires_at``).

Nothing else counts: a session left ``active`` by a process that died stops counting one heartbeat TTL
later, even if that process never comes back, and a hydrated session no client ever connected stops
counting when its secret expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from ..errors import RecordNotFound
from ..models import (
    SESSION_STATUSES,
    SESSION_TYPES,
    GatewayInstance,
    RealtimeSession,
    SessionStatus,
    SessionType,
    new_id,
    utcnow,
)
from ..records import SessionRecord
from ._base import Repository, check_choice


def live_sessions(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """The SQL condition of a live session at ``now`` (see the module docstring)."""
    live_instances = select(GatewayInstance.id).where(GatewayInstance.expires_at > now)
    return or_(
        and_(RealtimeSession.status == "active", RealtimeSession.instance_id.in_(live_instances)),
        and_(RealtimeSession.status == "hydrated", RealtimeSession.expires_at > now),
    )


def live_sessions_of_key(
    api_key_id: str, now: ColumnElement[datetime], *, exclude_session_id: str | None = None
) -> Any:
    """``SELECT count(*)`` of the key's live sessions (without ``exclude_session_id``)."""
    query = (
        select(func.count())
        .select_from(RealtimeSession)
        .where(RealtimeSession.api_key_id == api_key_id, live_sessions(now))
    )
    if exclude_session_id is not None:
        query = query.where(RealtimeSession.id != exclude_session_id)
    return query


class SessionRepository(Repository):
    async def create(
        self,
        api_key_id: str | None,
        type: SessionType,
        model: str,
        config: dict[str, Any],
        *,
        status: SessionStatus = "created",
        id: str | None = None,
        expires_at: datetime | None = None,
    ) -> SessionRecord:
        check_choice("session type", type, SESSION_TYPES)
        check_choice("session status", status, SESSION_STATUSES)
        now = utcnow()
        row = RealtimeSession(
            id=id or new_id("sess"),
            api_key_id=api_key_id,
            type=type,
            model=model,
            config=config,
            status=status,
            created_at=now,
            updated_at=now,
            hydrated_at=now if status in ("hydrated", "active") else None,
            closed_at=now if status == "closed" else None,
            expires_at=expires_at,
        )
        await self._add(row, "session", row.id)
        return SessionRecord.from_row(row)

    async def get(self, id: str) -> SessionRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(RealtimeSession, id)
            return None if row is None else SessionRecord.from_row(row)

    async def update_config(self, id: str, config: dict[str, Any], model: str | None = None) -> SessionRecord:
        """Replace the stored config (and the model when given)."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(RealtimeSession, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("session", id)
            row.config = config
            if model is not None:
                row.model = model
            row.updated_at = utcnow()
        return SessionRecord.from_row(row)

    async def set_status(self, id: str, status: SessionStatus) -> SessionRecord:
        """Set the status. The first hydrated/active stamps ``hydrated_at``; closed stamps ``closed_at``.

        A live connection's session is claimed and released through :class:`AdmissionRepository`, which
        also records the instance holding it; this is for the other transitions (e.g. hydration).
        """
        check_choice("session status", status, SESSION_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(RealtimeSession, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("session", id)
            now = utcnow()
            row.status = status
            row.updated_at = now
            if status in ("hydrated", "active") and row.hydrated_at is None:
                row.hydrated_at = now
            if status == "closed" and row.closed_at is None:
                row.closed_at = now
        return SessionRecord.from_row(row)

    async def count_live(self, api_key_id: str, *, exclude_session_id: str | None = None) -> int:
        """The key's live sessions now (see the module docstring), for its concurrent-session limit."""
        async with self._sessionmaker() as session:
            query = live_sessions_of_key(api_key_id, self._now(), exclude_session_id=exclude_session_id)
            return int(await session.scalar(query) or 0)
