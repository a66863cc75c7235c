"""Gateway instances: the heartbeat rows that keep each process's live sessions counted, the start-up
release of what a previous run of the same instance left behind, and the revocation sweep's query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import DuplicateRecord
from ..models import ApiKey, ClientSecret, GatewayInstance, RealtimeSession, utcnow
from ._base import Repository

HeartbeatOutcome = Literal["renewed", "taken", "missing"]
RevokedCredential = Literal["api_key", "client_secret"]


@dataclass(frozen=True, slots=True)
class InstanceStart:
    #: Sessions the previous run of this instance left ``active`` and that are now closed.
    released_sessions: int
    #: The row belonged to another boot whose heartbeat had not expired yet: a restart within one TTL
    #: (after a crash), or, if that process is still running, two processes configured with one id.
    replaced_live_boot: bool


@dataclass(frozen=True, slots=True)
class RevokedSession:
    session_id: str
    credential: RevokedCredential


class InstanceRepository(Repository):
    async def register(
        self, instance_id: str, *, boot_id: str, hostname: str, pid: int, ttl_seconds: float
    ) -> InstanceStart:
        """Start (or take over) the instance's row with a fresh heartbeat and close every session still
        ``active`` on this instance id: this process has just started, so none of them has a connection.
        Raises :class:`DuplicateRecord` when another process registers the same id at the same moment."""
        now, expires = self._now(), self._now_plus(ttl_seconds)
        stamp = utcnow()
        values = {
            "boot_id": boot_id,
            "hostname": hostname[:255],
            "pid": pid,
            "started_at": stamp,
            "heartbeat_at": now,
            "expires_at": expires,
        }
        try:
            async with self._sessionmaker() as session, session.begin():
                previous = (
                    await session.execute(
                        select(GatewayInstance.boot_id, GatewayInstance.expires_at > now)
                        .where(GatewayInstance.id == instance_id)
                        .with_for_update()
                    )
                ).first()
                if previous is None:
                    await session.execute(insert(GatewayInstance).values(id=instance_id, **values))
                else:
                    await session.execute(
                        update(GatewayInstance).where(GatewayInstance.id == instance_id).values(**values)
                    )
                released = await session.scalars(
                    update(RealtimeSession)
                    .where(RealtimeSession.instance_id == instance_id, RealtimeSession.status == "active")
                    .values(status="closed", closed_at=stamp, updated_at=stamp)
                    .returning(RealtimeSession.id)
                )
                released_count = len(released.all())
        except IntegrityError as exc:
            raise DuplicateRecord("gateway instance", instance_id) from exc
        replaced = previous is not None and previous[0] != boot_id and bool(previous[1])
        return InstanceStart(released_sessions=released_count, replaced_live_boot=replaced)

    async def heartbeat(
        self, instance_id: str, *, boot_id: str, hostname: str, pid: int, ttl_seconds: float
    ) -> HeartbeatOutcome:
        """Push the instance's expiry ``ttl_seconds`` ahead. ``taken``: another process registered this id
        since (nothing is written); ``missing``: the row was reaped (after a long stall) and is written anew.
        """
        now, expires = self._now(), self._now_plus(ttl_seconds)
        async with self._sessionmaker() as session, session.begin():
            renewed = await session.scalar(
                update(GatewayInstance)
                .where(GatewayInstance.id == instance_id, GatewayInstance.boot_id == boot_id)
                .values(heartbeat_at=now, expires_at=expires)
                .returning(GatewayInstance.id)
            )
            if renewed is not None:
                return "renewed"
            if await session.scalar(select(GatewayInstance.id).where(GatewayInstance.id == instance_id)):
                return "taken"
            await session.execute(
                insert(GatewayInstance).values(
                    id=instance_id,
                    boot_id=boot_id,
                    hostname=hostname[:255],
                    pid=pid,
                    started_at=utcnow(),
                    heartbeat_at=now,
                    expires_at=expires,
                )
            )
            return "missing"

    async def retire(self, instance_id: str, *, boot_id: str) -> int:
        """On a clean stop: close the sessions still ``active`` here and delete the row, so nothing of this
        process counts any more. Does nothing when another boot owns the row. Returns the sessions closed."""
        stamp = utcnow()
        async with self._sessionmaker() as session, session.begin():
            owned = await session.scalar(
                select(GatewayInstance.id)
                .where(GatewayInstance.id == instance_id, GatewayInstance.boot_id == boot_id)
                .with_for_update()
            )
            if owned is None:
                return 0
            closed = await session.scalars(
                update(RealtimeSession)
                .where(RealtimeSession.instance_id == instance_id, RealtimeSession.status == "active")
                .values(status="closed", closed_at=stamp, updated_at=stamp)
                .returning(RealtimeSession.id)
            )
            count = len(closed.all())
            await session.execute(delete(GatewayInstance).where(GatewayInstance.id == instance_id))
            return count

    async def reap(self, grace_seconds: float) -> int:
        """Delete instances whose heartbeat expired more than ``grace_seconds`` ago and close their
        ``active`` sessions. Only tidiness: such sessions stopped counting when the heartbeat expired.
        Returns the instances deleted."""
        stamp = utcnow()
        async with self._sessionmaker() as session, session.begin():
            dead = (
                await session.scalars(
                    select(GatewayInstance.id)
                    .where(GatewayInstance.expires_at < self._now_plus(-grace_seconds))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not dead:
                return 0
            await session.execute(
                update(RealtimeSession)
                .where(RealtimeSession.instance_id.in_(dead), RealtimeSession.status == "active")
                .values(status="closed", closed_at=stamp, updated_at=stamp)
            )
            await session.execute(delete(GatewayInstance).where(GatewayInstance.id.in_(dead)))
            return len(dead)

    async def revoked_sessions(self, instance_id: str) -> list[RevokedSession]:
        """This instance's ``active`` sessions whose API key, or the client secret bound to them, has been
        revoked. Two indexed queries over this instance's live sessions only."""
        here = (RealtimeSession.instance_id == instance_id, RealtimeSession.status == "active")
        async with self._sessionmaker() as session:
            by_key = await session.scalars(
                select(RealtimeSession.id)
                .join(ApiKey, ApiKey.id == RealtimeSession.api_key_id)
                .where(*here, ApiKey.revoked_at.is_not(None))
            )
            found: dict[str, RevokedCredential] = {session_id: "api_key" for session_id in by_key}
            by_secret = await session.scalars(
                select(RealtimeSession.id)
                .join(ClientSecret, ClientSecret.session_id == RealtimeSession.id)
                .where(*here, ClientSecret.revoked_at.is_not(None))
            )
            for session_id in by_secret:
                found.setdefault(session_id, "client_secret")
        return [RevokedSession(session_id, credential) for session_id, credential in found.items()]
