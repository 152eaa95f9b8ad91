"""/v1/captured: with no provider configured, email is captured, listed and parseable."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest

from tests.integration.api import Api, running_api
from tests.integration.api import email as email_request


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The API as on a fresh install: no provider configured, so the capture provider."""
    async with running_api(database_url, capture=True) as running:
        yield running


def parse(raw: str) -> EmailMessage:
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_a_captured_email_is_listed_with_its_raw_message(api: Api):
    pdf = b"%PDF-1.4 invoice"
    accepted = await api.send(
        email_request(
            {"from": "Shop <shop@example.org>"},
            to=["Alice Liddell <alice@example.org>"],
            cc="carol@example.org",
            bcc="audit@example.org",
            reply_to="help@example.org",
            subject="Votre commande est expédiée",
            text="Plain text body",
            html="<p>HTML body</p>",
            headers={"X-Order": "1234"},
            attachments=[
                {
                    "filename": "invoice.pdf",
                    "content_base64": base64.b64encode(pdf).decode(),
                }
            ],
        )
    )
    await api.herald.drain()

    sent = await api.get(accepted["id"])
    assert sent["status"] == "sent"
    assert sent["provider"] == "capture"
    assert sent["provider_message_id"] == f"captured-{accepted['id']}"

    page = (await api.client.get("/v1/captured")).json()
    (item,) = page["items"]
    assert page["next_cursor"] is None
    assert item["notification_id"] == accepted["id"]
    assert item["channel"] == "email"
    assert item["provider"] == "capture"
    assert item["recipient"] == "alice@example.org"
    content = item["content"]
    assert content["subject"] == "Votre commande est expédiée"
    assert content["bcc"] == ["audit@example.org"]

    message = parse(content["raw"])
    assert message["From"] == "Shop <shop@example.org>"
    assert message["To"] == "Alice Liddell <alice@example.org>"
    assert message["Cc"] == "carol@example.org"
    assert message["Reply-To"] == "help@example.org"
    assert message["Bcc"] is None  # Bcc recipients are envelope-only
    assert message["Subject"] == "Votre commande est expédiée"
    assert message["Message-ID"] == f"<{sent['content']['message_id']}>"
    assert message["X-Order"] == "1234"
    assert message["Date"] is not None
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip() == "Plain text body"
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert html.get_content().strip() == "<p>HTML body</p>"
    (attachment,) = message.iter_attachments()
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf


async def test_the_default_sender_is_used_when_none_is_given(api: Api):
    await api.send()
    await api.herald.drain()
    (item,) = (await api.client.get("/v1/captured")).json()["items"]
    assert parse(item["content"]["raw"])["From"] == "Herald <herald@localhost>"


async def test_captured_messages_filter_page_and_clear(api: Api):
    ids = [(await api.send(to=f"user{n}@example.org"))["id"] for n in range(5)]
    await api.herald.drain()

    assert (
        len((await api.client.get("/v1/captured", params={"channel": "email"})).json()["items"])
        == 5
    )
    assert (await api.client.get("/v1/captured", params={"channel": "sms"})).json()["items"] == []
    only = (await api.client.get("/v1/captured", params={"notification_id": ids[2]})).json()
    assert [item["recipient"] for item in only["items"]] == ["user2@example.org"]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/captured", params=params)).json()
        seen += [item["notification_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5

    response = await api.client.delete("/v1/captured", params={"channel": "sms"})
    assert response.json() == {"deleted": 0}
    response = await api.client.delete("/v1/captured")
    assert response.status_code == 200
    assert response.json() == {"deleted": 5}
    assert (await api.client.get("/v1/captured")).json()["items"] == []
    # Clearing the outbox does not touch the notifications themselves.
    assert (await api.get(ids[0]))["status"] == "sent"


async def test_a_long_display_name_is_captured(postgres_url: str):
    async with running_api(postgres_url, capture=True) as api:
        accepted = await api.send(to=f"{'A' * 400} <alice@example.org>")
        async with asyncio.timeout(5):  # a guard against the hang, not a measurement
            await api.herald.drain()
        assert (await api.get(accepted["id"]))["status"] == "sent"
