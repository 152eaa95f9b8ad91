"""Provider callbacks find their notification by provider message id.

Revision ID: 0005_sms_callbacks
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sms_callbacks"
down_revision = "0002"
branch_labels = None
depends_on = None

_HAS_ID = sa.text("provider_message_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_notifications_provider_message_id",
        "notifications",
        ["provider_message_id", "provider"],
        postgresql_where=_HAS_ID,
        sqlite_where=_HAS_ID,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_provider_message_id", table_name="notifications")
