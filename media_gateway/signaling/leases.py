"""Live-connection leases: how many realtime connections each client secret holds right now.

A client secret may open at most `max_connections_per_secret` live connections at a time (1 by
default), so a leaked secret cannot be used beside its rightful holder. The count lives in this
process; a gateway cluster would keep it in a shared store.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from dataclasses import dataclass


@dataclass
class Lease:
    secret_id: str
    _leases: ConnectionLeases
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._leases._release(self.secret_id)


class ConnectionLeases:
    def __init__(self, max_per_secret: int) -> None:
        self.max_per_secret = max_per_secret
        self._live: Counter[str] = Counter()
        self._admission_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def admission_lock(self, key_id: str) -> asyncio.Lock:
        """One lock per API key, held from counting its live sessions to recording the new one, so
        concurrent connects cannot all pass the same count (dropped when no admission holds it)."""
        lock = self._admission_locks.get(key_id)
        if lock is None:
            lock = asyncio.Lock()
            self._admission_locks[key_id] = lock
        return lock

    def live(self, secret_id: str) -> int:
        return self._live[secret_id]

    def acquire(self, secret_id: str) -> Lease | None:
        """A lease, or None when the secret already holds its maximum of live connections."""
        if self._live[secret_id] >= self.max_per_secret:
            return None
        self._live[secret_id] += 1
        return Lease(secret_id, self)

    def _release(self, secret_id: str) -> None:
        self._live[secret_id] -= 1
        if self._live[secret_id] <= 0:
            del self._live[secret_id]
