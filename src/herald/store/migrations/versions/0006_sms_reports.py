"""SMS delivery reports: reports parked until their send is recorded, and the parts of
messages sent in several (each part's report finds its notification).

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
    op.create_table(
        "message_parts",
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("provider_message_id", "provider", name="pk_message_parts"),
    )
    op.create_index("ix_message_parts_notification_id", "message_parts", ["notification_id"])


def downgrade() -> None:
    op.drop_table("message_parts")
    op.drop_table("pending_delivery_reports")
