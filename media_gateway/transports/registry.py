"""Live transport connections, so shutdown can close them instead of waiting out the grace period."""

from __future__ import annotations

import weakref

from aiohttp import web


class LiveConnections:
    def __init__(self) -> None:
        self._connections: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, connection: web.WebSocketResponse) -> None:
        self._connections.add(connection)

    def __len__(self) -> int:
        return sum(1 for connection in self._connections if not connection.closed)

    async def close_all(self) -> None:
        for connection in list(self._connections):
            await connection.close(code=1001, message=b"server shutting down")
