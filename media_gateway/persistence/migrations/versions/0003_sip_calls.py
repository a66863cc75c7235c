"""SIP calls: a call may have no session (never answered) and ends with the outcomes of unanswered calls

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 02:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("new", "connecting", "connected", "ended", "failed")
_NEW = (*_OLD, "rejected", "cancelled", "unanswered", "refused")


def _check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _calls_table(values: tuple[str, ...], *, session_nullable: bool) -> sa.Table:
    """The calls table as the revision before the batch step leaves it: SQLite changes a column's
    nullability or a CHECK constraint only by copying the table, and offline (`--sql`) it cannot reflect
    the table to copy, so the batch step is given it."""
    return sa.Table(
        "calls",
        sa.MetaData(),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=session_nullable),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_check(values), name="ck_calls_status"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["realtime_sessions.id"],
            name="fk_calls_session_id_realtime_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.Index("ix_calls_session_id", "session_id"),
    )


def upgrade() -> None:
    with op.batch_alter_table("calls", copy_from=_calls_table(_OLD, session_nullable=False)) as batch_op:
        batch_op.alter_column("session_id", existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_calls_status"), _check(_NEW))


def downgrade() -> None:
    # 0002 can hold neither a call without a session nor the new statuses: those rows go.
    op.execute(
        "DELETE FROM calls WHERE session_id IS NULL "
        "OR status NOT IN ('new', 'connecting', 'connected', 'ended', 'failed')"
    )
    with op.batch_alter_table("calls", copy_from=_calls_table(_NEW, session_nullable=True)) as batch_op:
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_calls_status"), _check(_OLD))
        batch_op.alter_column("session_id", existing_type=sa.String(length=64), nullable=False)
