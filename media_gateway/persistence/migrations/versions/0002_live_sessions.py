"""live sessions: gateway instance heartbeats, the instance holding a session, a session's expiry

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 09:12:40.118402

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_instances")),
    )
    op.create_index(
        op.f("ix_gateway_instances_expires_at"), "gateway_instances", ["expires_at"], unique=False
    )
    with op.batch_alter_table("realtime_sessions") as batch_op:
        batch_op.add_column(sa.Column("instance_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_realtime_sessions_instance_id_status", ["instance_id", "status"], unique=False
        )
    # Sessions minted before this revision expire with their client secret, like new ones. Sessions left
    # `active` by earlier runs have no instance, so they no longer count as live.
    op.execute(
        "UPDATE realtime_sessions SET expires_at = ("
        "SELECT max(client_secrets.expires_at) FROM client_secrets "
        "WHERE client_secrets.session_id = realtime_sessions.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("realtime_sessions") as batch_op:
        batch_op.drop_index("ix_realtime_sessions_instance_id_status")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("instance_id")
    op.drop_index(op.f("ix_gateway_instances_expires_at"), table_name="gateway_instances")
    op.drop_table("gateway_instances")
