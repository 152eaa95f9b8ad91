"""Email through Postmark's API (``POST /email``).

``postmark://SERVER_TOKEN@?from=noreply@example.org`` — see ``docs/providers.md``. Postmark
answers API errors with an ``ErrorCode``: 406 (inactive recipient: bounced, complained or
suppressed) suppresses the address. Postmark has no idempotency key: Herald's goes in
``Metadata``, and a timeout after the request left is an UnknownOutcome.
"""

from __future__ import annotations

from typing import Any, Final

from herald.domain.errors import DeliveryError, PermanentError, TransientError
from herald.domain.message import Address, Delivery, Email, Receipt
from herald.providers.base import ProviderURL, content_of
from herald.providers.email_api import (
    COMMON_OPTIONS,
    EmailApiProvider,
    EmailApiSettings,
    mailbox,
    post_json,
)
from herald.providers.http import (
    HttpClient,
    HttpResponse,
    classify_status,
    retry_after,
)

DEFAULT_BASE_URL: Final = "https://api.postmarkapp.com"
#: ``Metadata`` keys Herald sets (Postmark allows keys of at most 20 characters).
IDEMPOTENCY_KEY: Final = "herald_key"
NOTIFICATION_KEY: Final = "herald_id"
INACTIVE_RECIPIENT: Final = 406
# ErrorCodes that say Herald's side is wrong (token, sender signature, account, stream):
# another provider may still deliver the message.
_NOT_RECIPIENT: Final = frozenset({10, 400, 401, 405, 412, 1235})


class PostmarkProvider(EmailApiProvider):
    """Delivers email with one ``POST /email`` per message."""

    default_base_url = DEFAULT_BASE_URL
    path = "/email"
    options = COMMON_OPTIONS | {"stream"}

    def __init__(
        self,
        settings: EmailApiSettings,
        *,
        name: str,
        stream: str | None = None,
        http: HttpClient | None = None,
    ) -> None:
        super().__init__(settings, name=name, http=http)
        self.stream = stream

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> PostmarkProvider:
        """Build from ``postmark://SERVER_TOKEN@?from=…[&stream=…]``; raises ConfigurationError."""
        provider = super().from_url(url, name=name)
        provider.stream = url.option("stream") or None
        return provider

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"X-Postmark-Server-Token": api_key}

    async def send(self, delivery: Delivery) -> Receipt:
        content = content_of(delivery, Email, self.name)
        response = await post_json(
            self._client,
            self._endpoint,
            email_body(delivery, content, self.settings.sender, self.stream),
            headers=self._headers,
            idempotent=False,
        )
        error = classify_postmark(response, what=self.name)
        if error is not None:
            raise error
        body = response.json()
        answer = body if isinstance(body, dict) else {}
        message_id = answer.get("MessageID")
        return Receipt(
            provider_message_id=str(message_id) if message_id else None,
            detail=f"{response.status} {answer.get('Message') or 'OK'}",
        )


def email_body(
    delivery: Delivery, content: Email, default_sender: Address, stream: str | None
) -> dict[str, Any]:
    """The ``POST /email`` JSON for one message (address lists are comma-separated)."""
    body: dict[str, Any] = {
        "From": mailbox(content.sender or default_sender),
        "To": ", ".join(mailbox(a) for a in content.to),
        "Subject": content.subject,
        "Headers": [
            *({"Name": name, "Value": value} for name, value in content.headers),
            {"Name": "Message-ID", "Value": f"<{content.message_id}>"},
        ],
        "Metadata": {
            IDEMPOTENCY_KEY: delivery.idempotency_key,
            NOTIFICATION_KEY: delivery.notification_id,
        },
    }
    for field, addresses in (
        ("Cc", content.cc),
        ("Bcc", content.bcc),
        ("ReplyTo", content.reply_to),
    ):
        if addresses:
            body[field] = ", ".join(mailbox(a) for a in addresses)
    if content.text is not None:
        body["TextBody"] = content.text
    if content.html is not None:
        body["HtmlBody"] = content.html
    if content.attachments:
        body["Attachments"] = [
            {
                "Name": a.filename,
                "Content": a.content_base64,
                "ContentType": a.content_type,
                **({"ContentID": f"cid:{a.content_id}"} if a.content_id else {}),
            }
            for a in content.attachments
        ]
    if delivery.category:
        body["Tag"] = delivery.category
    if stream:
        body["MessageStream"] = stream
    return body


def classify_postmark(response: HttpResponse, *, what: str) -> DeliveryError | None:
    """None on 2xx; API errors (HTTP 422, 401) by ``ErrorCode``; 429 and 5xx transient."""
    status = response.status
    if 200 <= status < 300:
        return None
    body = response.json()
    error_code = body.get("ErrorCode") if isinstance(body, dict) else None
    detail = str(body.get("Message") or "") if isinstance(body, dict) else ""
    detail = detail or response.text()[:300].strip() or "no detail"
    if status == 429 or status >= 500:
        return TransientError(
            f"{what}: HTTP {status}: {detail}",
            code=str(status),
            retry_after=retry_after(response.headers),
        )
    if not isinstance(error_code, int):
        return classify_status(response, what=what)
    reason = f"{what}: ErrorCode {error_code}: {detail}"
    code = str(error_code)
    if error_code == INACTIVE_RECIPIENT:
        return PermanentError(reason, code=code, suppress=True)
    if error_code in _NOT_RECIPIENT or status == 401:
        return PermanentError(reason, code=code, recipient_fault=False)
    return PermanentError(reason, code=code)
