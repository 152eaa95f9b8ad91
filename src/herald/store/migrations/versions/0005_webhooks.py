"""Webhooks: URLs that answered 410 Gone, and stored settings (the generated signing secret).

Revision ID: 0005_webhooks
Revises: 0004_sms_callbacks
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_webhooks"
down_revision = "0004_sms_callbacks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_gone",
        sa.Column("url_hash", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("url_hash", name="pk_webhook_gone"),
    )
    op.create_table(
        "stored_settings",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_stored_settings"),
    )


def downgrade() -> None:
    op.drop_table("stored_settings")
    op.drop_table("webhook_gone")
