"""Webhooks end to end through Herald, on SQLite and PostgreSQL: signed delivery, retries
with a stable webhook-id, the gone registry, the stored secret and the SSRF guard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald import Herald
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.webhook_receiver import Reply, WebhookReceiver


@pytest.fixture
async def herald(database_url: str) -> AsyncIterator[Herald]:
    async with Herald(
        database_url,
        migrate=True,
        webhook="webhook://?timeout=2",
        webhook_secret=WEBHOOK_SECRET,
        webhook_allowed_networks="127.0.0.1/32",
        retry_initial_delay=0,
    ) as running:
        yield running


async def send(herald: Herald, url: str, **data: object) -> str:
    view = await herald.send(channel="webhook", to=url, category="order.shipped", data=data)
    return view.id


async def test_delivered_signed_with_the_notification_id(herald: Herald, receiver: WebhookReceiver):
    nid = await send(herald, receiver.url(), order=42)
    await herald.drain()

    view = await herald.get(nid)
    assert (view.status, view.provider, view.provider_message_id) == ("sent", "webhook", nid)
    (request,) = receiver.received
    assert request.headers["webhook-id"] == nid
    assert request.verified is not None
    assert request.verified["type"] == "order.shipped"
    assert request.verified["data"] == {"order": 42}


async def test_a_retry_carries_the_same_webhook_id(herald: Herald, receiver: WebhookReceiver):
    receiver.reply("/hook", Reply(503, body=b"maintenance"))
    nid = await send(herald, receiver.url(), order=1)
    await herald.drain()

    view = await herald.get(nid)
    assert view.status == "sent"
    assert view.attempts == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == nid
    assert second.verified is not None
    assert "retrying" in [e.status for e in view.events or []]


async def test_a_400_is_dead(herald: Herald, receiver: WebhookReceiver):
    receiver.reply("/hook", Reply(400, body=b"unknown order"))
    nid = await send(herald, receiver.url(), order=1)
    await herald.drain()

    view = await herald.get(nid)
    assert view.status == "dead"
    assert view.last_error is not None
    assert "HTTP 400: unknown order" in view.last_error


async def test_a_gone_url_gets_no_more_requests_until_forgotten(
    herald: Herald, receiver: WebhookReceiver
):
    gone_url, other_url = receiver.url("/gone"), receiver.url("/other")
    receiver.reply("/gone", Reply(410))
    first = await send(herald, gone_url, n=1)
    await herald.drain()
    second = await send(herald, gone_url, n=2)
    elsewhere = await send(herald, other_url, n=3)
    await herald.drain()

    first_view, second_view = await herald.get(first), await herald.get(second)
    assert first_view.status == second_view.status == "failed"
    assert first_view.last_error is not None
    assert "410 Gone" in first_view.last_error
    assert second_view.last_error == f"{gone_url} answered 410 Gone earlier; not sent"
    assert (await herald.get(elsewhere)).status == "sent"
    assert len(receiver.at("/gone")) == 1  # the second was never requested
    (registered,) = await herald.webhooks.list_gone()
    assert (registered["url"], registered["notification_id"]) == (gone_url, first)

    assert await herald.webhooks.clear_gone([gone_url]) == 1
    third = await send(herald, gone_url, n=4)
    await herald.drain()  # a new worker reads the registry afresh
    assert (await herald.get(third)).status == "sent"
    assert len(receiver.at("/gone")) == 2


async def test_a_name_resolving_to_loopback_is_refused_when_not_allowed(
    database_url: str, receiver: WebhookReceiver
):
    async with Herald(
        database_url, migrate=True, webhook="webhook://", webhook_secret=WEBHOOK_SECRET
    ) as herald:
        nid = await send(herald, receiver.url(host="localhost"), order=1)
        await herald.drain()
        view = await herald.get(nid)

    assert view.status == "dead"
    assert view.last_error is not None
    assert "localhost resolves to 127.0.0.1 (a loopback address)" in view.last_error
    assert view.last_error.endswith("[ssrf]")
    assert receiver.received == []


async def test_without_a_secret_one_is_generated_stored_and_used(database_url: str):
    async with Herald(database_url, migrate=True) as first:
        secret = first.webhook_secret
    async with Herald(
        database_url,
        migrate=True,
        webhook="webhook://",
        webhook_allowed_networks="127.0.0.1/32",
    ) as herald:
        assert herald.webhook_secret == secret
        assert secret.startswith("whsec_")
        receiver = WebhookReceiver(secret)
        await receiver.start()
        try:
            nid = await send(herald, receiver.url(), order=7)
            await herald.drain()
        finally:
            await receiver.stop()
        assert (await herald.get(nid)).status == "sent"
    assert receiver.received[0].verified is not None
