"""Live-connection leases: how many realtime connections each client secret holds right now.

A client secret may open at most `max_connections_per_secret` live connections at a time (1 by
default), so a leaked secret cannot be used beside its rightful holder. The count lives in this
process; a gateway cluster would keep it in a shared store.
"""

from __future__ import annotations

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
