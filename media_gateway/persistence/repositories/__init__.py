"""Async repositories over the models. Every method runs in its own short transaction and returns records
(ORM objects never leave the persistence layer).

* ``api_keys``, ``client_secrets``, ``sessions``, ``calls``, ``items``: one repository per table;
  ``sessions`` also defines which sessions are live.
* ``admission``: the locked count-then-write transactions that enforce the per-key limits.
* ``instances``: gateway instance heartbeats, start-up release and the revocation sweep's query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..records import ApiKeyRecord, CallRecord, ClientSecretRecord, ConversationItemRecord, SessionRecord
from .admission import (
    AdmissionRepository,
    ClaimResult,
    LimitName,
    LiveUsage,
    MintResult,
    NewSession,
    SecretMint,
    SessionClaim,
)
from .api_keys import ApiKeyRepository
from .calls import CallRepository
from .client_secrets import ClientSecretRepository
from .instances import InstanceRepository, InstanceStart, RevokedSession
from .items import POSITION_GAP, ConversationItemRepository
from .sessions import SessionRepository

if TYPE_CHECKING:
    from ..database import Database

__all__ = [
    "POSITION_GAP",
    "AdmissionRepository",
    "ApiKeyRecord",
    "ApiKeyRepository",
    "CallRecord",
    "CallRepository",
    "ClaimResult",
    "ClientSecretRecord",
    "ClientSecretRepository",
    "ConversationItemRecord",
    "ConversationItemRepository",
    "InstanceRepository",
    "InstanceStart",
    "LimitName",
    "LiveUsage",
    "MintResult",
    "NewSession",
    "Repositories",
    "RevokedSession",
    "SecretMint",
    "SessionClaim",
    "SessionRecord",
    "SessionRepository",
]


@dataclass(frozen=True, slots=True)
class Repositories:
    api_keys: ApiKeyRepository
    client_secrets: ClientSecretRepository
    sessions: SessionRepository
    calls: CallRepository
    items: ConversationItemRepository
    admission: AdmissionRepository
    instances: InstanceRepository

    @classmethod
    def from_sessionmaker(cls, sessionmaker: async_sessionmaker[AsyncSession]) -> Repositories:
        return cls(
            api_keys=ApiKeyRepository(sessionmaker),
            client_secrets=ClientSecretRepository(sessionmaker),
            sessions=SessionRepository(sessionmaker),
            calls=CallRepository(sessionmaker),
            items=ConversationItemRepository(sessionmaker),
            admission=AdmissionRepository(sessionmaker),
            instances=InstanceRepository(sessionmaker),
        )

    @classmethod
    def from_database(cls, db: Database) -> Repositories:
        return cls.from_sessionmaker(db.sessionmaker)
