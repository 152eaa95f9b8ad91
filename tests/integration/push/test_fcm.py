"""The FCM HTTP v1 provider against a local FCM and OAuth token endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError, TransientError
from herald.domain.message import Delivery, Push
from herald.providers.base import ProviderURL
from herald.providers.fcm import FcmProvider
from tests.integration.push.fcm_service import TOKEN, FcmService, fcm_url

MakeProvider = Callable[..., FcmProvider]


def delivery(to: str = TOKEN, **fields: Any) -> Delivery:
    push = Push(to=to, **fields)
    return Delivery(notification_id="n-1", channel=Channel.PUSH, attempt=1, content=push)


@pytest.fixture
async def make_provider(
    fcm_service: FcmService, fcm_credentials: Path
) -> AsyncIterator[MakeProvider]:
    made: list[FcmProvider] = []

    def make(**options: str) -> FcmProvider:
        url = fcm_url(fcm_service, fcm_credentials, **options)
        provider = FcmProvider.from_url(ProviderURL.parse(url), name="fcm")
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def test_configuration_errors(tmp_path: Path, fcm_credentials: Path):
    no_project = tmp_path / "no-project.json"
    info = json.loads(fcm_credentials.read_text())
    del info["project_id"]
    no_project.write_text(json.dumps(info))
    not_an_account = tmp_path / "user.json"
    not_an_account.write_text(json.dumps({"type": "authorized_user"}))
    for query, complaint in [
        ("", "credentials"),
        ("credentials=/nonexistent.json", "nonexistent"),
        (f"credentials={not_an_account}", "not a service account"),
        (f"credentials={no_project}", "project_id"),
        (f"credentials={fcm_credentials}&timeout=-1", "timeout"),
    ]:
        with pytest.raises(ConfigurationError, match=complaint):
            FcmProvider.from_url(ProviderURL.parse(f"fcm://?{query}"), name="fcm")
    FcmProvider.from_url(
        ProviderURL.parse(f"fcm://?credentials={no_project}&project_id=p"), name="f"
    )


async def test_the_message_fcm_receives(fcm_service: FcmService, make_provider: MakeProvider):
    provider = make_provider()
    await provider.check()
    receipt = await provider.send(
        delivery(
            title="Shipped",
            body="Order 42 is on its way",
            badge=3,
            link="https://shop.example.org/orders/42",
            data={"order": "42"},
            ttl=3600,
            collapse_key="order-42",
        )
    )
    await provider.send(delivery(body="second"))

    first, second = fcm_service.received
    assert first["token"] == TOKEN
    assert first["notification"] == {"title": "Shipped", "body": "Order 42 is on its way"}
    assert first["data"] == {"order": "42", "link": "https://shop.example.org/orders/42"}
    assert first["android"] == {"ttl": "3600s", "collapse_key": "order-42"}
    assert first["apns"]["payload"] == {"aps": {"badge": 3}}
    assert first["apns"]["headers"]["apns-collapse-id"] == "order-42"
    assert int(first["apns"]["headers"]["apns-expiration"]) > 0
    assert first["webpush"] == {
        "headers": {"TTL": "3600"},
        "fcm_options": {"link": "https://shop.example.org/orders/42"},
    }
    assert second == {"token": TOKEN, "notification": {"body": "second"}}
    assert receipt.provider_message_id is not None
    assert receipt.provider_message_id.startswith("projects/herald-test/messages/0:1%")
    # One access token for all of it (check and both sends), from a correctly signed assertion.
    (assertion,) = fcm_service.assertions
    assert assertion["iss"] == fcm_service.client_email
    assert assertion["exp"] - assertion["iat"] == 3600


async def test_a_revoked_access_token_is_replaced_once(
    fcm_service: FcmService, make_provider: MakeProvider
):
    provider = make_provider()
    await provider.send(delivery(body="one"))
    fcm_service.revoke_tokens()
    await provider.send(delivery(body="two"))
    assert len(fcm_service.assertions) == 2
    assert [m["notification"]["body"] for m in fcm_service.received] == ["one", "two"]


@pytest.fixture
def revoked_credentials(fcm_credentials: Path, tmp_path: Path) -> Path:
    """The key file with a key Google does not (or no longer) knows."""
    info = json.loads(fcm_credentials.read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps(info))
    return revoked


async def test_a_key_google_does_not_know_is_not_the_recipients_fault(
    fcm_service: FcmService, revoked_credentials: Path
):
    revoked = revoked_credentials
    provider = FcmProvider.from_url(ProviderURL.parse(fcm_url(fcm_service, revoked)), name="fcm")
    try:
        with pytest.raises(PermanentError) as caught:
            await provider.send(delivery(body="x"))
    finally:
        await provider.aclose()
    assert caught.value.code == "oauth"
    assert not caught.value.recipient_fault
    assert "invalid_grant" in caught.value.message


async def test_a_token_fcm_rejects_is_invalid_argument(make_provider: MakeProvider):
    with pytest.raises(PermanentError) as caught:
        await make_provider().send(delivery(to="tooshort", body="x"))
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.recipient_fault
    assert not caught.value.suppress


async def test_another_project_is_a_sender_id_mismatch(make_provider: MakeProvider):
    with pytest.raises(PermanentError) as caught:
        await make_provider(project_id="someone-else").send(delivery(body="x"))
    assert caught.value.code == "SENDER_ID_MISMATCH"
    assert not caught.value.recipient_fault


@pytest.mark.parametrize(
    ("status", "code", "suppress", "recipient_fault"),
    [
        (404, "UNREGISTERED", True, True),
        (400, "INVALID_ARGUMENT", False, True),
        (403, "SENDER_ID_MISMATCH", False, False),
        (401, "THIRD_PARTY_AUTH_ERROR", False, False),
    ],
)
async def test_permanent_errors(
    fcm_service: FcmService,
    make_provider: MakeProvider,
    status: int,
    code: str,
    suppress: bool,
    recipient_fault: bool,
):
    fcm_service.fail(status, code)
    with pytest.raises(PermanentError) as caught:
        await make_provider().send(delivery(body="x"))
    assert (caught.value.code, caught.value.suppress) == (code, suppress)
    assert caught.value.recipient_fault is recipient_fault
    assert len(fcm_service.assertions) == 1  # THIRD_PARTY_AUTH_ERROR is not about our token


@pytest.mark.parametrize(
    ("status", "code", "headers", "retry_after"),
    [
        (429, "QUOTA_EXCEEDED", {"Retry-After": "60"}, 60.0),
        (503, "UNAVAILABLE", {}, None),
        (500, "INTERNAL", {}, None),
        (502, None, {}, None),
    ],
)
async def test_transient_errors(
    fcm_service: FcmService,
    make_provider: MakeProvider,
    status: int,
    code: str | None,
    headers: dict[str, str],
    retry_after: float | None,
):
    fcm_service.fail(status, code, headers)
    with pytest.raises(TransientError) as caught:
        await make_provider().send(delivery(body="x"))
    assert caught.value.retry_after == retry_after
    if code:
        assert caught.value.code == code


async def test_other_platforms_are_not_its_to_send(make_provider: MakeProvider):
    provider = make_provider()
    apns = delivery(to="ab" * 32, body="x")
    assert not provider.serves(apns.content)
    with pytest.raises(PermanentError) as caught:
        await provider.send(apns)
    assert not caught.value.recipient_fault


async def test_end_to_end_through_herald(
    database_url: str, fcm_service: FcmService, fcm_credentials: Path
):
    url = fcm_url(fcm_service, fcm_credentials)
    async with Herald(database_url, migrate=True, push=url) as herald:
        sent = await herald.send(channel="push", to=TOKEN, title="Hi", data={"n": 1})
        await herald.drain()
        fcm_service.fail(404, "UNREGISTERED")
        gone = await herald.send(channel="push", to=TOKEN.replace("0", "1"), body="bye")
        await herald.drain()

        view = await herald.get(sent.id)
        assert (view.status, view.provider) == ("sent", "fcm")
        assert view.provider_message_id is not None
        assert view.provider_message_id.startswith("projects/herald-test/messages/")
        (message,) = fcm_service.received
        assert message["data"] == {"n": "1"}

        dead = await herald.get(gone.id)
        assert dead.status == "dead"
        assert dead.last_error is not None
        assert "UNREGISTERED" in dead.last_error
        assert dead.rejected_recipients[0].suppress
