"""Client secrets (`ek_…`): stored by digest, bound to the session they were minted for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from ..errors import RecordNotFound
from ..models import ClientSecret, new_id, utcnow
from ..records import ClientSecretRecord
from ._base import Repository


class ClientSecretRepository(Repository):
    async def create(
        self,
        secret_hash: str,
        api_key_id: str,
        session_id: str | None,
        session_config: dict[str, Any],
        expires_at: datetime,
        *,
        id: str | None = None,
    ) -> ClientSecretRecord:
        row = ClientSecret(
            id=id or new_id("cs"),
            secret_hash=secret_hash,
            api_key_id=api_key_id,
            session_id=session_id,
            session_config=session_config,
            expires_at=expires_at,
            use_count=0,
        )
        await self._add(row, "client secret", row.id)
        return ClientSecretRecord.from_row(row)

    async def get(self, id: str) -> ClientSecretRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ClientSecret, id)
            return None if row is None else ClientSecretRecord.from_row(row)

    async def get_by_hash(self, secret_hash: str) -> ClientSecretRecord | None:
        """Look up by hash regardless of expiry/revocation; check :meth:`ClientSecretRecord.is_usable`."""
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ClientSecret).where(ClientSecret.secret_hash == secret_hash))
            return None if row is None else ClientSecretRecord.from_row(row)

    async def record_use(self, id: str) -> ClientSecretRecord:
        """Atomically increment ``use_count`` and set ``last_used_at``; returns the updated record."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(
                update(ClientSecret)
                .where(ClientSecret.id == id)
                .values(use_count=ClientSecret.use_count + 1, last_used_at=utcnow())
                .returning(ClientSecret),
                execution_options={"populate_existing": True},
            )
            if row is None:
                raise RecordNotFound("client secret", id)
            return ClientSecretRecord.from_row(row)

    async def revoke(self, id: str) -> ClientSecretRecord | None:
        """Idempotent; returns ``None`` for an unknown id."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ClientSecret, id, with_for_update=True)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return ClientSecretRecord.from_row(row)

    async def count_created_since(self, api_key_id: str, since: datetime) -> int:
        """Secrets minted by ``api_key_id`` at or after ``since`` (revoked ones included), for rate limits."""
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(ClientSecret)
                .where(ClientSecret.api_key_id == api_key_id, ClientSecret.created_at >= since)
            )
            return int(count or 0)
