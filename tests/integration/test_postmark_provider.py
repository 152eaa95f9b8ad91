"""The Postmark provider against a local server speaking Postmark's ``POST /email``."""

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
from herald.providers.postmark import PostmarkProvider
from tests.integration.http_fakes import FakePostmark, email_api_url
from tests.integration.smtp_server import SmtpTestServer

PNG = base64.b64encode(b"\x89PNG fake").decode()


def postmark_url(api: FakePostmark, token: str | None = None, **options: str) -> str:
    return email_api_url("postmark", api, token or api.token, **options)


@pytest.fixture
async def provider(postmark: FakePostmark) -> AsyncIterator[PostmarkProvider]:
    built = PostmarkProvider.from_url(ProviderURL.parse(postmark_url(postmark)), name="postmark")
    yield built
    await built.aclose()


def delivery(to: str = "a@example.org") -> Delivery:
    email = Email(
        message_id="n1@example.org",
        date=time.time(),
        subject="Hello",
        to=(Address("", to),),
        text="Hi",
    )
    return Delivery("n1", Channel.EMAIL, 1, email, idempotency_key="key-1")


async def test_the_request_follows_the_email_schema(postmark: FakePostmark):
    provider = PostmarkProvider.from_url(
        ProviderURL.parse(postmark_url(postmark, stream="broadcast")), name="postmark"
    )
    email = Email(
        message_id="01HX@example.org",
        date=time.time(),
        subject="Votre commande ✓",
        to=(Address("Zoë", "zoe@example.org"), Address("", "bob@example.org")),
        cc=(Address("", "carol@example.org"),),
        bcc=(Address("", "audit@example.org"),),
        reply_to=(Address("Support", "support@example.org"),),
        text="Merci",
        html='<p><img src="cid:logo"></p>',
        headers=(("X-Campaign", "autumn"),),
        attachments=(Attachment("logo.png", "image/png", PNG, content_id="logo"),),
    )
    try:
        receipt = await provider.send(
            Delivery("n1", Channel.EMAIL, 1, email, idempotency_key="order-42", category="orders")
        )
    finally:
        await provider.aclose()

    (request,) = postmark.requests
    assert request.headers["X-Postmark-Server-Token"] == postmark.token
    assert request.json == {
        "From": "Shop <shop@example.org>",
        "To": "Zoë <zoe@example.org>, bob@example.org",
        "Cc": "carol@example.org",
        "Bcc": "audit@example.org",
        "ReplyTo": "Support <support@example.org>",
        "Subject": "Votre commande ✓",
        "TextBody": "Merci",
        "HtmlBody": '<p><img src="cid:logo"></p>',
        "Headers": [
            {"Name": "X-Campaign", "Value": "autumn"},
            {"Name": "Message-ID", "Value": "<01HX@example.org>"},
        ],
        "Metadata": {"herald_key": "order-42", "herald_id": "n1"},
        "Attachments": [
            {
                "Name": "logo.png",
                "Content": PNG,
                "ContentType": "image/png",
                "ContentID": "cid:logo",
            }
        ],
        "Tag": "orders",
        "MessageStream": "broadcast",
    }
    assert receipt.provider_message_id == "0a129aee-e1cd-480d-b08d-4f48548f0001"


def api_error(code: int, message: str) -> dict[str, Any]:
    """Postmark's error body."""
    return {"ErrorCode": code, "Message": message}


P, T = PermanentError, TransientError


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "recipient_fault", "suppress"),
    [
        (422, api_error(300, "Invalid 'To' address"), P, "300", True, False),
        (422, api_error(406, "Inactive recipient"), P, "406", True, True),
        (422, api_error(400, "Sender signature not found"), P, "400", False, False),
        (422, api_error(401, "Sender signature not confirmed"), P, "401", False, False),
        (422, api_error(405, "Not allowed to send"), P, "405", False, False),
        (422, api_error(412, "Account is pending approval"), P, "412", False, False),
        (422, api_error(1235, "Message stream not found"), P, "1235", False, False),
        (401, api_error(10, "Bad or missing API token"), P, "10", False, False),
        (429, api_error(429, "Rate limit exceeded"), T, "429", None, None),
        (500, api_error(500, "Internal server error"), T, "500", None, None),
        (503, "<html>Service Unavailable</html>", T, "503", None, None),
    ],
)
async def test_every_error_is_classified(
    provider: PostmarkProvider,
    postmark: FakePostmark,
    status: int,
    body: Any,
    kind: type[Exception],
    code: str,
    recipient_fault: bool | None,
    suppress: bool | None,
):
    postmark.fail(status, body)
    with pytest.raises(kind) as caught:
        await provider.send(delivery())
    error = caught.value
    assert type(error) is kind
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == code
    if isinstance(body, dict):
        assert body["Message"] in error.message
    if isinstance(error, PermanentError):
        assert (error.recipient_fault, error.suppress) == (recipient_fault, suppress)


async def test_a_timeout_after_sending_is_an_unknown_outcome(postmark: FakePostmark):
    release = asyncio.Event()
    postmark.hold = release.wait
    provider = PostmarkProvider.from_url(
        ProviderURL.parse(postmark_url(postmark, timeout="0.2")), name="postmark"
    )
    try:
        with pytest.raises(UnknownOutcome):
            await provider.send(delivery())
    finally:
        release.set()
        await provider.aclose()


async def test_an_inactive_recipient_is_suppressed_end_to_end(
    database_url: str, postmark: FakePostmark
):
    postmark.inactive.add("bounced@example.org")
    async with Herald(
        database_url, migrate=True, email=postmark_url(postmark), poll_interval=0.05
    ) as herald:
        view = await herald.send_email(to="bounced@example.org", subject="s", text="t")
        await herald.drain()

        stored = await herald.get(view.id)
        assert stored.status == "dead"
        assert stored.last_error is not None
        assert "ErrorCode 406" in stored.last_error
        (rejected,) = stored.rejected_recipients
        assert rejected.address == "bounced@example.org"
        assert rejected.suppress


async def test_smtp_refusing_its_credentials_fails_over_to_postmark(
    database_url: str, postmark: FakePostmark, smtp_server_factory: Any
):
    smtp: SmtpTestServer = smtp_server_factory(username="herald", password="right")
    smtp_url = (
        f"smtp://herald:wrong@{smtp.host}:{smtp.port}?tls=none&from=shop@example.org&timeout=2"
    )
    async with Herald(
        database_url,
        migrate=True,
        email=f"{smtp_url},{postmark_url(postmark)}",
        poll_interval=0.05,
    ) as herald:
        view = await herald.send_email(to="a@example.org", subject="Receipt", text="Thanks")
        await herald.drain()

        stored = await herald.get(view.id)
        assert (stored.status, stored.provider) == ("sent", "postmark")
        assert stored.provider_message_id == "0a129aee-e1cd-480d-b08d-4f48548f0001"
        assert any("failing over to postmark" in (e.detail or "") for e in stored.events or [])
        (sent,) = postmark.accepted
        assert sent["To"] == "a@example.org"
