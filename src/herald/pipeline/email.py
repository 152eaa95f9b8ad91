"""Accept-time checks and preparation of an email: what the worker will send, as JSON."""

from __future__ import annotations

import binascii
import mimetypes
import re
from dataclasses import dataclass
from email.policy import SMTP
from functools import lru_cache
from typing import Any

import html2text

from herald.domain.addresses import InvalidAddress, parse_email_address
from herald.domain.message import Address, Attachment, email_payload
from herald.pipeline.prepared import Prepared
from herald.pipeline.requests import NotificationRequest

# Headers Herald writes itself; callers set them through fields, or not at all.
_RESERVED_HEADERS = {
    "from": "use the `from` field",
    "to": "use the `to` field",
    "cc": "use the `cc` field",
    "bcc": "use the `bcc` field",
    "reply-to": "use the `reply_to` field",
    "subject": "use the `subject` field",
    "date": "Herald sets it",
    "message-id": "Herald sets it (stable across retries)",
    "mime-version": "Herald sets it",
    "sender": "use the `from` field",
    "return-path": "set by the receiving server",
}
# RFC 5322 field name: printable US-ASCII except colon.
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
# Control characters other than tab are never legitimate in a header value.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_CONTENT_ID = re.compile(r"[!-~]+")  # visible ASCII, no spaces or brackets checked below


@dataclass(frozen=True, slots=True)
class EmailLimits:
    max_message_bytes: int
    max_recipients: int


@dataclass(frozen=True, slots=True)
class PreparedEmail:
    payload: dict[str, Any]  # see herald.domain.message.email_payload
    recipient: str  # primary recipient, lowercased, for filtering


def prepare_email(
    request: NotificationRequest,
    *,
    notification_id: str,
    now: float,
    limits: EmailLimits,
    message_id_domain: str,
) -> Prepared | dict[str, str]:
    """The stored payload, or field errors (field path -> reason).

    The Message-ID is fixed here, once, so every retry (and every failover provider) sends
    the same one: receivers can deduplicate on it.
    """
    errors: dict[str, str] = {}
    if not request.to:
        return {"to": "an email needs at least one recipient"}
    to = _addresses(request.to, "to", errors)
    cc = _addresses(request.cc or [], "cc", errors)
    bcc = _addresses(request.bcc or [], "bcc", errors)
    reply_to = _addresses(request.reply_to or [], "reply_to", errors)
    sender = _addresses([request.sender], "from", errors, single=True) if request.sender else []
    if len(to) + len(cc) + len(bcc) > limits.max_recipients:
        errors["to"] = f"at most {limits.max_recipients} recipients (to, cc and bcc together)"

    if request.subject is None:
        errors["subject"] = "an email needs a subject"
    elif _HEADER_CONTROL.search(request.subject):
        errors["subject"] = "must not contain line breaks or control characters"
    if request.html is None and request.text is None:
        errors["html"] = "an email needs `html` or `text` (or both)"
    for name in ("html", "text"):
        body = getattr(request, name)
        if body is not None and "\0" in body:
            errors[name] = "must not contain NUL characters"

    headers = _headers(request.headers or {}, errors)
    attachments, attachment_bytes = _attachments(request, errors)
    if errors:
        return errors

    text = request.text if request.text is not None else text_from_html(request.html or "")
    size = (
        len((request.subject or "").encode())
        + len(text.encode())
        + len((request.html or "").encode())
        + attachment_bytes
    )
    if size > limits.max_message_bytes:
        return {
            "attachments" if attachment_bytes else "html": (
                f"the message is {size:,} bytes; the limit is {limits.max_message_bytes:,}"
            )
        }
    domain = sender[0].addr.rsplit("@", 1)[1] if sender else message_id_domain
    payload = email_payload(
        message_id=f"{notification_id}@{domain}",
        date=now,
        subject=request.subject or "",
        sender=sender[0] if sender else None,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        text=text,
        html=request.html,
        headers=headers,
        attachments=attachments,
    )
    return Prepared(payload=payload, recipient=to[0].addr.lower())


def _addresses(
    values: list[str], field: str, errors: dict[str, str], *, single: bool = False
) -> list[Address]:
    parsed: list[Address] = []
    for index, value in enumerate(values):
        try:
            parsed.append(parse_email_address(value))
        except InvalidAddress as exc:
            path = field if single or len(values) == 1 else f"{field}[{index}]"
            errors[path] = f"{value!r} is not a valid email address: {exc}"
    return parsed


def _headers(headers: dict[str, str], errors: dict[str, str]) -> list[tuple[str, str]]:
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        path = f"headers.{name}"
        reserved = _RESERVED_HEADERS.get(name.lower())
        if not _HEADER_NAME.fullmatch(name):
            errors[path] = "not a valid header name (printable ASCII, no colon or spaces)"
        elif reserved or name.lower().startswith("content-"):
            reason = reserved or "Herald sets the MIME structure"
            errors[path] = f"cannot be set as a custom header: {reason}"
        elif _HEADER_CONTROL.search(value):
            errors[path] = "must not contain line breaks or control characters"
        elif problem := _header_problem(name, value):
            errors[path] = problem
        else:
            checked.append((name, value))
    return checked


def _header_problem(name: str, value: str) -> str | None:
    """What the email package, which builds the message, makes of a header: it parses
    structured ones (``Resent-To``, ``Resent-Date``…) and raises on some malformed values.
    That must be a 422 here, not a crash in the worker at every attempt."""
    try:
        parsed = SMTP.header_store_parse(name, value)[1]
    except Exception:  # IndexError, ValueError… whatever the parser trips on
        return f"not a valid {name} header"
    defects = getattr(parsed, "defects", ())
    return f"not a valid {name} header: {defects[0]}" if defects else None


def _attachments(
    request: NotificationRequest, errors: dict[str, str]
) -> tuple[list[Attachment], int]:
    prepared: list[Attachment] = []
    total = 0
    for index, attachment in enumerate(request.attachments or []):
        path = f"attachments[{index}]"
        if _HEADER_CONTROL.search(attachment.filename) or "/" in attachment.filename:
            errors[f"{path}.filename"] = "must not contain slashes, line breaks or control chars"
            continue
        content_type = attachment.content_type or (
            mimetypes.guess_type(attachment.filename)[0] or "application/octet-stream"
        )
        if not _CONTENT_TYPE.fullmatch(content_type):
            errors[f"{path}.content_type"] = f"{content_type!r} is not a type/subtype"
            continue
        if attachment.content_id is not None and (
            not _CONTENT_ID.fullmatch(attachment.content_id) or "<" in attachment.content_id
        ):
            errors[f"{path}.content_id"] = "visible ASCII only, without angle brackets"
            continue
        encoded = "".join(attachment.content_base64.split())
        try:
            total += len(binascii.a2b_base64(encoded, strict_mode=True))
        except ValueError as exc:  # binascii.Error, or non-ASCII input
            errors[f"{path}.content_base64"] = f"not valid base64: {exc}"
            continue
        prepared.append(
            Attachment(
                filename=attachment.filename,
                content_type=content_type.lower(),
                content_base64=encoded,
                content_id=attachment.content_id,
            )
        )
    return prepared, total


@lru_cache(maxsize=256)
def text_from_html(html: str) -> str:
    """A readable plain-text alternative (links kept as Markdown-style references).

    Cached: bulk sends usually share one HTML body, and html2text costs ~1 ms a kilobyte.
    """
    converter = html2text.HTML2Text()
    converter.body_width = 0  # the MIME layer folds; don't hard-wrap prose here
    converter.ignore_images = True
    return str(converter.handle(html)).strip() + "\n"
