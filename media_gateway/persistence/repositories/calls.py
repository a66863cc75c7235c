"""Calls: one row per WebRTC `POST /v1/realtime/calls`, media stream or SIP INVITE, with its status."""

from __future__ import annotations

from typing import Any, Final

from ..errors import RecordNotFound
from ..models import CALL_STATUSES, Call, CallStatus, new_id, utcnow
from ..records import CallRecord
from ._base import Repository, check_choice

TERMINAL_CALL_STATUSES: Final[tuple[CallStatus, ...]] = (
    "ended",
    "failed",
    "rejected",
    "cancelled",
    "unanswered",
    "refused",
)


class CallRepository(Repository):
    async def create(
        self,
        session_id: str | None,
        meta: dict[str, Any] | None = None,
        *,
        status: CallStatus = "new",
        id: str | None = None,
    ) -> CallRecord:
        check_choice("call status", status, CALL_STATUSES)
        row = Call(id=id or new_id("rtc"), session_id=session_id, status=status, meta=meta or {})
        if status in TERMINAL_CALL_STATUSES:
            row.ended_at = utcnow()
        await self._add(row, "call", row.id)
        return CallRecord.from_row(row)

    async def get(self, id: str) -> CallRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(Call, id)
            return None if row is None else CallRecord.from_row(row)

    async def set_status(self, id: str, status: CallStatus) -> CallRecord:
        """Set the status; the first move to ended/failed stamps ``ended_at``."""
        check_choice("call status", status, CALL_STATUSES)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(Call, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("call", id)
            row.status = status
            if status in TERMINAL_CALL_STATUSES and row.ended_at is None:
                row.ended_at = utcnow()
        return CallRecord.from_row(row)

    async def answered(self, id: str, session_id: str, meta: dict[str, Any]) -> CallRecord:
        """A call recorded before it had a session (SIP, ringing) was answered: its session and status."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(Call, id, with_for_update=True)
            if row is None:
                raise RecordNotFound("call", id)
            row.session_id = session_id
            row.status = "connected"
            row.meta = {**row.meta, **meta}
        return CallRecord.from_row(row)
