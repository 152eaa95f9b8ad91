"""The capture provider: keeps messages instead of sending them (a built-in outbox).

Used for every channel with no provider configured, so a fresh ``herald serve`` works and
every message can be inspected with ``GET /v1/captured``.
"""

from __future__ import annotations

from typing import Any

from herald.domain.channels import Channel
from herald.domain.message import Address, Content, Delivery, Email, Receipt, content_payload
from herald.domain.mime import build_email_bytes
from herald.providers.base import ProviderURL

_DEFAULT_SENDER = Address("Herald", "herald@localhost")


class CaptureProvider:
    """Accepts everything; the worker stores what it receives in ``captured_messages``."""

    def __init__(self, channel: Channel, *, name: str = "capture") -> None:
        self.name = name
        self.channel = channel

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str, channel: Channel) -> CaptureProvider:
        return cls(channel, name=name)

    async def send(self, delivery: Delivery) -> Receipt:
        return Receipt(
            provider_message_id=f"captured-{delivery.notification_id}",
            detail="captured, not sent",
            captured=captured_content(delivery.content),
        )

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def captured_content(content: Content) -> dict[str, Any]:
    """What the outbox shows: the content as sent; for email, also the raw message."""
    if not isinstance(content, Email):
        return content_payload(content)
    sender = content.sender or _DEFAULT_SENDER
    return {
        "from": sender.formatted(),
        "to": [a.formatted() for a in content.to],
        "cc": [a.formatted() for a in content.cc],
        "bcc": [a.formatted() for a in content.bcc],
        "reply_to": [a.formatted() for a in content.reply_to],
        "subject": content.subject,
        "text": content.text,
        "html": content.html,
        "headers": dict(content.headers),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "content_id": a.content_id}
            for a in content.attachments
        ],
        "message_id": content.message_id,
        "raw": build_email_bytes(content, sender).decode("utf-8", "replace"),
    }
