"""alert groups and webhook deliveries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:28:23.097256
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint", "delivery_key", name="uq_webhook_delivery"),
    )
    op.create_index(
        op.f("ix_webhook_delivery_received_at"), "webhook_delivery", ["received_at"], unique=False
    )
    op.create_table(
        "alert_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("group_hash", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint", "group_hash", name="uq_alert_group"),
    )
    with op.batch_alter_table("alert") as batch:
        batch.add_column(
            sa.Column("endpoint", sa.String(length=40), nullable=False, server_default="")
        )
        batch.create_unique_constraint(
            "uq_alert_identity", ["incident_id", "endpoint", "fingerprint"]
        )


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.drop_constraint("uq_alert_identity", type_="unique")
        batch.drop_column("endpoint")
    op.drop_table("alert_group")
    op.drop_index(op.f("ix_webhook_delivery_received_at"), table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
