"""The capture provider: keeps messages instead of sending them (a built-in outbox).

Used for every channel with no provider configured, so a fresh ``herald serve`` works and
every message can be inspected with ``GET /v1/captured``.
"""

from __future__ import annotations

from typing import Any

from herald.domain.channels import Channel
from herald.domain.message import Address, Delivery, Email, Receipt
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
            captured=_content(delivery.content),
        )

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _content(email: Email) -> dict[str, Any]:
    sender = email.sender or _DEFAULT_SENDER
    return {
        "from": sender.formatted(),
        "to": [a.formatted() for a in email.to],
        "cc": [a.formatted() for a in email.cc],
        "bcc": [a.formatted() for a in email.bcc],
        "reply_to": [a.formatted() for a in email.reply_to],
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "headers": dict(email.headers),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "content_id": a.content_id}
            for a in email.attachments
        ],
        "message_id": email.message_id,
        "raw": build_email_bytes(email, sender).decode("utf-8", "replace"),
    }
