"""The webhook provider against a real receiver: Standard Webhooks signatures, the
envelope, every answer classified, and the SSRF guard at connect time."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
import standardwebhooks

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, Gone, PermanentError, TransientError
from herald.domain.message import Delivery, Webhook
from herald.domain.webhook_signing import generate_secret
from herald.providers.base import ProviderDefaults, ProviderURL
from herald.providers.ssrf_guard import AddressRefused, GuardedResolver
from herald.providers.webhook import WebhookProvider, envelope
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.webhook_receiver import Reply, WebhookReceiver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
ACCEPTED_AT = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z


def delivery(url: str, nid: str = "0193a1b2-0000-7000-8000-000000000001") -> Delivery:
    return Delivery(
        notification_id=nid,
        channel=Channel.WEBHOOK,
        attempt=1,
        content=Webhook(
            url=url, event_type="order.shipped", data={"order": 42}, created_at=ACCEPTED_AT
        ),
    )


def provider(
    query: str = "", allowed: tuple[ipaddress.IPv4Network, ...] = LOOPBACK
) -> WebhookProvider:
    return WebhookProvider.from_url(
        ProviderURL.parse(f"webhook://?{query}"),
        name="webhook",
        defaults=ProviderDefaults(webhook_secret=WEBHOOK_SECRET, webhook_allowed_networks=allowed),
    )


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookProvider]:
    made = provider("timeout=0.5")
    yield made
    await made.aclose()


async def test_a_signed_envelope_that_standard_webhooks_verifies(
    receiver: WebhookReceiver, hooks: WebhookProvider
):
    receipt = await hooks.send(delivery(receiver.url()))

    (request,) = receiver.received
    assert request.verified == {
        "type": "order.shipped",
        "timestamp": "2026-11-18T11:06:40.250000Z",
        "data": {"order": 42},
    }
    assert request.headers["webhook-id"] == "0193a1b2-0000-7000-8000-000000000001"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("Herald/")
    assert receipt.provider_message_id == "0193a1b2-0000-7000-8000-000000000001"
    assert receipt.detail == "HTTP 204"


async def test_during_a_rotation_both_secrets_sign(receiver: WebhookReceiver):
    new = generate_secret()
    rotating = provider(f"secret={quote(new)},{WEBHOOK_SECRET}")
    try:
        await rotating.send(delivery(receiver.url()))
    finally:
        await rotating.aclose()

    (request,) = receiver.received
    signatures = request.headers["webhook-signature"].split(" ")
    assert [s.split(",")[0] for s in signatures] == ["v1", "v1"]
    assert request.verified is not None  # the receiver still on the old secret
    # A receiver already on the new secret verifies it too.
    assert standardwebhooks.Webhook(new).verify(request.body, request.headers)["data"] == {
        "order": 42
    }


async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: WebhookReceiver):
    stranger = provider(f"secret={quote(generate_secret())}")
    try:
        with pytest.raises(PermanentError) as refused:
            await stranger.send(delivery(receiver.url()))
    finally:
        await stranger.aclose()
    assert refused.value.code == "401"
    assert not refused.value.recipient_fault  # our credentials: another provider may do
    assert receiver.received[0].verified is None


@pytest.mark.parametrize(
    ("reply", "kind", "code", "retry_after"),
    [
        (Reply(429, {"Retry-After": "7"}), TransientError, "429", 7.0),
        (Reply(503), TransientError, "503", None),
        (Reply(500, body=b"boom"), TransientError, "500", None),
        (Reply(408), TransientError, "408", None),
        (Reply(400, body=b"bad payload"), PermanentError, "400", None),
        (Reply(404), PermanentError, "404", None),
        (Reply(action="redirect"), PermanentError, "302", None),
    ],
)
async def test_answers_are_classified(
    receiver: WebhookReceiver,
    hooks: WebhookProvider,
    reply: Reply,
    kind: type[Exception],
    code: str,
    retry_after: float | None,
):
    receiver.reply("/hook", reply)
    with pytest.raises(kind) as raised:
        await hooks.send(delivery(receiver.url()))
    error = raised.value
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == code
    if isinstance(error, TransientError):
        assert error.retry_after == retry_after
    assert not isinstance(error, Gone)
    assert [r.path for r in receiver.received] == ["/hook"]  # redirects are not followed


async def test_410_says_the_url_is_gone(receiver: WebhookReceiver, hooks: WebhookProvider):
    receiver.reply("/hook", Reply(410))
    with pytest.raises(Gone) as gone:
        await hooks.send(delivery(receiver.url()))
    assert gone.value.target == receiver.url()
    assert gone.value.code == "410"


@pytest.mark.parametrize("action", ["slow", "reset"])
async def test_timeouts_and_resets_are_transient(
    receiver: WebhookReceiver, hooks: WebhookProvider, action: str
):
    receiver.reply("/hook", Reply(action=action))
    with pytest.raises(TransientError) as raised:
        await hooks.send(delivery(receiver.url()))
    assert ("timed out" in raised.value.message) == (action == "slow")


async def test_a_long_error_body_is_cut(receiver: WebhookReceiver, hooks: WebhookProvider):
    receiver.reply("/hook", Reply(400, body=b"x" * 1_000_000))
    with pytest.raises(PermanentError) as raised:
        await hooks.send(delivery(receiver.url()))
    assert len(raised.value.message) < 400


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a name resolving to 127.0.0.1: refused at connect time
        "127.0.0.1",
        "2130706433",  # decimal
        "0x7f000001",  # hex
        "0177.0.0.1",  # octal
        "127.1",  # shortened
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::1]",
    ],
)
async def test_the_ssrf_guard_refuses_loopback_in_any_spelling(
    receiver: WebhookReceiver, host: str
):
    guarded = provider(allowed=())
    try:
        with pytest.raises(PermanentError) as refused:
            await guarded.send(delivery(receiver.url(host=host)))
    finally:
        await guarded.aclose()
    assert refused.value.code == "ssrf"
    assert "loopback" in refused.value.message
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.0.0.1/",
        "http://100.64.0.1/",  # CGNAT
        "http://0.0.0.0/",
        "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped metadata address
        "ftp://example.org/hook",
    ],
)
async def test_the_ssrf_guard_refuses_private_targets(url: str):
    guarded = provider(allowed=())
    try:
        with pytest.raises(PermanentError) as refused:
            await guarded.send(delivery(url))
    finally:
        await guarded.aclose()
    assert refused.value.code == "ssrf"


async def test_allowed_networks_let_a_name_through(
    receiver: WebhookReceiver, hooks: WebhookProvider
):
    await hooks.send(delivery(receiver.url(host="localhost")))
    assert receiver.received[0].verified is not None


def test_bad_secrets_are_configuration_errors():
    for query in ("secret=hunter2", "secret=whsec_%21%21", "timeout=0"):
        with pytest.raises(ConfigurationError):
            provider(query)
    with pytest.raises(ConfigurationError):
        WebhookProvider.from_url(
            ProviderURL.parse("webhook://"), name="webhook", defaults=ProviderDefaults()
        )


def test_the_envelope_is_json_with_an_iso_timestamp():
    hook = Webhook(url="https://x.org", event_type="t", data={"a": [1]}, created_at=0.0)
    assert json.loads(envelope(hook)) == {
        "type": "t",
        "timestamp": "1970-01-01T00:00:00Z",
        "data": {"a": [1]},
    }


async def test_the_resolver_keeps_only_allowed_addresses():
    """``localhost`` may also resolve to ``::1``: with only 127.0.0.0/8 allowed, the
    connector is handed the IPv4 address alone."""
    resolver = GuardedResolver(LOOPBACK)
    try:
        results = await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()
    assert results
    assert all(ipaddress.ip_address(r["host"]) in LOOPBACK[0] for r in results)
    with pytest.raises(AddressRefused, match=r"localhost resolves to 127\.0\.0\.1"):
        await GuardedResolver(()).resolve("localhost", 80, socket.AF_INET)
