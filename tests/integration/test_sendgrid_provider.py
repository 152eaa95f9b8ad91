"""The SendGrid provider against a local server speaking the v3 Mail Send API."""

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
from herald.domain.message import Address, Attachment, Delivery, Email, Sms
from herald.providers.base import ProviderURL
from herald.providers.sendgrid import SendGridProvider
from tests.integration.http_fakes import FakeSendGrid, email_api_url, unanswered_port
from tests.integration.settle import drain_until_settled

PNG = base64.b64encode(b"\x89PNG fake").decode()


def sendgrid_url(api: FakeSendGrid, key: str | None = None, **options: str) -> str:
    return email_api_url("sendgrid", api, key or api.api_key, **options)


@pytest.fixture
async def provider(sendgrid: FakeSendGrid) -> AsyncIterator[SendGridProvider]:
    built = SendGridProvider.from_url(ProviderURL.parse(sendgrid_url(sendgrid)), name="sendgrid")
    yield built
    await built.aclose()


def delivery(content: Email | Sms | None = None, **fields: Any) -> Delivery:
    email = content or Email(
        message_id="n1@example.org",
        date=time.time(),
        subject="Hello",
        to=(Address("", "a@example.org"),),
        text="Hi",
        **fields,
    )
    return Delivery("n1", Channel.EMAIL, 1, email, idempotency_key="key-1")


async def test_the_request_follows_the_mail_send_schema(
    provider: SendGridProvider, sendgrid: FakeSendGrid
):
    email = Email(
        message_id="01HX@example.org",
        date=time.time(),
        subject="Votre commande ✓",
        to=(Address("Zoë", "zoe@example.org"), Address("", "bob@example.org")),
        cc=(Address("", "carol@example.org"), Address("", "ZOE@example.org")),
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
        Delivery("n1", Channel.EMAIL, 1, email, idempotency_key="order-42", category="orders")
    )

    (request,) = sendgrid.requests
    assert request.headers["Authorization"] == f"Bearer {sendgrid.api_key}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "personalizations": [
            {
                "to": [{"email": "zoe@example.org", "name": "Zoë"}, {"email": "bob@example.org"}],
                # ZOE@ is already a To: SendGrid refuses one address twice.
                "cc": [{"email": "carol@example.org"}],
                "bcc": [{"email": "audit@example.org"}],
            }
        ],
        "from": {"email": "shop@example.org", "name": "Shop"},
        "reply_to": {"email": "support@example.org", "name": "Support"},
        "subject": "Votre commande ✓",
        "content": [
            {"type": "text/plain", "value": "Merci"},
            {"type": "text/html", "value": '<p>Merci <img src="cid:logo"></p>'},
        ],
        "headers": {"X-Campaign": "autumn", "Message-ID": "<01HX@example.org>"},
        "custom_args": {"herald_idempotency_key": "order-42", "herald_notification_id": "n1"},
        "attachments": [
            {
                "content": PNG,
                "type": "application/pdf",
                "filename": "reçu.pdf",
                "disposition": "attachment",
            },
            {
                "content": PNG,
                "type": "image/png",
                "filename": "logo.png",
                "disposition": "inline",
                "content_id": "logo",
            },
        ],
        "categories": ["orders"],
    }
    assert receipt.provider_message_id == "sg-0001"


async def test_several_reply_to_addresses_use_reply_to_list(
    provider: SendGridProvider, sendgrid: FakeSendGrid
):
    await provider.send(
        delivery(reply_to=(Address("", "a@example.org"), Address("B", "b@example.org")))
    )
    body = sendgrid.accepted[0]
    assert "reply_to" not in body
    assert body["reply_to_list"] == [
        {"email": "a@example.org"},
        {"email": "b@example.org", "name": "B"},
    ]


def errors(message: str, field: str | None = None) -> dict[str, Any]:
    """SendGrid's error body."""
    return {"errors": [{"message": message, "field": field, "help": None}]}


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "recipient_fault"),
    [
        (400, errors("Invalid address", "to"), {}, PermanentError, True),
        (401, errors("bad key"), {}, PermanentError, False),
        (403, errors("access forbidden"), {}, PermanentError, False),
        (404, errors("not found"), {}, PermanentError, True),
        (413, errors("payload too large"), {}, PermanentError, True),
        (429, errors("too many requests"), {"Retry-After": "30"}, TransientError, None),
        (500, errors("internal error"), {}, TransientError, None),
        (503, "<html>Service Unavailable</html>", {}, TransientError, None),
    ],
)
async def test_every_error_is_classified(
    provider: SendGridProvider,
    sendgrid: FakeSendGrid,
    status: int,
    body: Any,
    headers: dict[str, str],
    kind: type[Exception],
    recipient_fault: bool | None,
):
    sendgrid.fail(status, body, **headers)
    with pytest.raises(kind) as caught:
        await provider.send(delivery())
    error = caught.value
    assert type(error) is kind
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == str(status)
    assert f"HTTP {status}" in error.message
    if isinstance(body, dict):
        assert body["errors"][0]["message"] in error.message
    if isinstance(error, PermanentError):
        assert error.recipient_fault is recipient_fault
        assert not error.suppress
    if "Retry-After" in headers:
        assert isinstance(error, TransientError)
        assert error.retry_after == 30.0


async def test_a_rate_limit_waits_for_the_reset_time(
    provider: SendGridProvider, sendgrid: FakeSendGrid
):
    reset = int(time.time()) + 120
    sendgrid.fail(
        429, {"errors": [{"message": "too many requests"}]}, **{"X-RateLimit-Reset": str(reset)}
    )
    with pytest.raises(TransientError) as caught:
        await provider.send(delivery())
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


async def test_a_wrong_key_is_refused_and_not_the_recipients_fault(sendgrid: FakeSendGrid):
    provider = SendGridProvider.from_url(
        ProviderURL.parse(sendgrid_url(sendgrid, key="SG.revoked")), name="sendgrid"
    )
    try:
        with pytest.raises(PermanentError) as caught:
            await provider.send(delivery())
    finally:
        await provider.aclose()
    assert not caught.value.recipient_fault
    assert "invalid, expired, or revoked" in caught.value.message


async def test_a_timeout_after_sending_is_an_unknown_outcome(sendgrid: FakeSendGrid):
    release = asyncio.Event()
    sendgrid.hold = release.wait
    provider = SendGridProvider.from_url(
        ProviderURL.parse(sendgrid_url(sendgrid, timeout="0.2")), name="sendgrid"
    )
    try:
        with pytest.raises(UnknownOutcome):
            await provider.send(delivery())
    finally:
        release.set()
        await provider.aclose()


async def test_a_refused_connection_is_transient_and_fails_over():
    provider = SendGridProvider.from_url(
        ProviderURL.parse("sendgrid://SG.k@?from=a@example.org&base_url=http://127.0.0.1:9"),
        name="sendgrid",
    )
    try:
        with pytest.raises(TransientError) as caught:
            await provider.send(delivery())
    finally:
        await provider.aclose()
    assert not isinstance(caught.value, UnknownOutcome)


async def test_a_connect_timeout_is_transient_and_fails_over():
    with unanswered_port() as port:
        provider = SendGridProvider.from_url(
            ProviderURL.parse(
                f"sendgrid://SG.k@?from=a@example.org&base_url=http://127.0.0.1:{port}&timeout=0.3"
            ),
            name="sendgrid",
        )
        try:
            with pytest.raises(TransientError) as caught:
                await provider.send(delivery())
        finally:
            await provider.aclose()
    assert not isinstance(caught.value, UnknownOutcome)
    assert "timed out" in caught.value.message


async def test_other_channels_content_is_refused_without_a_request(
    provider: SendGridProvider, sendgrid: FakeSendGrid
):
    with pytest.raises(PermanentError) as caught:
        await provider.send(delivery(Sms("+14155552671", "hi")))
    assert not caught.value.recipient_fault
    assert sendgrid.requests == []


# --- End to end through Herald ---------------------------------------------------------------


async def test_herald_sends_through_sendgrid(database_url: str, sendgrid: FakeSendGrid):
    async with Herald(
        database_url,
        migrate=True,
        email=sendgrid_url(sendgrid),
        poll_interval=0.05,
        retry_initial_delay=0.0,
    ) as herald:
        view = await herald.send_email(
            to="Zoë <zoe@example.org>",
            subject="Shipped",
            html="<p>Order <b>42</b> is on its way</p>",
            category="orders",
            idempotency_key="order-42-shipped",
        )
        sendgrid.fail(503, errors("service unavailable"))

        stored = await drain_until_settled(herald, view.id)
        assert stored.status == "sent"
        assert stored.provider == "sendgrid"
        assert stored.provider_message_id == "sg-0001"
        assert stored.attempts == 2
        assert [e.status for e in stored.events or []].count("retrying") == 1
        first, second = sendgrid.requests
        # The same message both times, carrying the same stable key.
        assert first.json == second.json
        assert second.json["custom_args"]["herald_idempotency_key"] == "order-42-shipped"
        assert second.json["headers"]["Message-ID"] == f"<{view.id}@example.org>"
        assert second.json["categories"] == ["orders"]
        assert second.json["personalizations"][0]["to"] == [
            {"email": "zoe@example.org", "name": "Zoë"}
        ]
        assert [c["type"] for c in second.json["content"]] == ["text/plain", "text/html"]
        assert "is on its way" in second.json["content"][0]["value"]  # text from the HTML


async def test_a_refused_message_is_dead_with_sendgrids_reason(
    database_url: str, sendgrid: FakeSendGrid
):
    async with Herald(
        database_url, migrate=True, email=sendgrid_url(sendgrid), poll_interval=0.05
    ) as herald:
        invalid = "The to email does not contain a valid address."
        sendgrid.fail(400, errors(invalid, "personalizations.0.to"))
        view = await herald.send_email(to="a@example.org", subject="s", text="t")
        await herald.drain()

        stored = await herald.get(view.id)
        assert stored.status == "dead"
        assert stored.last_error is not None
        assert "personalizations.0.to: The to email does not contain a valid address." in (
            stored.last_error
        )
        assert stored.last_error.endswith("[400]")
        assert len(sendgrid.requests) == 1
