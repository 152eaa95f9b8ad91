"""SMS delivery reports: reports parked until their send is recorded.

Revision ID: 0006_sms_reports
Revises: 0005_webhooks
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_sms_reports"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_delivery_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_status", sa.String(100), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_delivery_reports"),
    )
    op.create_index(
        "ix_pending_delivery_reports_provider_message_id",
        "pending_delivery_reports",
        ["provider_message_id", "provider"],
    )
    op.create_index(
        "ix_pending_delivery_reports_received_at", "pending_delivery_reports", ["received_at"]
    )


def downgrade() -> None:
    op.drop_table("pending_delivery_reports")
