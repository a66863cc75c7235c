"""This gateway process as the shared database knows it, and the background task that keeps it so.

Several gateway processes may serve one database. Each registers a `gateway_instances` row under its
instance id (`Settings.resolved_instance_id`) and renews it every `instance_heartbeat_seconds`; a session
connected here is `active` with this instance id, and counts against its key's limit only while this row
has not expired (`instance_ttl_seconds`). So:

* a process that dies (SIGKILL, power loss) stops holding slots one TTL after its last heartbeat, even if
  it never comes back; restarted under the same id, it releases them at start-up, before it serves;
* a clean stop closes what is left and deletes the row.

The same periodic task ends this instance's live sessions whose API key or client secret was revoked (by
`media-gateway keys revoke` or any other process writing the database), retries releases that failed, and
now and then deletes rows of instances dead for an hour. It runs on a database connection of its own, so
a request pool that is exhausted by slow requests cannot delay the heartbeat past the TTL.

`GatewayInstance` owns that task, that connection and the termination tasks it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from typing import Final

from media_gateway.observability.logging import get_logger
from media_gateway.persistence.database import Database
from media_gateway.persistence.repositories import InstanceStart, Repositories, RevokedSession
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.registry import LiveSessions
from media_gateway.realtime.session import RealtimeSession

log = get_logger(__name__)

#: Rows of instances whose heartbeat expired this long ago are deleted (tidiness only: their sessions
#: stopped counting when the heartbeat expired).
REAP_AFTER_SECONDS: Final = 3600.0
REAP_EVERY_SECONDS: Final = 60.0
#: The close code of a session ended for a revoked credential (1008: policy violation).
REVOKED_CLOSE_CODE: Final = 1008
#: How long stop() lets a running period finish before cancelling it.
STOP_TIMEOUT_SECONDS: Final = 10.0

_REVOKED = {
    "api_key": (
        "The API key of this session has been revoked; the session has ended.",
        "api_key_revoked",
        "api key revoked",
    ),
    "client_secret": (
        "The client secret that opened this session has been revoked; the session has ended.",
        "client_secret_revoked",
        "client secret revoked",
    ),
}


class GatewayInstance:
    def __init__(
        self,
        *,
        instance_id: str,
        database: Database,
        sessions: LiveSessions,
        heartbeat_seconds: float,
        ttl_seconds: float,
    ) -> None:
        self.id = instance_id
        self.boot_id = secrets.token_hex(16)
        self._database = database
        self._own_database: Database | None = None
        #: Releases run on the request pool (they are part of a request's teardown).
        self._repositories = Repositories.from_database(database)
        #: The periodic task's own connection (the same pool for in-memory SQLite: one database).
        self._background = self._repositories
        self._sessions = sessions
        self._heartbeat_seconds = heartbeat_seconds
        self._ttl_seconds = ttl_seconds
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._terminations: dict[str, asyncio.Task[None]] = {}
        self._pending_releases: set[str] = set()
        self._last_reap = 0.0

    async def start(self) -> InstanceStart:
        """Register (releasing what a previous run of this id left `active`), then start the heartbeat."""
        if not self._database.in_memory:
            self._own_database = Database(self._database.url, pool_size=1)
            self._background = Repositories.from_database(self._own_database)
        try:
            started = await self._register()
        except BaseException:
            await self._dispose()
            raise
        await self._reap()
        self._task = asyncio.create_task(self._run(), name=f"instance-heartbeat:{self.id}")
        return started

    async def _register(self) -> InstanceStart:
        started = await self._background.instances.register(
            self.id,
            boot_id=self.boot_id,
            hostname=self._hostname,
            pid=self._pid,
            ttl_seconds=self._ttl_seconds,
        )
        log.info(
            "instance.started",
            instance_id=self.id,
            released_sessions=started.released_sessions,
            heartbeat_seconds=self._heartbeat_seconds,
            ttl_seconds=self._ttl_seconds,
        )
        if started.replaced_live_boot:
            log.warning(
                "instance.replaced_live_heartbeat",
                instance_id=self.id,
                detail="the previous holder of this instance id had not expired: a restart after a crash, "
                "or another running process with the same MEDIA_GATEWAY_INSTANCE_ID",
            )
        return started

    async def stop(self) -> None:
        """Stop the task (letting a running period finish: cancelling it inside a transaction could leave
        the database locked) and its terminations, close what is left here, delete the row."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
            except (TimeoutError, Exception):
                log.warning("instance.task_stop_failed", instance_id=self.id, exc_info=True)
            self._task = None
        terminations = list(self._terminations.values())
        for task in terminations:
            task.cancel()
        for task in terminations:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            closed = await self._background.instances.retire(self.id, boot_id=self.boot_id)
        except Exception:
            log.warning("instance.retire_failed", instance_id=self.id, exc_info=True)
        else:
            log.info("instance.stopped", instance_id=self.id, closed_sessions=closed)
        await self._dispose()

    async def _dispose(self) -> None:
        if self._own_database is not None:
            await self._own_database.dispose()
            self._own_database = None
            self._background = self._repositories

    async def release(self, session_id: str) -> None:
        """Give back the slot of a session whose connection here has ended. A failed write is retried
        by the heartbeat task (until then the session keeps counting, never the reverse)."""
        try:
            await self._repositories.admission.release(session_id, self.id)
        except Exception:
            log.warning("instance.release_failed", instance_id=self.id, session_id=session_id, exc_info=True)
            self._pending_releases.add(session_id)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._heartbeat_seconds)
                return
            await self.tick()

    async def tick(self) -> None:
        """One period: heartbeat, revocation sweep, retried releases, and now and then the reaper. A failing
        step is logged and retried next period; it never stops the task."""
        try:
            await self._heartbeat()
        except Exception:
            log.warning("instance.heartbeat_failed", instance_id=self.id, exc_info=True)
        try:
            for revoked in await self._background.instances.revoked_sessions(self.id):
                self._end(revoked)
        except Exception:
            log.warning("instance.revocation_check_failed", instance_id=self.id, exc_info=True)
        for session_id in list(self._pending_releases):
            self._pending_releases.discard(session_id)
            await self.release(session_id)
        if time.monotonic() - self._last_reap >= REAP_EVERY_SECONDS:
            await self._reap()

    async def _heartbeat(self) -> None:
        outcome = await self._background.instances.heartbeat(
            self.id,
            boot_id=self.boot_id,
            hostname=self._hostname,
            pid=self._pid,
            ttl_seconds=self._ttl_seconds,
        )
        if outcome == "taken":
            log.error(
                "instance.id_in_use",
                instance_id=self.id,
                detail="another process registered this instance id; give every gateway process its own "
                "MEDIA_GATEWAY_INSTANCE_ID",
            )
        elif outcome == "missing":
            log.warning("instance.heartbeat_recovered", instance_id=self.id)

    async def _reap(self) -> None:
        self._last_reap = time.monotonic()
        try:
            reaped = await self._background.instances.reap(REAP_AFTER_SECONDS)
        except Exception:
            log.warning("instance.reap_failed", instance_id=self.id, exc_info=True)
            return
        if reaped:
            log.info("instance.reaped", instance_id=self.id, instances=reaped)

    def _end(self, revoked: RevokedSession) -> None:
        """End a live session of a revoked credential (once, however many periods it takes to close)."""
        session = self._sessions.get(revoked.session_id)
        if session is None or session.closed or revoked.session_id in self._terminations:
            return
        log.info("instance.session_revoked", session_id=session.id, credential=revoked.credential)
        task = asyncio.create_task(self._terminate(session, revoked), name=f"terminate-revoked:{session.id}")
        self._terminations[session.id] = task
        task.add_done_callback(lambda _: self._terminations.pop(revoked.session_id, None))

    async def _terminate(self, session: RealtimeSession, revoked: RevokedSession) -> None:
        message, code, reason = _REVOKED[revoked.credential]
        try:
            await session.terminate(RealtimeError(message, code=code), code=REVOKED_CLOSE_CODE, reason=reason)
        except Exception:
            log.warning("instance.terminate_failed", session_id=session.id, exc_info=True)
