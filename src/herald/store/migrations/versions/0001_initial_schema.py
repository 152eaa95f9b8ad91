"""Initial schema: notifications (the queue), their events, captured messages, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_READY = sa.text("status = 'queued'")
_SENDING = sa.text("status = 'sending'")
_SCHEDULED = sa.text("status IN ('scheduled', 'retrying')")
_HAS_RECIPIENT_ID = sa.text("recipient_id IS NOT NULL")
_HAS_KEY = sa.text("idempotency_key IS NOT NULL")
_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipient_id", sa.String(200), nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("possible_duplicates", sa.Integer(), server_default="0", nullable=False),
        sa.Column("send_at", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("lease_token", sa.BigInteger(), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("results", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index(
        "ix_notifications_ready",
        "notifications",
        [sa.text("priority DESC"), "due_at"],
        postgresql_where=_READY,
        sqlite_where=_READY,
    )
    op.create_index(
        "ix_notifications_waiting",
        "notifications",
        ["due_at"],
        postgresql_where=_SCHEDULED,
        sqlite_where=_SCHEDULED,
    )
    op.create_index(
        "ix_notifications_lease",
        "notifications",
        ["lease_expires_at"],
        postgresql_where=_SENDING,
        sqlite_where=_SENDING,
    )
    op.create_index("ix_notifications_status_id", "notifications", ["status", "id"])
    op.create_index("ix_notifications_recipient", "notifications", ["recipient", "id"])
    op.create_index(
        "ix_notifications_recipient_id",
        "notifications",
        ["recipient_id", "id"],
        postgresql_where=_HAS_RECIPIENT_ID,
        sqlite_where=_HAS_RECIPIENT_ID,
    )
    op.create_index(
        "uq_notifications_idempotency_key",
        "notifications",
        ["idempotency_key"],
        unique=True,
        postgresql_where=_HAS_KEY,
        sqlite_where=_HAS_KEY,
    )

    op.create_table(
        "notification_events",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notification_events"),
    )
    op.create_index(
        "ix_notification_events_notification_id",
        "notification_events",
        ["notification_id", "id"],
    )

    op.create_table(
        "captured_messages",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_captured_messages"),
    )
    op.create_index("ix_captured_messages_channel_id", "captured_messages", ["channel", "id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("captured_messages")
    op.drop_table("notification_events")
    op.drop_table("notifications")
