"""Templates, versioned; and the template a notification was rendered from.

Revision ID: 0003_templates
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_templates"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("name", "version", name="pk_templates"),
    )
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("template", sa.String(100), nullable=True))
        batch.add_column(sa.Column("template_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("template_version")
        batch.drop_column("template")
    op.drop_table("templates")
