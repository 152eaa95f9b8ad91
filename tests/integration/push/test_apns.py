"""The APNs provider against a local HTTP/2 (TLS, ALPN h2) APNs."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError, TransientError
from herald.domain.message import Delivery, Push
from herald.providers.apns import ApnsProvider, ProviderToken
from herald.providers.base import ProviderURL
from tests.integration.push.apns_service import DEVICE, ApnsService, apns_url

MakeProvider = Callable[..., ApnsProvider]


def delivery(to: str = DEVICE, *, notification_id: str | None = None, **fields: Any) -> Delivery:
    return Delivery(
        notification_id=notification_id or str(uuid.uuid4()),
        channel=Channel.PUSH,
        attempt=1,
        content=Push(to=to, **fields),
    )


@pytest.fixture
async def make_provider(
    apns_service: ApnsService, apns_key_file: Path, push_ca_file: Path
) -> AsyncIterator[MakeProvider]:
    made: list[ApnsProvider] = []

    def make(key_file: Path = apns_key_file, **options: str) -> ApnsProvider:
        url = apns_url(apns_service, key_file, push_ca_file, **options)
        provider = ApnsProvider.from_url(ProviderURL.parse(url), name="apns")
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def other_key_file(tmp_path: Path) -> Path:
    """A .p8 key APNs does not know for this key id."""
    path = tmp_path / "AuthKey_OTHER.p8"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_configuration_errors(apns_key_file: Path, tmp_path: Path):
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    garbage = tmp_path / "garbage.p8"
    garbage.write_text("not a key")
    good = f"team_id=T&key_id=K&topic=com.example.app&key={apns_key_file}"
    for query, complaint in [
        ("team_id=T&key_id=K&key=/x.p8", "topic"),
        ("topic=t", "team_id"),
        ("team_id=T&key_id=K&topic=t&key=/nonexistent.p8", "nonexistent"),
        (f"team_id=T&key_id=K&topic=t&key={garbage}", "not a .p8"),
        (f"team_id=T&key_id=K&topic=t&key={rsa_key}", "EC"),
        (f"{good}&priority=7", "priority"),
        (f"{good}&sandbox=maybe", "sandbox"),
        (f"{good}&timeout=0", "timeout"),
    ]:
        with pytest.raises(ConfigurationError, match=complaint):
            ApnsProvider.from_url(ProviderURL.parse(f"apns://?{query}"), name="apns")


def test_the_provider_token_lives_fifty_minutes_unless_apns_calls_it_stale():
    now = [1_000_000.0]
    token = ProviderToken(
        ec.generate_private_key(ec.SECP256R1()), key_id="K", team_id="T", clock=lambda: now[0]
    )
    first = token.current()
    now[0] += 49 * 60
    assert token.current() == first
    now[0] += 60
    second = token.current()
    assert second != first
    token.renew(first)  # already replaced: nothing happens
    assert token.current() == second
    token.renew(second)
    assert token.current() != second


async def test_the_request_apns_receives(apns_service: ApnsService, make_provider: MakeProvider):
    provider = make_provider()
    notification_id = str(uuid.uuid4())
    before = int(time.time())
    receipt = await provider.send(
        delivery(
            notification_id=notification_id,
            title="Shipped",
            body="Order 42 is on its way",
            badge=3,
            link="myapp://orders/42",
            data={"order": "42"},
            ttl=3600,
            collapse_key="order-42",
        )
    )
    await provider.send(delivery(body="second", notification_id="not-a-uuid"))

    first, second = apns_service.received
    assert first.http_version == "2"
    assert first.device == DEVICE
    assert first.payload == {
        "aps": {"alert": {"title": "Shipped", "body": "Order 42 is on its way"}, "badge": 3},
        "order": "42",
        "link": "myapp://orders/42",
    }
    headers = first.headers
    assert headers["apns-topic"] == "com.example.app"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "order-42"
    assert headers["apns-id"] == notification_id
    assert before + 3600 <= int(headers["apns-expiration"]) <= int(time.time()) + 3600
    assert receipt.provider_message_id == notification_id
    assert second.payload == {"aps": {"alert": {"body": "second"}}}
    assert "apns-id" not in second.headers
    assert "apns-expiration" not in second.headers
    assert len(apns_service.tokens) == 1  # one provider token for both


async def test_long_collapse_keys_and_zero_ttl(
    apns_service: ApnsService, make_provider: MakeProvider
):
    await make_provider(priority="5").send(delivery(body="x", ttl=0, collapse_key="k" * 100))
    (received,) = apns_service.received
    assert received.headers["apns-expiration"] == "0"
    assert received.headers["apns-priority"] == "5"
    assert len(received.headers["apns-collapse-id"]) == 64


async def test_an_expired_provider_token_is_replaced_once(
    apns_service: ApnsService, make_provider: MakeProvider
):
    provider = make_provider()
    await provider.send(delivery(body="one"))
    apns_service.expire_tokens()
    await provider.send(delivery(body="two"))
    assert len(apns_service.tokens) == 2
    assert [r.payload["aps"]["alert"]["body"] for r in apns_service.received] == ["one", "two"]


async def test_a_key_apns_does_not_know_fails_over(
    apns_service: ApnsService, make_provider: MakeProvider, other_key_file: Path
):
    with pytest.raises(PermanentError) as caught:
        await make_provider(other_key_file).send(delivery(body="x"))
    assert caught.value.code == "InvalidProviderToken"
    assert not caught.value.recipient_fault
    assert len(apns_service.tokens) == 2  # renewed once, then given up
    assert apns_service.received == []


async def test_an_unregistered_device_is_suppressed(
    apns_service: ApnsService, make_provider: MakeProvider
):
    apns_service.unregistered.add(DEVICE)
    with pytest.raises(PermanentError) as caught:
        await make_provider().send(delivery(body="x"))
    assert (caught.value.code, caught.value.suppress) == ("Unregistered", True)


async def test_a_token_for_another_app_is_not_the_recipients_fault(make_provider: MakeProvider):
    with pytest.raises(PermanentError) as caught:
        await make_provider(topic="com.example.other").send(delivery(body="x"))
    assert caught.value.code == "DeviceTokenNotForTopic"
    assert not caught.value.recipient_fault


@pytest.mark.parametrize(
    ("status", "reason", "suppress"),
    [(400, "BadDeviceToken", True), (413, "PayloadTooLarge", False), (400, "BadTopic", False)],
)
async def test_permanent_errors(
    apns_service: ApnsService,
    make_provider: MakeProvider,
    status: int,
    reason: str,
    suppress: bool,
):
    apns_service.fail(status, reason)
    with pytest.raises(PermanentError) as caught:
        await make_provider().send(delivery(body="x"))
    assert (caught.value.code, caught.value.suppress) == (reason, suppress)


@pytest.mark.parametrize(
    ("status", "reason", "headers", "retry_after"),
    [
        (429, "TooManyRequests", {"retry-after": "10"}, 10.0),
        (500, "InternalServerError", {}, None),
        (503, "ServiceUnavailable", {}, None),
    ],
)
async def test_transient_errors(
    apns_service: ApnsService,
    make_provider: MakeProvider,
    status: int,
    reason: str,
    headers: dict[str, str],
    retry_after: float | None,
):
    apns_service.fail(status, reason, headers)
    with pytest.raises(TransientError) as caught:
        await make_provider().send(delivery(body="x"))
    assert caught.value.code == reason
    assert caught.value.retry_after == retry_after


async def test_apns_down_is_transient(
    apns_key_file: Path, push_ca_file: Path, unused_tcp_port: int
):
    query = urlencode(
        {
            "team_id": "T",
            "key_id": "K",
            "topic": "t",
            "key": str(apns_key_file),
            "base_url": f"https://127.0.0.1:{unused_tcp_port}",
            "ca_file": str(push_ca_file),
        }
    )
    provider = ApnsProvider.from_url(ProviderURL.parse(f"apns://?{query}"), name="apns")
    try:
        with pytest.raises(TransientError):
            await provider.send(delivery(body="x"))
    finally:
        await provider.aclose()


async def test_other_platforms_are_not_its_to_send(make_provider: MakeProvider):
    provider = make_provider()
    fcm = delivery(to="fcm-token-0123456789abcdef:APA91b", body="x")
    assert not provider.serves(fcm.content)
    with pytest.raises(PermanentError) as caught:
        await provider.send(fcm)
    assert not caught.value.recipient_fault


async def test_end_to_end_through_herald(
    database_url: str, apns_service: ApnsService, apns_key_file: Path, push_ca_file: Path
):
    url = apns_url(apns_service, apns_key_file, push_ca_file)
    gone = "f" * 64
    apns_service.unregistered.add(gone)
    async with Herald(database_url, migrate=True, push=url) as herald:
        sent = await herald.send(channel="push", to=DEVICE, title="Hi", badge=1)
        dead = await herald.send(channel="push", to=gone, body="bye")
        await herald.drain()

        view = await herald.get(sent.id)
        assert (view.status, view.provider) == ("sent", "apns")
        assert view.provider_message_id == sent.id  # Herald's id is the apns-id
        (received,) = apns_service.received
        assert received.payload == {"aps": {"alert": {"title": "Hi"}, "badge": 1}}

        failed = await herald.get(dead.id)
        assert failed.status == "dead"
        assert failed.last_error is not None
        assert "Unregistered" in failed.last_error
        assert failed.rejected_recipients[0].suppress


async def test_a_connection_the_server_closes_is_replaced(
    apns_service: ApnsService, make_provider: MakeProvider
):
    apns_service.max_requests_per_connection = 2
    await apns_service.stop()
    apns_service.port = 0
    await apns_service.start()
    provider = make_provider()
    for n in range(5):
        await provider.send(delivery(body=f"#{n}"))
    assert len(apns_service.received) == 5
