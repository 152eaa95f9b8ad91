"""Channel fallback: prepared fallbacks on a notification, and the link back to it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("fallback", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fallback_of", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("fallback_of")
        batch.drop_column("fallback")
