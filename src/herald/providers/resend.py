"""Email through Resend's API (``POST /emails``).

``resend://API_KEY@?from=noreply@example.org`` — see ``docs/providers.md``. Every request
carries Herald's stable per-notification key as ``Idempotency-Key``, so Resend sends a
retried message once (within its 24-hour window) even when the first response was lost.
"""

from __future__ import annotations

import re
from typing import Any, Final

from herald.domain.errors import DeliveryError, PermanentError, TransientError
from herald.domain.message import Address, Delivery, Email, Receipt
from herald.providers.base import content_of
from herald.providers.email_api import (
    EmailApiProvider,
    mailbox,
    post_json,
)
from herald.providers.http import (
    HttpResponse,
    classify_status,
    retry_after,
)

DEFAULT_BASE_URL: Final = "https://api.resend.com"
# Tag names and values: ASCII letters, digits, underscores and dashes, at most 256.
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Error names that say Herald's side (key, sender) is wrong, not the message's recipient.
_NOT_RECIPIENT: Final = frozenset(
    {"missing_api_key", "invalid_api_key", "restricted_api_key", "invalid_from_address"}
)
_TRANSIENT: Final = frozenset(
    {
        "concurrent_idempotent_requests",
        "rate_limit_exceeded",
        "daily_quota_exceeded",
        "monthly_quota_exceeded",
        "application_error",
        "internal_server_error",
    }
)


class ResendProvider(EmailApiProvider):
    """Delivers email with one ``POST /emails`` per message."""

    default_base_url = DEFAULT_BASE_URL
    path = "/emails"

    async def send(self, delivery: Delivery) -> Receipt:
        content = content_of(delivery, Email, self.name)
        response = await post_json(
            self._client,
            self._endpoint,
            emails_body(delivery, content, self.settings.sender),
            headers={
                **self._headers,
                "Idempotency-Key": delivery.idempotency_key,
            },
            idempotent=True,
        )
        error = classify_resend(response, what=self.name)
        if error is not None:
            raise error
        body = response.json()
        message_id = body.get("id") if isinstance(body, dict) else None
        return Receipt(
            provider_message_id=str(message_id) if message_id else None,
            detail=f"{response.status} accepted",
        )


def emails_body(delivery: Delivery, content: Email, default_sender: Address) -> dict[str, Any]:
    """The ``POST /emails`` JSON for one message."""
    body: dict[str, Any] = {
        "from": mailbox(content.sender or default_sender),
        "to": [mailbox(a) for a in content.to],
        "subject": content.subject,
        "headers": {**dict(content.headers), "Message-ID": f"<{content.message_id}>"},
    }
    for field, addresses in (
        ("cc", content.cc),
        ("bcc", content.bcc),
        ("reply_to", content.reply_to),
    ):
        if addresses:
            body[field] = [mailbox(a) for a in addresses]
    if content.text is not None:
        body["text"] = content.text
    if content.html is not None:
        body["html"] = content.html
    if content.attachments:
        body["attachments"] = [
            {
                "filename": a.filename,
                "content": a.content_base64,
                "content_type": a.content_type,
                **({"content_id": a.content_id} if a.content_id else {}),
            }
            for a in content.attachments
        ]
    if delivery.category:
        body["tags"] = [{"name": "category", "value": _TAG_UNSAFE.sub("_", delivery.category)}]
    return body


def classify_resend(response: HttpResponse, *, what: str) -> DeliveryError | None:
    """None on 2xx; otherwise by Resend's error ``name`` (docs/providers.md has the table)."""
    status = response.status
    if 200 <= status < 300:
        return None
    body = response.json()
    name = str(body.get("name") or "") if isinstance(body, dict) else ""
    detail = str(body.get("message") or "") if isinstance(body, dict) else ""
    detail = detail or response.text()[:300].strip() or "no detail"
    reason = f"{what}: HTTP {status} {name or 'error'}: {detail}"
    code = name or str(status)
    if name in _TRANSIENT or status == 429 or status >= 500:
        return TransientError(reason, code=code, retry_after=retry_after(response.headers))
    if name in _NOT_RECIPIENT or status in {401, 403}:
        return PermanentError(reason, code=code, recipient_fault=False)
    if 400 <= status < 500:
        # validation_error, invalid_idempotent_request, invalid_attachment, not_found, …
        return PermanentError(reason, code=code)
    return classify_status(response, what=what, code=code)
