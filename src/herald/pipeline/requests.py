"""The notification request, as accepted by the HTTP API and the library."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from herald.domain.channels import Channel


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _one_or_many_schema(min_items: int) -> WithJsonSchema:
    # What clients may send (a string or a list), not the list it is turned into.
    array: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if min_items:
        array["minItems"] = min_items
    return WithJsonSchema({"anyOf": [{"type": "string"}, array]})


def _not_empty(value: list[str] | None) -> list[str] | None:
    if value is not None and not value:
        raise ValueError("needs at least one recipient (or leave it out)")
    return value


Recipients = Annotated[list[str], BeforeValidator(_one_or_many), _one_or_many_schema(0)]
PrimaryRecipients = Annotated[
    list[str] | None,
    BeforeValidator(_one_or_many),
    AfterValidator(_not_empty),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "null"},
            ]
        }
    ),
]

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
#: The length of the idempotency_key column.
MAX_IDEMPOTENCY_KEY = 255


def no_control_characters(value: str) -> str:
    # Stored in plain text columns: PostgreSQL refuses NUL, and no id needs a line break.
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _representable(value: datetime) -> datetime:
    # "9999-12-31T23:59:59-12:00" parses, but is past the last datetime Python can show in UTC.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range (in UTC, between years 1 and 9999)") from None
    return value


Identifier = Annotated[str, AfterValidator(no_control_characters)]
Moment = Annotated[AwareDatetime, AfterValidator(_representable)]


class AttachmentIn(BaseModel):
    """A file to attach; ``content_id`` makes it an inline part (``<img src="cid:…">``)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str | None = Field(
        default=None, max_length=255, description="Guessed from the filename when omitted."
    )
    content_base64: str = Field(description="The file's bytes, base64-encoded.")
    content_id: str | None = Field(default=None, min_length=1, max_length=255)


class NotificationRequest(BaseModel):
    """One notification. Unknown fields are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: Channel
    to: PrimaryRecipients = Field(
        default=None,
        description="Who gets it: email address(es), an E.164 phone number (sms), a device "
        "token or Web Push subscription JSON (push), an http(s) URL (webhook); optional "
        "for chat.",
    )
    recipient_id: Identifier | None = Field(
        default=None, max_length=200, description="Your id for the recipient, for filtering."
    )
    sender: str | None = Field(
        default=None,
        alias="from",
        max_length=998,
        description="Overrides the provider's default sender, e.g. `Support <help@x.org>`.",
    )
    subject: str | None = Field(default=None, max_length=998)
    html: str | None = None
    text: str | None = Field(default=None, description="Derived from `html` when omitted.")
    cc: Recipients | None = None
    bcc: Recipients | None = None
    reply_to: Recipients | None = None
    headers: dict[str, str] | None = None
    attachments: list[AttachmentIn] | None = None
    body: str | None = Field(default=None, description="The text of an SMS, push or chat message.")
    title: str | None = Field(default=None, max_length=1000, description="Push and chat title.")
    badge: int | None = Field(default=None, ge=0, le=99_999, description="Push: the app badge.")
    link: str | None = Field(
        default=None, max_length=2048, description="Push: the deep link opened on tap."
    )
    ttl: int | None = Field(
        default=None,
        ge=0,
        le=2_419_200,
        description="Push: seconds the push service keeps it for an offline device.",
    )
    collapse_key: Identifier | None = Field(
        default=None,
        max_length=64,
        description="Push: a newer notification with the same key replaces an older one.",
    )
    template: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$",
        description="Render the content from this template (see `/v1/templates`) with `data`.",
    )
    locale: str | None = Field(
        default=None,
        max_length=35,
        pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$",
        description="With a template: the locale variant to use (`fr-CA` falls back to `fr`, "
        "then to the default).",
    )
    data: dict[str, Any] | None = Field(
        default=None,
        description="With a template: its variables. Otherwise push: custom data for the app; "
        "webhook: the JSON object to deliver.",
    )
    fallback: list[Channel] | None = Field(
        default=None,
        description="Channels to try, in order, if this one fails permanently or dies.",
    )
    fallback_to: dict[Channel, str] | None = Field(
        default=None, description="The recipient on each fallback channel."
    )
    category: str | None = Field(
        default=None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
    )
    priority: int = Field(default=5, ge=0, le=9, description="9 is the most urgent.")
    send_at: Moment | None = Field(default=None, description="Deliver no earlier.")
    expires_at: Moment | None = Field(
        default=None, description="Give up (status `expired`) if not sent by then."
    )
    idempotency_key: Identifier | None = Field(
        default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY
    )
    metadata: dict[str, Any] | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notifications: list[NotificationRequest] = Field(min_length=1, max_length=1000)
