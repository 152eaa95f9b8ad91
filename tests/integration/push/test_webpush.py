"""The Web Push provider against a local push service that checks VAPID and decrypts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError, TransientError
from herald.domain.message import Delivery, Push
from herald.domain.network import parse_networks
from herald.providers.base import ProviderDefaults, ProviderURL
from herald.providers.webpush import WebPushProvider, topic
from tests.integration.push.conftest import VapidKey
from tests.integration.push.webpush_service import WebPushService

MakeProvider = Callable[..., WebPushProvider]
SUBJECT = "mailto:ops@example.org"
#: The local push service listens on loopback, which the SSRF guard refuses unless allowed.
LOOPBACK = "127.0.0.0/8,::1/128"
ALLOW_LOOPBACK = ProviderDefaults(webhook_allowed_networks=parse_networks(LOOPBACK))


def delivery(to: str, **fields: Any) -> Delivery:
    push = Push(to=to, **fields)
    return Delivery(notification_id="n-1", channel=Channel.PUSH, attempt=1, content=push)


def provider_url(vapid: str, ca: Path, **options: object) -> str:
    query = {"vapid_private_key": vapid, "subject": SUBJECT, "ca_file": str(ca)}
    query.update({k: str(v) for k, v in options.items()})
    return f"webpush://?{urlencode(query)}"


@pytest.fixture
async def make_provider(vapid_key: VapidKey, push_ca_file: Path) -> AsyncIterator[MakeProvider]:
    made: list[WebPushProvider] = []

    def make(**options: object) -> WebPushProvider:
        url = provider_url(vapid_key.private, push_ca_file, **options)
        provider = WebPushProvider.from_url(
            ProviderURL.parse(url), name="webpush", defaults=ALLOW_LOOPBACK
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("subject=mailto:a@x.org", "vapid_private_key"),
        ("vapid_private_key=abc", "subject"),
        ("vapid_private_key=abc&subject=ops@x.org", "subject"),
        ("vapid_private_key=not-a-key&subject=mailto:a@x.org", "vapid_private_key"),
    ],
)
def test_bad_urls_are_configuration_errors(query: str, complaint: str):
    with pytest.raises(ConfigurationError, match=complaint):
        WebPushProvider.from_url(ProviderURL.parse(f"webpush://?{query}"), name="webpush")


def test_bad_options_are_configuration_errors(vapid_key: VapidKey, push_ca_file: Path):
    for options, complaint in [
        ({"urgency": "asap"}, "urgency"),
        ({"ttl": "-1"}, "ttl"),
        ({"ttl": "soon"}, "ttl"),
        ({"timeout": "0"}, "timeout"),
        ({"max_connections": "0"}, "max_connections"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ]:
        url = provider_url(vapid_key.private, push_ca_file, **options)
        with pytest.raises(ConfigurationError, match=complaint):
            WebPushProvider.from_url(ProviderURL.parse(url), name="webpush")


async def test_the_browser_gets_the_decrypted_payload_and_the_headers(
    webpush_service: WebPushService, vapid_key: VapidKey, make_provider: MakeProvider
):
    provider = make_provider(urgency="high")
    subscription = webpush_service.subscribe(vapid_key.public)
    receipt = await provider.send(
        delivery(
            subscription,
            title="Shipped",
            body="Order 42 is on its way",
            badge=2,
            link="https://shop.example.org/orders/42",
            data={"order": "42"},
            ttl=600,
            collapse_key="order-42",
        )
    )
    (received,) = webpush_service.received
    assert received.payload == {
        "title": "Shipped",
        "body": "Order 42 is on its way",
        "badge": 2,
        "link": "https://shop.example.org/orders/42",
        "data": {"order": "42"},
    }
    assert received.headers["TTL"] == "600"
    assert received.headers["Urgency"] == "high"
    assert received.headers["Topic"] == "order-42"
    assert received.claims["sub"] == SUBJECT
    assert received.claims["aud"] == webpush_service.origin
    assert receipt.provider_message_id is not None
    assert receipt.provider_message_id.startswith(f"{webpush_service.origin}/message/")


async def test_defaults_and_a_key_file(
    webpush_service: WebPushService,
    vapid_key: VapidKey,
    push_ca_file: Path,
    tmp_path: Path,
):
    key_file = tmp_path / "vapid.pem"
    key_file.write_bytes(vapid_key.pem)
    url = provider_url(str(key_file), push_ca_file)
    provider = WebPushProvider.from_url(
        ProviderURL.parse(url), name="webpush", defaults=ALLOW_LOOPBACK
    )
    try:
        subscription = webpush_service.subscribe(vapid_key.public)
        await provider.send(delivery(subscription, body="hi", collapse_key="a key with spaces"))
        await provider.send(delivery(subscription, body="again"))
    finally:
        await provider.aclose()
    first, second = webpush_service.received
    assert first.payload == {"body": "hi"}
    assert first.headers["TTL"] == str(28 * 24 * 3600)
    assert first.headers["Urgency"] == "normal"
    assert first.headers["Topic"] == topic("a key with spaces")
    assert len(first.headers["Topic"]) == 32
    assert "Topic" not in second.headers
    # One VAPID signature serves the push service for hours.
    assert first.headers["Authorization"] == second.headers["Authorization"]


async def test_a_subscription_made_for_another_key_is_refused(
    webpush_service: WebPushService, make_provider: MakeProvider
):
    provider = make_provider()
    subscription = webpush_service.subscribe("BAnotherApplicationServerKey")
    with pytest.raises(PermanentError) as caught:
        await provider.send(delivery(subscription, body="hi"))
    assert caught.value.code == "403"
    assert not caught.value.recipient_fault
    assert webpush_service.received == []


@pytest.mark.parametrize(
    ("status", "suppress"),
    [(404, True), (410, True), (413, False), (400, False)],
)
async def test_permanent_failures(
    webpush_service: WebPushService,
    vapid_key: VapidKey,
    make_provider: MakeProvider,
    status: int,
    suppress: bool,
):
    webpush_service.fail(status)
    with pytest.raises(PermanentError) as caught:
        await make_provider().send(delivery(webpush_service.subscribe(vapid_key.public), body="x"))
    assert caught.value.code == str(status)
    assert caught.value.suppress is suppress
    assert caught.value.recipient_fault
    if suppress:
        assert "subscription gone" in caught.value.message


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(429, {"Retry-After": "30"}, 30.0), (503, {"Retry-After": "5"}, 5.0), (500, {}, None)],
)
async def test_transient_failures(
    webpush_service: WebPushService,
    vapid_key: VapidKey,
    make_provider: MakeProvider,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
):
    webpush_service.fail(status, headers)
    with pytest.raises(TransientError) as caught:
        await make_provider().send(delivery(webpush_service.subscribe(vapid_key.public), body="x"))
    assert caught.value.code == str(status)
    assert caught.value.retry_after == retry_after


async def test_a_service_that_is_down_is_transient(
    vapid_key: VapidKey, make_provider: MakeProvider, unused_tcp_port: int
):
    endpoint = f"https://127.0.0.1:{unused_tcp_port}/push/x"  # nothing listens there
    keys = {"p256dh": vapid_key.public, "auth": "c2VjcmV0c2VjcmV0MTIzNA"}
    subscription = json.dumps({"endpoint": endpoint, "keys": keys})
    with pytest.raises(TransientError):
        await make_provider().send(delivery(subscription, body="x"))


async def test_other_platforms_are_not_its_to_send(make_provider: MakeProvider):
    provider = make_provider()
    apns = delivery("a" * 64, body="x")
    assert not provider.serves(apns.content)
    with pytest.raises(PermanentError) as caught:
        await provider.send(apns)
    assert not caught.value.recipient_fault


async def test_end_to_end_through_herald(
    database_url: str,
    webpush_service: WebPushService,
    vapid_key: VapidKey,
    push_ca_file: Path,
):
    url = provider_url(vapid_key.private, push_ca_file)
    async with Herald(
        database_url, migrate=True, push=url, webhook_allowed_networks=LOOPBACK
    ) as herald:
        alive = webpush_service.subscribe(vapid_key.public)
        gone = webpush_service.subscribe(vapid_key.public)
        sent = await herald.send(channel="push", to=alive, title="Hello", body="browser")
        await herald.drain()
        webpush_service.fail(410)
        dead = await herald.send(channel="push", to=gone, body="you unsubscribed")
        await herald.drain()

        view = await herald.get(sent.id)
        assert (view.status, view.provider) == ("sent", "webpush")
        assert view.provider_message_id is not None
        assert view.provider_message_id.startswith(webpush_service.origin)
        (received,) = webpush_service.received
        assert received.payload == {"title": "Hello", "body": "browser"}

        failed = await herald.get(dead.id)
        assert failed.status == "dead"
        assert failed.last_error is not None
        assert "subscription gone" in failed.last_error
        (rejected,) = failed.rejected_recipients
        assert rejected.suppress


async def test_endpoints_on_private_networks_are_refused_without_a_request(
    webpush_service: WebPushService, vapid_key: VapidKey, push_ca_file: Path
):
    """A subscription's endpoint comes from the caller: the webhook SSRF guard applies, both
    to a literal address and to a name that resolves to one."""
    url = provider_url(vapid_key.private, push_ca_file)
    provider = WebPushProvider.from_url(ProviderURL.parse(url), name="webpush")
    try:
        subscription = json.loads(webpush_service.subscribe(vapid_key.public))
        for endpoint in (
            subscription["endpoint"],
            subscription["endpoint"].replace("127.0.0.1", "localhost"),
            "https://169.254.169.254/latest/meta-data",
        ):
            to = json.dumps({**subscription, "endpoint": endpoint})
            with pytest.raises(PermanentError) as refused:
                await provider.send(delivery(to, body="hi"))
            assert refused.value.code == "ssrf"
            assert "Herald may not reach" in refused.value.message
    finally:
        await provider.aclose()
    assert webpush_service.received == []
