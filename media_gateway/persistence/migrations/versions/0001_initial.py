"""initial schema: api_keys, realtime_sessions, client_secrets, calls, conversation_items

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:56:31.605335

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=256), nullable=False),
        sa.Column(
            "scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_key_hash"), "api_keys", ["key_hash"], unique=True)
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"], unique=False)
    op.create_table(
        "realtime_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hydrated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'hydrated', 'active', 'closed')", name=op.f("ck_realtime_sessions_status")
        ),
        sa.CheckConstraint("type IN ('realtime', 'transcription')", name=op.f("ck_realtime_sessions_type")),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_realtime_sessions_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_sessions")),
    )
    op.create_index(
        "ix_realtime_sessions_api_key_id_status", "realtime_sessions", ["api_key_id", "status"], unique=False
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('new', 'connecting', 'connected', 'ended', 'failed')", name=op.f("ck_calls_status")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["realtime_sessions.id"],
            name=op.f("fk_calls_session_id_realtime_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_session_id"), "calls", ["session_id"], unique=False)
    op.create_table(
        "client_secrets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=256), nullable=False),
        sa.Column("api_key_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column(
            "session_config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("use_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_client_secrets_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["realtime_sessions.id"],
            name=op.f("fk_client_secrets_session_id_realtime_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_secrets")),
    )
    op.create_index(
        "ix_client_secrets_api_key_id_created_at",
        "client_secrets",
        ["api_key_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_client_secrets_secret_hash"), "client_secrets", ["secret_hash"], unique=True)
    op.create_index(op.f("ix_client_secrets_session_id"), "client_secrets", ["session_id"], unique=False)
    op.create_table(
        "conversation_items",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("previous_item_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('in_progress', 'completed', 'incomplete')", name=op.f("ck_conversation_items_status")
        ),
        sa.CheckConstraint(
            "type IN ('message', 'function_call', 'function_call_output')",
            name=op.f("ck_conversation_items_type"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["realtime_sessions.id"],
            name=op.f("fk_conversation_items_session_id_realtime_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_items")),
        sa.UniqueConstraint("session_id", "position", name=op.f("uq_conversation_items_session_id_position")),
    )


def downgrade() -> None:
    op.drop_table("conversation_items")
    op.drop_index(op.f("ix_client_secrets_session_id"), table_name="client_secrets")
    op.drop_index(op.f("ix_client_secrets_secret_hash"), table_name="client_secrets")
    op.drop_index("ix_client_secrets_api_key_id_created_at", table_name="client_secrets")
    op.drop_table("client_secrets")
    op.drop_index(op.f("ix_calls_session_id"), table_name="calls")
    op.drop_table("calls")
    op.drop_index("ix_realtime_sessions_api_key_id_status", table_name="realtime_sessions")
    op.drop_table("realtime_sessions")
    op.drop_index(op.f("ix_api_keys_prefix"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_key_hash"), table_name="api_keys")
    op.drop_table("api_keys")
