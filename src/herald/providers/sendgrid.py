"""Email through SendGrid's v3 Mail Send API (``POST /v3/mail/send``).

``sendgrid://API_KEY@?from=noreply@example.org`` — see ``docs/providers.md``. SendGrid has
no idempotency key: Herald's goes in ``custom_args`` (it comes back on SendGrid's event
webhook), and a timeout after the request left is an UnknownOutcome, not a failover.
"""

from __future__ import annotations

import time
from typing import Any, Final

from herald.domain.errors import DeliveryError, PermanentError, TransientError
from herald.domain.message import Address, Delivery, Email, Receipt
from herald.providers.base import content_of
from herald.providers.email_api import (
    EmailApiProvider,
    post_json,
    unique,
)
from herald.providers.http import (
    HttpResponse,
    classify_status,
    retry_after,
)

DEFAULT_BASE_URL: Final = "https://api.sendgrid.com"
#: ``custom_args`` keys Herald sets on every message.
IDEMPOTENCY_ARG: Final = "herald_idempotency_key"
NOTIFICATION_ARG: Final = "herald_notification_id"


class SendGridProvider(EmailApiProvider):
    """Delivers email with one Mail Send request per message."""

    default_base_url = DEFAULT_BASE_URL
    path = "/v3/mail/send"

    async def send(self, delivery: Delivery) -> Receipt:
        content = content_of(delivery, Email, self.name)
        response = await post_json(
            self._client,
            self._endpoint,
            mail_send_body(delivery, content, self.settings.sender),
            headers=self._headers,
            idempotent=False,
        )
        error = classify_sendgrid(response, what=self.name)
        if error is not None:
            raise error
        message_id = response.headers.get("X-Message-Id")
        return Receipt(provider_message_id=message_id, detail=f"{response.status} accepted")


def mail_send_body(delivery: Delivery, content: Email, default_sender: Address) -> dict[str, Any]:
    """The v3 Mail Send JSON for one message."""
    seen: set[str] = set()
    personalization: dict[str, Any] = {"to": [_address(a) for a in unique(content.to, seen)]}
    # SendGrid refuses an address that appears twice in one personalization (400).
    for field, addresses in (("cc", content.cc), ("bcc", content.bcc)):
        kept = unique(addresses, seen)
        if kept:
            personalization[field] = [_address(a) for a in kept]
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": _address(content.sender or default_sender),
        "subject": content.subject,
        # SendGrid requires text/plain first, then text/html.
        "content": [
            {"type": kind, "value": value}
            for kind, value in (("text/plain", content.text), ("text/html", content.html))
            if value is not None
        ],
        "headers": {**dict(content.headers), "Message-ID": f"<{content.message_id}>"},
        "custom_args": {
            IDEMPOTENCY_ARG: delivery.idempotency_key,
            NOTIFICATION_ARG: delivery.notification_id,
        },
    }
    if len(content.reply_to) == 1:
        body["reply_to"] = _address(content.reply_to[0])
    elif content.reply_to:
        body["reply_to_list"] = [_address(a) for a in content.reply_to]
    if content.attachments:
        body["attachments"] = [
            {
                "content": a.content_base64,
                "type": a.content_type,
                "filename": a.filename,
                "disposition": "inline" if a.content_id else "attachment",
                **({"content_id": a.content_id} if a.content_id else {}),
            }
            for a in content.attachments
        ]
    if delivery.category:
        body["categories"] = [delivery.category]
    return body


def _address(address: Address) -> dict[str, str]:
    return (
        {"email": address.addr, "name": address.name} if address.name else {"email": address.addr}
    )


def classify_sendgrid(response: HttpResponse, *, what: str) -> DeliveryError | None:
    """None on 2xx. 400/413 permanent; 401/403 permanent but not the recipient's fault;
    429 transient until ``X-RateLimit-Reset``; 5xx transient."""
    status = response.status
    if 200 <= status < 300:
        return None
    reason = f"{what}: HTTP {status}: {_errors(response)}"
    code = str(status)
    if status == 429:
        return TransientError(reason, code=code, retry_after=_rate_limit_reset(response))
    if status >= 500:
        return TransientError(reason, code=code, retry_after=retry_after(response.headers))
    if status in {401, 403}:
        return PermanentError(reason, code=code, recipient_fault=False)
    if status in {400, 413}:
        return PermanentError(reason, code=code)
    return classify_status(response, what=what)


def _errors(response: HttpResponse) -> str:
    """``{"errors": [{"message", "field", "help"}]}`` as one line."""
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return response.text()[:300].strip() or "no detail"
    parts = []
    for error in errors[:5]:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message") or "error")
        field = error.get("field")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts) or "no detail"


def _rate_limit_reset(response: HttpResponse) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), else ``Retry-After``."""
    reset = response.headers.get("X-RateLimit-Reset", "").strip()
    if reset.isdigit():
        return max(float(reset) - time.time(), 0.0)
    return retry_after(response.headers)
