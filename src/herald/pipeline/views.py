"""What callers see of a notification (API responses and library return values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field


class EventView(BaseModel):
    """One entry of a notification's timeline."""

    at: datetime
    status: str
    actor: str = Field(description="`api`, `worker:<host>:<pid>`, `scheduler`, `reaper`…")
    provider: str | None = None
    detail: str | None = Field(default=None, description="What happened; the provider's reply.")


class RejectedRecipient(BaseModel):
    address: str
    code: str | None = None
    message: str
    suppress: bool = Field(description="The address is bad or opted out; stop sending to it.")


class AttachmentView(BaseModel):
    filename: str
    content_type: str
    size: int
    content_id: str | None = None


class EmailContent(BaseModel):
    """The email as it will be (or was) sent."""

    from_: str | None = Field(default=None, alias="from")
    to: list[str]
    cc: list[str] = []
    bcc: list[str] = []
    reply_to: list[str] = []
    subject: str
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = {}
    attachments: list[AttachmentView] = []
    message_id: str


class NotificationView(BaseModel):
    id: str
    channel: str
    status: str
    to: list[str]
    subject: str | None = Field(default=None, description="Email subject, or push/chat title.")
    recipient_id: str | None = None
    category: str | None = None
    priority: int
    attempts: int = 0
    max_attempts: int
    possible_duplicates: int = Field(
        default=0, description="Attempts whose outcome was unknown and were retried."
    )
    provider: str | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    rejected_recipients: list[RejectedRecipient] = []
    idempotency_key: str | None = None
    replayed: bool = Field(
        default=False, description="True when an idempotency key returned an earlier result."
    )
    metadata: dict[str, Any] | None = None
    send_at: datetime
    expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    fallback_of: str | None = Field(
        default=None, description="The notification this one is the fallback of."
    )
    fallback: list[str] = Field(
        default=[], description="Fallback channels still to try if this one fails."
    )
    template: str | None = Field(default=None, description="The template it was rendered from.")
    template_version: int | None = Field(
        default=None, description="That template's version (0: a folder or built-in template)."
    )
    content: EmailContent | dict[str, Any] | None = Field(
        default=None,
        description="Only on `GET /v1/notifications/{id}`: the email, or the SMS, push, "
        "webhook or chat content as stored.",
    )
    events: list[EventView] | None = Field(
        default=None, description="The timeline; only on `GET /v1/notifications/{id}`."
    )


class AcceptedItem(BaseModel):
    """One notification of an accepted batch (GET it for the details)."""

    id: str
    status: str
    idempotency_key: str | None = None
    replayed: bool = Field(
        default=False, description="True when an idempotency key returned an earlier result."
    )


def notification_view(
    row: Mapping[Any, Any],
    *,
    events: Sequence[Mapping[Any, Any]] | None = None,
    with_content: bool = False,
    replayed: bool = False,
) -> NotificationView:
    """Build the view from a stored row (or a just-accepted one, before it has history)."""
    payload = orjson.loads(row["payload"])
    email = row["channel"] == "email"
    results = row.get("results")
    fallback = row.get("fallback")
    return NotificationView(
        id=row["id"],
        channel=row["channel"],
        status=row["status"],
        to=[_formatted(a) for a in payload["to"]] if email else _recipients(payload),
        subject=payload.get("subject") if email else payload.get("title"),
        recipient_id=row["recipient_id"],
        category=row["category"],
        priority=row["priority"],
        attempts=row.get("attempts", 0),
        max_attempts=row["max_attempts"],
        possible_duplicates=row.get("possible_duplicates", 0),
        provider=row.get("provider"),
        provider_message_id=row.get("provider_message_id"),
        last_error=row.get("last_error"),
        rejected_recipients=orjson.loads(results) if results else [],
        idempotency_key=row["idempotency_key"],
        replayed=replayed,
        metadata=orjson.loads(row["metadata"]) if row["metadata"] else None,
        send_at=as_datetime(row["send_at"]),
        expires_at=as_datetime(row["expires_at"]) if row["expires_at"] is not None else None,
        created_at=as_datetime(row["created_at"]),
        updated_at=as_datetime(row.get("updated_at") or row["created_at"]),
        sent_at=as_datetime(row["sent_at"]) if row.get("sent_at") is not None else None,
        fallback_of=row.get("fallback_of"),
        fallback=[f["channel"] for f in orjson.loads(fallback)] if fallback else [],
        template=row.get("template"),
        template_version=row.get("template_version"),
        content=(_content(payload) if email else payload) if with_content else None,
        events=[_event(e) for e in events] if events is not None else None,
    )


def _recipients(payload: dict[str, Any]) -> list[str]:
    """The one recipient of a non-email notification (a chat message may have none)."""
    to = payload.get("url") or payload.get("to")
    return [to] if to else []


def _content(payload: dict[str, Any]) -> EmailContent:
    return EmailContent.model_validate(
        {
            "from": _formatted(payload["from"]) if payload.get("from") else None,
            "to": [_formatted(a) for a in payload["to"]],
            "cc": [_formatted(a) for a in payload["cc"]],
            "bcc": [_formatted(a) for a in payload["bcc"]],
            "reply_to": [_formatted(a) for a in payload["reply_to"]],
            "subject": payload["subject"],
            "text": payload["text"],
            "html": payload["html"],
            "headers": dict(payload["headers"]),
            "attachments": [
                {
                    "filename": a["filename"],
                    "content_type": a["content_type"],
                    "size": len(a["content_base64"]) * 3 // 4 - a["content_base64"][-2:].count("="),
                    "content_id": a["content_id"],
                }
                for a in payload["attachments"]
            ],
            "message_id": payload["message_id"],
        }
    )


def _event(row: Mapping[Any, Any]) -> EventView:
    return EventView(
        at=as_datetime(row["at"]),
        status=row["status"],
        actor=row["actor"],
        provider=row["provider"],
        detail=row["detail"],
    )


def _formatted(address: Sequence[str]) -> str:
    name, addr = address
    return f"{name} <{addr}>" if name else addr


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
