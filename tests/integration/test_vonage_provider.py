"""The Vonage provider against a local server speaking Vonage's SMS API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from herald.domain.channels import Channel
from herald.domain.errors import (
    ConfigurationError,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import Delivery, Sms
from herald.providers.base import ProviderURL
from herald.providers.registry import build_providers
from herald.providers.vonage import VonageProvider
from tests.integration.vonage_server import VonageServer

PUBLIC = "https://herald.example.org"
TO = "+447700900123"

Build = Callable[..., VonageProvider]


def delivery(body: str = "Your code is 123456", encoding: str = "GSM-7") -> Delivery:
    return Delivery("n-1", Channel.SMS, 1, Sms(to=TO, body=body, encoding=encoding))


@pytest.fixture
async def build(vonage_server: VonageServer) -> AsyncIterator[Build]:
    built: list[VonageProvider] = []

    def make(url: str | None = None, public_url: str | None = PUBLIC) -> VonageProvider:
        providers = build_providers(
            {Channel.SMS: url or vonage_server.url()}, public_url=public_url
        )
        (provider,) = providers[Channel.SMS]
        assert isinstance(provider, VonageProvider)
        built.append(provider)
        return provider

    yield make
    for provider in built:
        await provider.aclose()


async def test_a_message_reaches_vonage_and_its_message_id_comes_back(
    vonage_server: VonageServer, build: Build
):
    provider = build()
    receipt = await provider.send(delivery())

    (message,) = vonage_server.messages
    assert receipt.provider_message_id == message.message_id
    assert receipt.parts == ()  # nothing more to record for a one-part message
    assert message.form == {
        "api_key": vonage_server.api_key,
        "api_secret": vonage_server.api_secret,
        "from": "Herald",
        "to": "447700900123",  # international format without the +
        "text": "Your code is 123456",
        "client-ref": "n-1",
        "callback": f"{PUBLIC}/inbound/vonage/status?token={provider.callback_token}",
    }


async def test_ucs2_text_is_sent_as_unicode(vonage_server: VonageServer, build: Build):
    await build(public_url=None).send(delivery("Zażółć gęślą jaźń", encoding="UCS-2"))

    (message,) = vonage_server.messages
    assert message.form["type"] == "unicode"
    assert message.form["text"] == "Zażółć gęślą jaźń"
    assert "callback" not in message.form


async def test_a_long_message_sent_in_parts_names_each(vonage_server: VonageServer, build: Build):
    vonage_server.parts_per_message = 3
    receipt = await build().send(delivery("x" * 400))

    ids = [m.message_id for m in vonage_server.messages]
    assert receipt.provider_message_id == ids[0]
    assert receipt.parts == tuple(ids)  # each part's receipt names its own id
    assert receipt.detail == f"vonage accepted 3 parts: {', '.join(ids)}"


@pytest.mark.parametrize(
    ("status", "kind", "suppress", "recipient_fault"),
    [
        (1, TransientError, False, True),  # throttled
        (5, TransientError, False, True),  # internal error
        (2, PermanentError, False, True),  # missing parameters
        (3, PermanentError, False, True),  # invalid parameters
        (6, PermanentError, False, True),  # unroutable
        (7, PermanentError, True, True),  # number barred
        (8, PermanentError, False, False),  # partner account barred
        (9, PermanentError, False, False),  # quota exceeded
        (15, PermanentError, False, False),  # invalid sender
        (29, PermanentError, False, False),  # non-whitelisted destination
        (77, PermanentError, False, False),  # undocumented: fail over
    ],
)
async def test_refusals_in_an_http_200_body_are_classified(
    vonage_server: VonageServer,
    build: Build,
    status: int,
    kind: type[Exception],
    suppress: bool,
    recipient_fault: bool,
):
    vonage_server.fail(status, "refused")

    with pytest.raises(kind) as raised:
        await build().send(delivery())

    error = raised.value
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == str(status)
    assert error.message == f"vonage status {status}: refused"
    if isinstance(error, PermanentError):
        assert (error.suppress, error.recipient_fault) == (suppress, recipient_fault)


async def test_wrong_credentials_fail_over(vonage_server: VonageServer, build: Build):
    provider = build(vonage_server.url().replace(vonage_server.api_secret, "wrong"))

    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery())
    with pytest.raises(PermanentError):
        await provider.check()

    assert raised.value.code == "4"
    assert "Bad Credentials" in raised.value.message
    assert not raised.value.recipient_fault


@pytest.mark.parametrize(("status", "kind"), [(500, TransientError), (429, TransientError)])
async def test_http_errors_are_classified_by_status(
    vonage_server: VonageServer, build: Build, status: int, kind: type[Exception]
):
    vonage_server.http_failures.append(status)
    with pytest.raises(kind):
        await build().send(delivery())


async def test_a_refused_part_after_sent_ones_is_an_unknown_outcome(
    vonage_server: VonageServer, build: Build
):
    """Retrying would send the parts that went out again."""
    vonage_server.parts_per_message = 2
    vonage_server.last_part_refused = (1, "Throttled")

    with pytest.raises(UnknownOutcome) as raised:
        await build().send(delivery("x" * 300))

    assert raised.value.code == "1"
    assert "after other parts were sent" in raised.value.message


async def test_an_unreadable_200_may_have_been_sent(vonage_server: VonageServer, build: Build):
    vonage_server.http_failures.append(200)  # "scripted", not the documented JSON

    with pytest.raises(UnknownOutcome):
        await build().send(delivery())


async def test_a_reply_lost_after_sending_is_an_unknown_outcome(
    vonage_server: VonageServer, build: Build
):
    """Vonage does not deduplicate on client-ref: the message went out although no reply
    came."""
    vonage_server.lost_replies = 1

    with pytest.raises(UnknownOutcome) as raised:
        await build().send(delivery())

    assert len(vonage_server.messages) == 1
    assert "may have been accepted" in raised.value.message


async def test_a_refused_connection_is_only_transient(build: Build):
    with pytest.raises(TransientError) as raised:
        await build("vonage://k:s@Herald?base_url=http://127.0.0.1:9").send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)


async def test_check_asks_for_the_balance(build: Build):
    await build().check()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("vonage://key@Herald", "API key and API secret"),
        ("vonage://key:secret@", "give a sender"),
        ("vonage://key:secret@Herald?timeout=-1", "must be positive"),
    ],
)
def test_urls_that_cannot_work_are_refused_at_start(url: str, problem: str):
    with pytest.raises(ConfigurationError, match=problem):
        VonageProvider.from_url(ProviderURL.parse(url), name="vonage")


def test_the_callback_token_depends_on_the_secret():
    one = VonageProvider.from_url(ProviderURL.parse("vonage://k:secret1@Herald"), name="v")
    two = VonageProvider.from_url(ProviderURL.parse("vonage://k:secret2@Herald"), name="v")

    assert one.callback_token != two.callback_token
    assert one.callback_token_valid(one.callback_token)
    assert not one.callback_token_valid(two.callback_token)
