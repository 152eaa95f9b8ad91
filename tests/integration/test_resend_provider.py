"""The Resend provider against a local server speaking Resend's ``POST /emails``."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import PermanentError, TransientError, UnknownOutcome
from herald.domain.message import Address, Attachment, Delivery, Email
from herald.providers.base import ProviderURL
from herald.providers.resend import ResendProvider
from tests.integration.http_fakes import FakeResend, FakeSendGrid, email_api_url, resend_error_body
from tests.integration.settle import drain_until_settled
from tests.integration.test_sendgrid_provider import errors, sendgrid_url

PNG = base64.b64encode(b"\x89PNG fake").decode()


def resend_url(api: FakeResend, key: str | None = None, **options: str) -> str:
    return email_api_url("resend", api, key or api.api_key, **options)


@pytest.fixture
async def provider(resend: FakeResend) -> AsyncIterator[ResendProvider]:
    built = ResendProvider.from_url(ProviderURL.parse(resend_url(resend)), name="resend")
    yield built
    await built.aclose()


def delivery(key: str = "key-1", **fields: Any) -> Delivery:
    defaults: dict[str, Any] = {"subject": "Hello", "to": (Address("", "a@example.org"),)}
    email = Email(
        message_id="n1@example.org", date=time.time(), text="Hi", **{**defaults, **fields}
    )
    return Delivery("n1", Channel.EMAIL, 1, email, idempotency_key=key)


async def test_the_request_follows_the_emails_schema(provider: ResendProvider, resend: FakeResend):
    email = Email(
        message_id="01HX@example.org",
        date=time.time(),
        subject="Votre commande ✓",
        to=(Address("Zoë, Ångström", "zoe@example.org"), Address("", "bob@example.org")),
        cc=(Address("", "carol@example.org"),),
        bcc=(Address("", "audit@example.org"),),
        reply_to=(Address("Support", "support@example.org"),),
        text="Merci",
        html='<p>Merci <img src="cid:logo"></p>',
        headers=(("X-Campaign", "autumn"),),
        attachments=(
            Attachment("reçu.pdf", "application/pdf", PNG),
            Attachment("logo.png", "image/png", PNG, content_id="logo"),
        ),
    )
    receipt = await provider.send(
        Delivery("n1", Channel.EMAIL, 1, email, idempotency_key="order-42", category="orders.eu")
    )

    (request,) = resend.requests
    assert request.headers["Authorization"] == f"Bearer {resend.api_key}"
    assert request.headers["Idempotency-Key"] == "order-42"
    assert request.json == {
        "from": "Shop <shop@example.org>",
        "to": ['"Zoë, Ångström" <zoe@example.org>', "bob@example.org"],
        "cc": ["carol@example.org"],
        "bcc": ["audit@example.org"],
        "reply_to": ["Support <support@example.org>"],
        "subject": "Votre commande ✓",
        "text": "Merci",
        "html": '<p>Merci <img src="cid:logo"></p>',
        "headers": {"X-Campaign": "autumn", "Message-ID": "<01HX@example.org>"},
        "attachments": [
            {"filename": "reçu.pdf", "content": PNG, "content_type": "application/pdf"},
            {"filename": "logo.png", "content": PNG, "content_type": "image/png",
             "content_id": "logo"},
        ],
        # Tag values allow only ASCII letters, digits, _ and -.
        "tags": [{"name": "category", "value": "orders_eu"}],
    }  # fmt: skip
    assert receipt.provider_message_id == "re-0001"


def failure(status: int, name: str, message: str = "it went wrong") -> dict[str, Any]:
    return resend_error_body(status, name, message)


@pytest.mark.parametrize(
    ("status", "name", "kind", "recipient_fault"),
    [
        (400, "validation_error", PermanentError, True),
        (400, "invalid_idempotency_key", PermanentError, True),
        (401, "missing_api_key", PermanentError, False),
        (403, "invalid_api_key", PermanentError, False),
        (403, "restricted_api_key", PermanentError, False),
        (404, "not_found", PermanentError, True),
        (409, "invalid_idempotent_request", PermanentError, True),
        (409, "concurrent_idempotent_requests", TransientError, None),
        (422, "validation_error", PermanentError, True),
        (422, "invalid_attachment", PermanentError, True),
        (422, "invalid_from_address", PermanentError, False),
        (429, "rate_limit_exceeded", TransientError, None),
        (429, "daily_quota_exceeded", TransientError, None),
        (500, "application_error", TransientError, None),
        (500, "internal_server_error", TransientError, None),
    ],
)
async def test_every_error_is_classified(
    provider: ResendProvider,
    resend: FakeResend,
    status: int,
    name: str,
    kind: type[Exception],
    recipient_fault: bool | None,
):
    resend.fail(status, failure(status, name, "it went wrong"), **{"Retry-After": "3"})
    with pytest.raises(kind) as caught:
        await provider.send(delivery())
    error = caught.value
    assert type(error) is kind
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == name
    assert error.message == f"resend: HTTP {status} {name}: it went wrong"
    if isinstance(error, PermanentError):
        assert error.recipient_fault is recipient_fault
    else:
        assert error.retry_after == 3.0


async def test_an_error_page_without_json_is_classified_by_status(
    provider: ResendProvider, resend: FakeResend
):
    resend.fail(502, "<html>Bad Gateway</html>")
    with pytest.raises(TransientError) as caught:
        await provider.send(delivery())
    assert caught.value.code == "502"
    assert "Bad Gateway" in caught.value.message


async def test_credentials_are_checked(resend: FakeResend):
    provider = ResendProvider.from_url(
        ProviderURL.parse(resend_url(resend, key="re_wrong")), name="resend"
    )
    try:
        with pytest.raises(PermanentError) as caught:
            await provider.send(delivery())
    finally:
        await provider.aclose()
    assert (caught.value.code, caught.value.recipient_fault) == ("invalid_api_key", False)


async def test_resend_validates_what_it_is_sent(provider: ResendProvider, resend: FakeResend):
    with pytest.raises(PermanentError) as caught:
        await provider.send(delivery(subject=""))
    assert caught.value.code == "missing_required_field"
    assert resend.sent == []


async def test_a_retry_with_the_same_key_is_sent_once(provider: ResendProvider, resend: FakeResend):
    first = await provider.send(delivery("order-42"))
    again = await provider.send(delivery("order-42"))
    assert first.provider_message_id == again.provider_message_id == "re-0001"
    assert len(resend.requests) == 2
    assert len(resend.sent) == 1


async def test_a_timeout_is_transient_since_the_key_makes_a_retry_safe(resend: FakeResend):
    release = asyncio.Event()
    resend.hold = release.wait
    provider = ResendProvider.from_url(
        ProviderURL.parse(resend_url(resend, timeout="0.2")), name="resend"
    )
    try:
        with pytest.raises(TransientError) as caught:
            await provider.send(delivery())
    finally:
        release.set()
        await provider.aclose()
    assert not isinstance(caught.value, UnknownOutcome)


# --- End to end through Herald ---------------------------------------------------------------


async def test_herald_retries_with_the_same_idempotency_key(database_url: str, resend: FakeResend):
    async with Herald(
        database_url,
        migrate=True,
        email=resend_url(resend),
        poll_interval=0.05,
        retry_initial_delay=0.0,
    ) as herald:
        view = await herald.send_email(to="a@example.org", subject="Receipt", text="Thanks")
        resend.fail(500, failure(500, "internal_server_error", "Unexpected error"))

        stored = await drain_until_settled(herald, view.id)
        assert stored.status == "sent"
        assert (stored.provider, stored.provider_message_id) == ("resend", "re-0001")
        assert stored.attempts == 2
        retrying = [e for e in stored.events or [] if e.status == "retrying"]
        assert "HTTP 500 internal_server_error: Unexpected error" in (retrying[0].detail or "")
        first, second = resend.requests
        # No idempotency_key given: the notification's id is the stable key.
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == view.id
        assert first.json == second.json
        assert second.json["headers"]["Message-ID"] == f"<{view.id}@example.org>"


async def test_a_rejected_message_is_dead_with_resends_reason(
    database_url: str, resend: FakeResend
):
    async with Herald(
        database_url, migrate=True, email=resend_url(resend), poll_interval=0.05
    ) as herald:
        resend.fail(422, failure(422, "validation_error", "Invalid `to` field."))
        view = await herald.send_email(to="a@example.org", subject="s", text="t")
        await herald.drain()

        stored = await herald.get(view.id)
        assert stored.status == "dead"
        assert stored.last_error == (
            "resend: HTTP 422 validation_error: Invalid `to` field. [validation_error]"
        )


async def test_sendgrid_failing_fails_over_to_resend(
    database_url: str, sendgrid: FakeSendGrid, resend: FakeResend
):
    async with Herald(
        database_url,
        migrate=True,
        email=f"{sendgrid_url(sendgrid)},{resend_url(resend)}",
        poll_interval=0.05,
    ) as herald:
        sendgrid.fail(503, errors("Service Unavailable"))
        view = await herald.send_email(
            to="a@example.org", subject="Code", text="123456", idempotency_key="otp-1"
        )
        await herald.drain()

        stored = await herald.get(view.id)
        assert stored.status == "sent"
        assert (stored.provider, stored.provider_message_id) == ("resend", "re-0001")
        assert stored.attempts == 1
        assert any(
            "failing over to resend" in (e.detail or "") and e.provider == "sendgrid"
            for e in stored.events or []
        )
        assert sendgrid.accepted == []
        (sent,) = resend.sent
        assert sent["to"] == ["a@example.org"]
        assert resend.requests[0].headers["Idempotency-Key"] == "otp-1"
        # The Message-ID stays the same whichever provider carries the message.
        sg_message_id = sendgrid.requests[0].json["headers"]["Message-ID"]
        assert sent["headers"]["Message-ID"] == sg_message_id


async def test_a_messages_own_sender_wins_over_the_default(
    provider: ResendProvider, resend: FakeResend
):
    await provider.send(delivery(sender=Address("Billing", "billing@example.org")))
    assert resend.sent[0]["from"] == "Billing <billing@example.org>"
