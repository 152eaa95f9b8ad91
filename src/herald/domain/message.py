"""What a provider is handed to deliver: plain, immutable values built by the worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from herald.domain.channels import Channel


class Address(NamedTuple):
    """An email address with an optional display name (``name`` may be empty)."""

    name: str
    addr: str

    def formatted(self) -> str:
        """``Name <addr>`` or the bare address, for logs and API output (not for headers)."""
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    #: Base64 of the content, validated at accept time (no line breaks).
    content_base64: str
    #: Set for inline parts referenced from HTML as ``cid:<content_id>``.
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Email:
    """An email as accepted: the provider adds its default sender when ``sender`` is None."""

    message_id: str  # without angle brackets; stable for the notification's lifetime
    date: float  # Unix time the notification was accepted
    subject: str
    to: tuple[Address, ...]
    sender: Address | None = None
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    text: str | None = None
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Email:
        """The inverse of :func:`email_payload`."""
        sender = payload.get("from")
        return cls(
            message_id=payload["message_id"],
            date=payload["date"],
            subject=payload["subject"],
            sender=Address(*sender) if sender else None,
            to=tuple(Address(*a) for a in payload["to"]),
            cc=tuple(Address(*a) for a in payload["cc"]),
            bcc=tuple(Address(*a) for a in payload["bcc"]),
            reply_to=tuple(Address(*a) for a in payload["reply_to"]),
            text=payload["text"],
            html=payload["html"],
            headers=tuple((name, value) for name, value in payload["headers"]),
            attachments=tuple(Attachment(**a) for a in payload["attachments"]),
        )

    @property
    def envelope_recipients(self) -> list[str]:
        """Every RCPT TO address (to, cc and bcc), without duplicates, in order."""
        seen: dict[str, None] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.addr, None)
        return list(seen)


def email_payload(
    *,
    message_id: str,
    date: float,
    subject: str,
    sender: Address | None,
    to: Sequence[Address],
    cc: Sequence[Address],
    bcc: Sequence[Address],
    reply_to: Sequence[Address],
    text: str | None,
    html: str | None,
    headers: Sequence[tuple[str, str]],
    attachments: Sequence[Attachment],
) -> dict[str, Any]:
    """An email's stored form, the inverse of :meth:`Email.from_payload`.

    The accept path builds this directly (no :class:`Email` in between: at 10,000
    notifications a second every microsecond shows).
    """
    return {
        "message_id": message_id,
        "date": date,
        "subject": subject,
        "from": list(sender) if sender else None,
        "to": [list(a) for a in to],
        "cc": [list(a) for a in cc],
        "bcc": [list(a) for a in bcc],
        "reply_to": [list(a) for a in reply_to],
        "text": text,
        "html": html,
        "headers": [list(h) for h in headers],
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "content_base64": a.content_base64,
                "content_id": a.content_id,
            }
            for a in attachments
        ],
    }


@dataclass(frozen=True, slots=True)
class Sms:
    """A text message: ``to`` in E.164; ``segments`` as counted at accept time."""

    to: str
    body: str
    segments: int = 1
    encoding: str = "GSM-7"  # or "UCS-2"


@dataclass(frozen=True, slots=True)
class Push:
    """A push notification to one device (or one Web Push subscription)."""

    to: str  # an FCM registration token, an APNs device token, or a Web Push subscription
    title: str | None = None
    body: str | None = None
    badge: int | None = None
    link: str | None = None  # deep link opened on tap
    data: dict[str, str] = field(default_factory=dict)
    ttl: int | None = None  # seconds the push service may keep it for an offline device
    collapse_key: str | None = None  # a newer push with the same key replaces an older one

    @property
    def platform(self) -> str:
        """``webpush``, ``apns`` or ``fcm``, from the shape of ``to``."""
        return push_platform(self.to)


@dataclass(frozen=True, slots=True)
class Webhook:
    """A JSON POST of ``data`` to ``url``, in the Standard Webhooks envelope."""

    url: str
    event_type: str
    data: dict[str, Any]
    #: Unix time of the event (the notification's acceptance): the envelope's timestamp.
    created_at: float


@dataclass(frozen=True, slots=True)
class Chat:
    """A message to the configured chat destinations (Slack, Teams, Matrix…)."""

    body: str
    title: str | None = None
    to: str | None = None  # a label for the destination, when the caller gives one


Content = Email | Sms | Push | Webhook | Chat


def push_platform(to: str) -> str:
    """Which push service a token belongs to: a JSON object is a Web Push subscription,
    hexadecimal is an APNs device token, anything else an FCM registration token."""
    if to.startswith("{"):
        return "webpush"
    if len(to) >= 64 and all(c in "0123456789abcdefABCDEF" for c in to):
        return "apns"
    return "fcm"


def content_payload(content: Content) -> dict[str, Any]:
    """The stored form of any channel's content (see :func:`content_from_payload`)."""
    if isinstance(content, Email):
        return email_payload(
            message_id=content.message_id,
            date=content.date,
            subject=content.subject,
            sender=content.sender,
            to=content.to,
            cc=content.cc,
            bcc=content.bcc,
            reply_to=content.reply_to,
            text=content.text,
            html=content.html,
            headers=content.headers,
            attachments=content.attachments,
        )
    return {name: getattr(content, name) for name in content.__slots__}


def content_from_payload(channel: Channel, payload: dict[str, Any]) -> Content:
    """Rebuild the content stored at accept time."""
    if channel is Channel.EMAIL:
        return Email.from_payload(payload)
    kind: type[Sms | Push | Webhook | Chat] = _KINDS[channel]
    return kind(**payload)


_KINDS: dict[Channel, type[Sms | Push | Webhook | Chat]] = {
    Channel.SMS: Sms,
    Channel.PUSH: Push,
    Channel.WEBHOOK: Webhook,
    Channel.CHAT: Chat,
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt at one notification, as handed to a provider."""

    notification_id: str
    channel: Channel
    attempt: int
    content: Content
    #: Stable per notification: passed to providers that deduplicate on a key.
    idempotency_key: str = ""
    #: The notification's category, for providers that tag messages with it.
    category: str | None = None


@dataclass(frozen=True, slots=True)
class RecipientRejection:
    """One recipient of a multi-recipient message refused while others were accepted."""

    address: str
    code: str | None
    message: str
    suppress: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's proof of acceptance."""

    provider_message_id: str | None = None
    #: Every part's message id, in order, when the provider sent the message in several
    #: parts that it reports on separately (the first is ``provider_message_id``).
    parts: tuple[str, ...] = ()
    #: The provider's reply, for the timeline (e.g. ``250 2.0.0 Ok: queued as 4Xk2``).
    detail: str | None = None
    rejected: tuple[RecipientRejection, ...] = ()
    #: What the capture provider keeps, persisted by the worker.
    captured: dict[str, object] | None = field(default=None)
