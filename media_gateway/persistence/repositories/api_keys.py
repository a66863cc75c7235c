"""API keys: created by the command line, looked up by digest, revoked by id or display prefix."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from ..errors import AmbiguousRecord, RecordNotFound
from ..models import ApiKey, new_id, utcnow
from ..records import ApiKeyRecord
from ._base import Repository


class ApiKeyRepository(Repository):
    async def create(
        self, name: str, scopes: Sequence[str], key_hash: str, prefix: str, *, id: str | None = None
    ) -> ApiKeyRecord:
        row = ApiKey(
            id=id or new_id("key"), name=name, prefix=prefix, key_hash=key_hash, scopes=builtins.list(scopes)
        )
        await self._add(row, "api key", row.id)
        return ApiKeyRecord.from_row(row)

    async def get(self, id: str) -> ApiKeyRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(ApiKey, id)
            return None if row is None else ApiKeyRecord.from_row(row)

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return None if row is None else ApiKeyRecord.from_row(row)

    async def list(self) -> builtins.list[ApiKeyRecord]:
        async with self._sessionmaker() as session:
            rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
            return [ApiKeyRecord.from_row(r) for r in rows]

    async def revoke(self, id_or_prefix: str) -> ApiKeyRecord | None:
        """Revoke by exact id, else by display prefix. Idempotent: ``revoked_at`` keeps its first value.

        Returns ``None`` when nothing matches; raises :class:`AmbiguousRecord` when a prefix matches several.
        """
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(ApiKey, id_or_prefix, with_for_update=True)
            if row is None:
                by_prefix = select(ApiKey).where(ApiKey.prefix == id_or_prefix).with_for_update()
                rows = (await session.scalars(by_prefix)).all()
                if not rows:
                    return None
                if len(rows) > 1:
                    raise AmbiguousRecord("api key", id_or_prefix, len(rows))
                row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return ApiKeyRecord.from_row(row)

    async def touch(self, id: str, *, at: datetime | None = None) -> None:
        """Set ``last_used_at`` (now by default). Raises :class:`RecordNotFound` for an unknown id."""
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ApiKey).where(ApiKey.id == id).values(last_used_at=at or utcnow()).returning(ApiKey.id)
            )
            if result.scalar_one_or_none() is None:
                raise RecordNotFound("api key", id)
