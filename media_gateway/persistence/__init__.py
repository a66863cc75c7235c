"""Persistence: SQLAlchemy models, repositories and Alembic migrations."""

from .database import Database, mask_url
from .errors import (
    AmbiguousRecord,
    DuplicateRecord,
    PersistenceError,
    RecordNotFound,
    ReferencedRecordNotFound,
)
from .migrate import DatabaseNotMigrated, current_revision, head_revision, require_migrated, upgrade_to_head
from .models import new_id
from .records import ApiKeyRecord, CallRecord, ClientSecretRecord, ConversationItemRecord, SessionRecord
from .repositories import (
    AdmissionRepository,
    ApiKeyRepository,
    CallRepository,
    ClientSecretRepository,
    ConversationItemRepository,
    InstanceRepository,
    Repositories,
    SessionRepository,
)

__all__ = [
    "AdmissionRepository",
    "AmbiguousRecord",
    "ApiKeyRecord",
    "ApiKeyRepository",
    "CallRecord",
    "CallRepository",
    "ClientSecretRecord",
    "ClientSecretRepository",
    "ConversationItemRecord",
    "ConversationItemRepository",
    "Database",
    "DatabaseNotMigrated",
    "DuplicateRecord",
    "InstanceRepository",
    "PersistenceError",
    "RecordNotFound",
    "ReferencedRecordNotFound",
    "Repositories",
    "SessionRecord",
    "SessionRepository",
    "current_revision",
    "head_revision",
    "mask_url",
    "new_id",
    "require_migrated",
    "upgrade_to_head",
]
