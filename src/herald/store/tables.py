"""Table definitions (SQLAlchemy Core). Times are Unix epoch seconds (double precision).

Epoch floats keep the claim/complete hot path free of datetime parsing on SQLite and make
one set of SQL work on both databases; the API renders them as ISO 8601.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_READY = "status = 'queued'"

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUIDv7: ordered by creation
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    # The primary recipient, normalised (first "to" address), for filtering.
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("recipient_id", sa.String(200)),
    sa.Column("category", sa.String(100)),
    # What will be sent, as rendered at accept time (JSON).
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text),  # caller's metadata (JSON)
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("possible_duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("send_at", sa.Float, nullable=False),  # first due time (send_at or accept time)
    sa.Column("due_at", sa.Float, nullable=False),  # next attempt
    sa.Column("expires_at", sa.Float),
    sa.Column("lease_token", sa.BigInteger),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("provider", sa.String(100)),
    sa.Column("provider_message_id", sa.String(255)),
    sa.Column("last_error", sa.Text),
    sa.Column("results", sa.Text),  # per-recipient outcomes (JSON)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    # Prepared fallbacks (JSON) sent if this one fails; and the one this is a fallback of.
    sa.Column("fallback", sa.Text),
    sa.Column("fallback_of", sa.String(36)),
    # The template (and its version) the content was rendered from.
    sa.Column("template", sa.String(100)),
    sa.Column("template_version", sa.Integer),
    # The claim query walks this partial index: queued rows (all due) in priority order.
    sa.Index(
        "ix_notifications_ready",
        sa.text("priority DESC"),
        "due_at",
        postgresql_where=sa.text(_READY),
        sqlite_where=sa.text(_READY),
    ),
    # Scheduled and retrying rows wait here until due, then are queued.
    sa.Index(
        "ix_notifications_waiting",
        "due_at",
        postgresql_where=sa.text("status IN ('scheduled', 'retrying')"),
        sqlite_where=sa.text("status IN ('scheduled', 'retrying')"),
    ),
    sa.Index(
        "ix_notifications_lease",
        "lease_expires_at",
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    ),
    sa.Index("ix_notifications_status_id", "status", "id"),
    sa.Index("ix_notifications_recipient", "recipient", "id"),
    sa.Index(
        "ix_notifications_recipient_id",
        "recipient_id",
        "id",
        postgresql_where=sa.text("recipient_id IS NOT NULL"),
        sqlite_where=sa.text("recipient_id IS NOT NULL"),
    ),
    # Provider callbacks (delivery reports) look a notification up by the provider's id.
    sa.Index(
        "ix_notifications_provider_message_id",
        "provider_message_id",
        "provider",
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
    ),
    sa.Index(
        "uq_notifications_idempotency_key",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    ),
)

events = sa.Table(
    "notification_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("notification_id", sa.String(36), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(100)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_notification_events_notification_id", "notification_id", "id"),
)

captured = sa.Table(
    "captured_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("notification_id", sa.String(36), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_captured_messages_channel_id", "channel", "id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),  # shown in listings to tell keys apart
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 hex
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    # Every PUT adds a version; versions are never reused, so a notification's
    # (template, template_version) always names what rendered it.
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # JSON: variants, locales, partials
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # Set on every version by DELETE; a later PUT starts a live version again.
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Webhook URLs that answered 410 Gone: later notifications to them fail without a request.
webhook_gone = sa.Table(
    "webhook_gone",
    metadata,
    # SHA-256 hex of the URL: a URL may be longer than an index entry can hold.
    sa.Column("url_hash", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("notification_id", sa.String(36), nullable=False),  # the one that got the 410
    sa.Column("detail", sa.Text),
)

# Values Herald generates once and keeps (e.g. the default webhook signing secret).
stored_settings = sa.Table(
    "stored_settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Delivery reports that arrived before Herald had recorded the send they are about (their
# provider message id matched no notification yet); the worker applies them once it does.
pending_delivery_reports = sa.Table(
    "pending_delivery_reports",
    metadata,
    # Arrival order: parked reports are applied in it.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("provider_message_id", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # ReportedState
    sa.Column("provider_status", sa.String(100), nullable=False),
    # The classified error, if any: kind as herald.domain.delivery_reports.describe words it.
    sa.Column("error_kind", sa.String(32)),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index("ix_pending_delivery_reports_provider_message_id", "provider_message_id", "provider"),
    sa.Index("ix_pending_delivery_reports_received_at", "received_at"),
)

# Every part's provider message id, for messages a provider sent in several parts (a long
# SMS through Vonage) so that each part's delivery report finds the notification; written
# with the outcome, for multipart sends only. ``state``: the part's last final report.
message_parts = sa.Table(
    "message_parts",
    metadata,
    sa.Column("provider_message_id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(100), primary_key=True),
    sa.Column("notification_id", sa.String(36), nullable=False),
    sa.Column("part", sa.SmallInteger, nullable=False),
    sa.Column("state", sa.String(16)),  # ReportedState: delivered or failed
    sa.Index("ix_message_parts_notification_id", "notification_id"),
)
