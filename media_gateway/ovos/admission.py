"""Admission of OVOS turns: how many sessions may have a turn (or a dialog) open in ovos-core at once.

ovos-core runs each skill's bus handlers on a thread pool of `min(32, cpus + 4)` threads (6 on 2 cores). A
skill in `get_response` holds one of them until the answer arrives, and the answer itself needs another of
the same skill: six concurrent `get_response` dialogs on one skill on 2 cores deadlocked (nothing finished in
100-150 s). So a session holds a slot from the moment its utterance is sent until OVOS says the turn is
handled (a dialog waiting for its answer keeps its slot), and at most `limit` sessions hold one: by default
one less than that pool. A session that finds no slot waits up to `wait_seconds` in arrival order, then is
refused (`AdmissionRefused`, which the turn reports as an error) rather than queued forever.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from typing import Protocol


def default_limit(cpus: int | None = None) -> int:
    """One less than ovos-core's handler pool per skill on a machine with `cpus` cores."""
    return max(1, min(32, (cpus or os.cpu_count() or 1) + 4) - 1)


class AdmissionRefused(RuntimeError):
    pass


class AdmissionObserver(Protocol):
    def changed(self, in_use: int, waiting: int) -> None: ...
    def waited(self, seconds: float) -> None: ...
    def refused(self) -> None: ...


class TurnAdmission:
    def __init__(self, limit: int, wait_seconds: float, observer: AdmissionObserver | None = None) -> None:
        if limit < 1:
            raise ValueError("the admission limit must be at least 1")
        self.limit = limit
        self._wait_seconds = wait_seconds
        self._observer = observer
        self._holders: set[str] = set()
        self._waiters: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self.peak = 0
        self.refusals = 0

    @property
    def in_use(self) -> int:
        return len(self._holders)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def holds(self, session_id: str) -> bool:
        return session_id in self._holders

    async def enter(self, session_id: str) -> None:
        """Hold a slot for this session (at once if it holds one already)."""
        if session_id in self._holders:
            return
        if len(self._holders) < self.limit and not self._waiters:
            self._take(session_id)
            return
        loop = asyncio.get_running_loop()
        future = self._waiters.get(session_id)
        if future is None:
            future = loop.create_future()
            self._waiters[session_id] = future
        self._report()
        began = loop.time()
        try:
            async with asyncio.timeout(self._wait_seconds):
                await asyncio.shield(future)
        except TimeoutError:
            if self._waiters.get(session_id) is future:
                del self._waiters[session_id]
            if not (future.done() and not future.cancelled()):
                self.refusals += 1
                if self._observer is not None:
                    self._observer.refused()
                self._report()
                raise AdmissionRefused(
                    f"OVOS is busy: {self.limit} sessions have turns open; try again shortly"
                ) from None
        finally:
            if self._observer is not None:
                self._observer.waited(loop.time() - began)

    def leave(self, session_id: str) -> None:
        """The session's turn (or dialog) ended: its slot goes to the longest waiting session."""
        waiter = self._waiters.pop(session_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(AdmissionRefused("the session ended while it waited for OVOS"))
        if session_id not in self._holders:
            self._report()
            return
        self._holders.discard(session_id)
        while self._waiters and len(self._holders) < self.limit:
            next_id, future = self._waiters.popitem(last=False)
            if not future.done():
                self._take(next_id)
                future.set_result(None)
        self._report()

    def _take(self, session_id: str) -> None:
        self._holders.add(session_id)
        self.peak = max(self.peak, len(self._holders))
        self._report()

    def _report(self) -> None:
        if self._observer is not None:
            self._observer.changed(len(self._holders), len(self._waiters))
