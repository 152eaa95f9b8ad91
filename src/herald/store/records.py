"""Plain row shapes crossing the store boundary (dicts and tuples, no ORM objects)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, NotRequired, TypedDict

import orjson

if TYPE_CHECKING:
    from herald.domain.message import RecipientRejection


class NewNotification(TypedDict):
    """A row to insert at accept time."""

    id: str
    channel: str
    status: str
    priority: int
    recipient: str
    recipient_id: str | None
    category: str | None
    payload: str
    metadata: str | None
    idempotency_key: str | None
    request_hash: str | None
    max_attempts: int
    send_at: float
    due_at: float
    expires_at: float | None
    created_at: float
    #: JSON list of prepared fallbacks ({"channel", "recipient", "payload"}), or None.
    fallback: str | None
    #: The notification this one is the fallback of.
    fallback_of: str | None
    #: The template the content was rendered from, and its version (0: a file template).
    template: NotRequired[str | None]
    template_version: NotRequired[int | None]


class Claimed(NamedTuple):
    """A row a worker holds under a lease."""

    id: str
    channel: str
    recipient: str
    payload: str
    priority: int
    attempts: int
    max_attempts: int
    send_at: float
    due_at: float
    expires_at: float | None
    created_at: float
    idempotency_key: str | None
    lease_token: int
    category: str | None


class Outcome(TypedDict):
    """A worker's verdict on one claimed row, written in batches."""

    id: str
    token: int
    status: str
    at: float
    due_at: float | None
    provider: str | None
    provider_message_id: str | None
    last_error: str | None
    results: str | None
    sent_at: float | None
    dup: int  # possible duplicates added by this attempt
    attempts_delta: int  # -1 when the row is released without an attempt


class NewEvent(TypedDict):
    """A timeline entry; written only if its notification's outcome was applied."""

    nid: str
    at: float
    status: str
    provider: str | None
    detail: str | None


class Accepted(NamedTuple):
    """One accepted notification: its id, and whether an idempotency key replayed it."""

    id: str
    replayed: bool


class NewCapture(TypedDict):
    """A copy of a message the capture provider kept."""

    notification_id: str
    channel: str
    provider: str
    recipient: str
    content: str  # JSON
    created_at: float


class MessagePart(TypedDict):
    """One part of a message a provider sent in several, each with its own message id."""

    provider: str
    provider_message_id: str
    notification_id: str
    part: int  # from 1


class GoneUrl(TypedDict):
    """A webhook URL that answered 410 Gone."""

    url: str
    at: float
    notification_id: str
    detail: str | None


def results_json(rejected: Sequence[RecipientRejection]) -> str | None:
    """The ``results`` column: each refused recipient with its code, message and whether
    the address is suppress-worthy (the worker and delivery reports write it alike)."""
    if not rejected:
        return None
    return orjson.dumps(
        [
            {"address": r.address, "code": r.code, "message": r.message, "suppress": r.suppress}
            for r in rejected
        ]
    ).decode()
