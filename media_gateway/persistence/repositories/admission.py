"""The count-then-write transactions behind admission: claiming a session's live connection, releasing
it, and minting a client secret, each checked against limits inside one short transaction.

Each holds its API key's write lock (:meth:`Repository._locked`: ``SELECT … FOR UPDATE`` of the key's row on
Postgres, ``BEGIN IMMEDIATE`` on SQLite) from the count to the commit, and nothing else: no policy call,
no network. So the limits hold across every gateway process sharing the database, admissions of different
keys never wait for each other on Postgres, and one key's admissions wait only for each other's few
milliseconds of counting and writing. The lock also makes "a session has one primary connection" hold
across processes: every claim of a session holds its key's lock while it checks and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import RecordNotFound
from ..models import ApiKey, ClientSecret, GatewayInstance, RealtimeSession, SessionType, new_id, utcnow
from ..records import ClientSecretRecord, SessionRecord
from ._base import Repository, translate
from .sessions import live_sessions, live_sessions_of_key

LimitName = Literal["concurrent_sessions", "mints_per_minute"]
ClaimOutcome = Literal["claimed", "session_in_use", "limit_reached"]


@dataclass(frozen=True, slots=True)
class NewSession:
    type: SessionType
    model: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LiveUsage:
    """A key's usage read without a lock (the input of the policy decision; the claim counts again)."""

    #: The key's live sessions, not counting the session being opened.
    live_sessions: int
    #: The session being reopened already has its live connection (on any gateway instance).
    session_live: bool


@dataclass(frozen=True, slots=True)
class SessionClaim:
    """Take the live connection of a session: a new one (``new_session``) or an existing one
    (``session_id``, the session a client secret is bound to), if the key has fewer than
    ``max_live_sessions`` other live sessions and the session has no live connection yet."""

    api_key_id: str
    instance_id: str
    max_live_sessions: int
    session_id: str | None = None
    new_session: NewSession | None = None
    #: Replace an existing session's stored config (and model) in the same transaction.
    config: dict[str, Any] | None = None
    model: str | None = None
    #: Count one use of this client secret in the same transaction.
    client_secret_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    #: The claimed session (``None`` unless claimed).
    session_id: str | None
    #: The key's other live sessions, counted under the lock.
    live_sessions: int


@dataclass(frozen=True, slots=True)
class SecretMint:
    """Create a session (status ``created``, live once hydrated until ``expires_at``) and its client
    secret, unless the key is at one of its limits."""

    api_key_id: str
    session: NewSession
    secret_hash: str
    expires_at: datetime
    #: Mints at or after this time count against ``max_mints``.
    window_start: datetime
    max_mints: int
    max_live_sessions: int


@dataclass(frozen=True, slots=True)
class MintResult:
    #: The limits the key is at (empty when minted).
    exceeded: tuple[LimitName, ...]
    session: SessionRecord | None = None
    secret: ClientSecretRecord | None = None


class AdmissionRepository(Repository):
    async def usage(self, api_key_id: str, session_id: str | None = None) -> LiveUsage:
        async with self._sessionmaker() as session:
            now = self._now()
            live = await session.scalar(live_sessions_of_key(api_key_id, now, exclude_session_id=session_id))
            session_live = False
            if session_id is not None:
                connected = await session.scalar(
                    select(func.count())
                    .select_from(RealtimeSession)
                    .where(
                        RealtimeSession.id == session_id,
                        RealtimeSession.status == "active",
                        live_sessions(now),
                    )
                )
                session_live = bool(connected)
            return LiveUsage(live_sessions=int(live or 0), session_live=session_live)

    async def claim(self, claim: SessionClaim) -> ClaimResult:
        """Claim under the key's lock. Raises :class:`RecordNotFound` when the key, or the session to
        reopen (of this key), does not exist."""
        if (claim.session_id is None) == (claim.new_session is None):
            raise ValueError("a claim names either session_id or new_session")
        async with self._locked(ApiKey.id, claim.api_key_id, "api key") as session:
            now = self._now()
            query = live_sessions_of_key(claim.api_key_id, now, exclude_session_id=claim.session_id)
            live = int(await session.scalar(query) or 0)
            row: RealtimeSession | None = None
            if claim.session_id is not None:
                row = await session.get(RealtimeSession, claim.session_id)
                if row is None or row.api_key_id != claim.api_key_id:
                    raise RecordNotFound("session", claim.session_id)
                if row.status == "active" and row.instance_id is not None:
                    holder = select(func.count()).where(
                        GatewayInstance.id == row.instance_id, GatewayInstance.expires_at > now
                    )
                    if await session.scalar(holder):
                        return ClaimResult("session_in_use", None, live)
            if live >= claim.max_live_sessions:
                return ClaimResult("limit_reached", None, live)
            stamp = utcnow()
            if row is None:
                assert claim.new_session is not None
                row = RealtimeSession(
                    id=new_id("sess"),
                    api_key_id=claim.api_key_id,
                    type=claim.new_session.type,
                    model=claim.new_session.model,
                    config=claim.new_session.config,
                    status="active",
                    created_at=stamp,
                    updated_at=stamp,
                    hydrated_at=stamp,
                    instance_id=claim.instance_id,
                )
                session.add(row)
            else:
                row.status = "active"
                row.instance_id = claim.instance_id
                row.updated_at = stamp
                row.hydrated_at = row.hydrated_at or stamp
                row.closed_at = None
                if claim.config is not None:
                    row.config = claim.config
                if claim.model is not None:
                    row.model = claim.model
            if claim.client_secret_id is not None:
                await session.execute(
                    update(ClientSecret)
                    .where(ClientSecret.id == claim.client_secret_id)
                    .values(use_count=ClientSecret.use_count + 1, last_used_at=stamp)
                )
            return ClaimResult("claimed", row.id, live)

    async def release(self, session_id: str, instance_id: str) -> bool:
        """Close the session if ``instance_id`` still holds its live connection; False otherwise
        (already released, or claimed by another instance since). Idempotent."""
        stamp = utcnow()
        async with self._sessionmaker() as session, session.begin():
            released = await session.scalar(
                update(RealtimeSession)
                .where(
                    RealtimeSession.id == session_id,
                    RealtimeSession.instance_id == instance_id,
                    RealtimeSession.status == "active",
                )
                .values(status="closed", closed_at=stamp, updated_at=stamp)
                .returning(RealtimeSession.id)
            )
            return released is not None

    async def mint(self, mint: SecretMint) -> MintResult:
        """Check the key's limits and create the session and secret under the key's lock. Raises
        :class:`RecordNotFound` for an unknown key, :class:`DuplicateRecord` for a reused secret hash."""
        async with self._locked(ApiKey.id, mint.api_key_id, "api key") as session:
            live = await session.scalar(live_sessions_of_key(mint.api_key_id, self._now()))
            mints = await session.scalar(
                select(func.count())
                .select_from(ClientSecret)
                .where(
                    ClientSecret.api_key_id == mint.api_key_id, ClientSecret.created_at >= mint.window_start
                )
            )
            exceeded: list[LimitName] = []
            if int(live or 0) >= mint.max_live_sessions:
                exceeded.append("concurrent_sessions")
            if int(mints or 0) >= mint.max_mints:
                exceeded.append("mints_per_minute")
            if exceeded:
                return MintResult(tuple(exceeded))
            stamp = utcnow()
            session_row = RealtimeSession(
                id=new_id("sess"),
                api_key_id=mint.api_key_id,
                type=mint.session.type,
                model=mint.session.model,
                config=mint.session.config,
                status="created",
                created_at=stamp,
                updated_at=stamp,
                hydrated_at=None,
                closed_at=None,
                instance_id=None,
                expires_at=mint.expires_at,
            )
            secret_row = ClientSecret(
                id=new_id("cs"),
                secret_hash=mint.secret_hash,
                api_key_id=mint.api_key_id,
                session_id=session_row.id,
                session_config=mint.session.config,
                created_at=stamp,
                expires_at=mint.expires_at,
                revoked_at=None,
                use_count=0,
                last_used_at=None,
            )
            session.add(session_row)
            try:
                await session.flush()  # the session row first: the secret references it
                session.add(secret_row)
                await session.flush()
            except IntegrityError as exc:
                raise translate(exc, "client secret", secret_row.id) from exc
            return MintResult(
                (), SessionRecord.from_row(session_row), ClientSecretRecord.from_row(secret_row)
            )
