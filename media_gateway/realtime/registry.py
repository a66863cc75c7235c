"""The realtime sessions live in this process, by session id (for sideband attach and shutdown)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media_gateway.realtime.session import RealtimeSession


class LiveSessions:
    def __init__(self) -> None:
        self._sessions: dict[str, RealtimeSession] = {}

    def add(self, session: RealtimeSession) -> None:
        self._sessions[session.id] = session

    def remove(self, session: RealtimeSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def get(self, session_id: str) -> RealtimeSession | None:
        return self._sessions.get(session_id)

    def all(self) -> list[RealtimeSession]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    async def close_all(self) -> None:
        for session in list(self._sessions.values()):
            await session.shutdown()
