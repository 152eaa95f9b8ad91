"""The Twilio provider against a local server speaking Twilio's Messages API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable

import pytest

from herald.domain.channels import Channel
from herald.domain.errors import (
    ConfigurationError,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import Delivery, Email, Sms
from herald.providers.base import ProviderURL
from herald.providers.registry import build_providers
from herald.providers.twilio import TwilioProvider
from tests.integration.http_fakes import unanswered_port
from tests.integration.twilio_server import LostReply, RawFailure, TwilioServer

PUBLIC = "https://herald.example.org/"
TO = "+14155552671"

Build = Callable[..., TwilioProvider]


def delivery(attempt: int = 1, body: str = "Your code is 123456") -> Delivery:
    return Delivery("n-1", Channel.SMS, attempt, Sms(to=TO, body=body))


@pytest.fixture
async def build(twilio_server: TwilioServer) -> AsyncIterator[Build]:
    """Providers built from URLs the way Herald builds them; all closed after the test."""
    built: list[TwilioProvider] = []

    def make(url: str | None = None, public_url: str | None = PUBLIC) -> TwilioProvider:
        providers = build_providers(
            {Channel.SMS: url or twilio_server.url()}, public_url=public_url
        )
        (provider,) = providers[Channel.SMS]
        assert isinstance(provider, TwilioProvider)
        built.append(provider)
        return provider

    yield make
    for provider in built:
        await provider.aclose()


async def test_a_message_reaches_twilio_with_its_fields_and_the_sid_comes_back(
    twilio_server: TwilioServer, build: Build
):
    provider = build()
    receipt = await provider.send(delivery())

    (message,) = twilio_server.messages
    assert receipt.provider_message_id == message.sid
    assert message.sid.startswith("SM")
    assert receipt.detail == f"twilio queued: {message.sid}"
    assert message.form == {
        "To": TO,
        "From": "+15550001111",
        "Body": "Your code is 123456",
        "StatusCallback": "https://herald.example.org/inbound/twilio/status",
    }


async def test_a_messaging_service_replaces_the_sender(twilio_server: TwilioServer, build: Build):
    sid = "MG" + "1" * 32
    url = (
        f"twilio://{twilio_server.account_sid}:{twilio_server.auth_token}@"
        f"?messaging_service_sid={sid}&base_url={twilio_server.base_url}"
    )
    receipt = await build(url).send(delivery())

    (message,) = twilio_server.messages
    assert message.form["MessagingServiceSid"] == sid
    assert "From" not in message.form
    assert receipt.detail == f"twilio accepted: {message.sid}"


async def test_without_a_public_url_no_status_callback_is_asked_for(
    twilio_server: TwilioServer, build: Build
):
    await build(public_url=None).send(delivery())
    await build(twilio_server.url(name="quiet", status_callback="false")).send(delivery())

    assert ["StatusCallback" in m.form for m in twilio_server.messages] == [False, False]


async def test_an_alphanumeric_sender_keeps_its_case(twilio_server: TwilioServer, build: Build):
    await build(twilio_server.url(sender="HeraldCo")).send(delivery())

    assert twilio_server.messages[0].form["From"] == "HeraldCo"


@pytest.mark.parametrize(
    ("status", "code", "suppress", "opt_out"),
    [
        (400, 21610, True, True),  # the recipient replied STOP
        (400, 30004, True, True),  # the recipient blocked the sender
        (400, 21211, True, False),  # invalid number
        (400, 21614, True, False),  # not a mobile number
        (400, 30005, True, False),  # unknown handset
        (400, 30006, True, False),  # landline or unreachable carrier
        (400, 30007, False, False),  # carrier filtered the content: the number is fine
        (400, 21617, False, False),  # an unknown refusal: permanent, nothing suppressed
    ],
)
async def test_refusals_about_the_recipient_or_message_are_permanent(
    twilio_server: TwilioServer, build: Build, status: int, code: int, suppress: bool, opt_out: bool
):
    twilio_server.fail(status, code, "refused")

    with pytest.raises(PermanentError) as raised:
        await build().send(delivery())

    error = raised.value
    assert (error.code, error.suppress, error.opt_out) == (str(code), suppress, opt_out)
    assert error.recipient_fault
    assert error.message.startswith(f"twilio {code}: refused")
    assert twilio_server.messages == []


@pytest.mark.parametrize(
    ("status", "code", "headers", "retry_after"),
    [
        (429, 20429, {"Retry-After": "7"}, 7.0),
        (429, None, {}, None),
        (400, 30008, {}, None),  # unknown error
        (400, 30500, {}, None),
        (400, 30001, {}, None),  # queue overflow
        (500, 20500, {}, None),
        (503, None, {"Retry-After": "2"}, 2.0),
    ],
)
async def test_rate_limits_and_twilio_faults_are_transient(
    twilio_server: TwilioServer,
    build: Build,
    status: int,
    code: int | None,
    headers: dict[str, str],
    retry_after: float | None,
):
    twilio_server.fail(status, code, "try later", **headers)

    with pytest.raises(TransientError) as raised:
        await build().send(delivery())

    assert raised.value.code == str(code or status)
    assert raised.value.retry_after == retry_after


async def test_an_unreachable_handset_is_retried_a_few_times_then_given_up(
    twilio_server: TwilioServer, build: Build
):
    provider = build(twilio_server.url(unreachable_retries="2"))
    for attempt in (1, 2, 3):
        twilio_server.fail(400, 30003, "Unreachable destination handset")
        with pytest.raises((TransientError, PermanentError)) as raised:
            await provider.send(delivery(attempt=attempt))
        expected = TransientError if attempt <= 2 else PermanentError
        assert type(raised.value) is expected, attempt

    final = raised.value
    assert isinstance(final, PermanentError)
    assert (final.suppress, final.opt_out) == (False, False)  # a phone switched off is not bad
    assert "still unreachable after 3 attempts" in final.message


@pytest.mark.parametrize("code", [21606, 21608, 21408, 30002])
async def test_account_side_refusals_fail_over(
    twilio_server: TwilioServer, build: Build, code: int
):
    twilio_server.fail(400, code, "not allowed")

    with pytest.raises(PermanentError) as raised:
        await build().send(delivery())

    assert not raised.value.recipient_fault
    assert not raised.value.suppress


async def test_a_wrong_auth_token_is_refused_by_twilio_and_fails_over(
    twilio_server: TwilioServer, build: Build
):
    url = twilio_server.url().replace(twilio_server.auth_token, "wrong")
    provider = build(url)

    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery())
    with pytest.raises(PermanentError):
        await provider.check()

    assert raised.value.code == "20003"
    assert not raised.value.recipient_fault
    assert twilio_server.requests == []  # refused before the form was read


async def test_responses_that_are_not_twilios_json_are_classified_by_status(
    twilio_server: TwilioServer, build: Build
):
    provider = build()
    twilio_server.failures.append(RawFailure(502, "<html>Bad Gateway</html>"))
    twilio_server.failures.append(RawFailure(404, "<html>Not Found</html>"))
    twilio_server.failures.append(RawFailure(201, "{truncated", "application/json"))

    with pytest.raises(TransientError) as transient:
        await provider.send(delivery())
    with pytest.raises(PermanentError) as permanent:
        await provider.send(delivery())
    created = await provider.send(delivery())

    assert transient.value.code == "502"
    assert "Bad Gateway" in transient.value.message
    assert permanent.value.code == "404"
    # Created but unreadable: taken as sent, since sending again would duplicate it.
    assert created.provider_message_id is None
    assert created.detail == "twilio HTTP 201 without a message sid"


async def test_check_fetches_the_account(build: Build):
    await build().check()


async def test_an_unreachable_endpoint_is_transient(build: Build):
    provider = build(
        "twilio://AC1:token@+15550001111?base_url=http://127.0.0.1:9&timeout=5"  # discard port
    )
    with pytest.raises(TransientError) as raised:
        await provider.send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)


async def test_a_connect_timeout_is_transient(build: Build):
    """Never connected, so never sent: not a possible duplicate."""
    with unanswered_port() as port:
        provider = build(
            f"twilio://AC1:token@+15550001111?base_url=http://127.0.0.1:{port}&timeout=0.4"
        )
        with pytest.raises(TransientError) as raised:
            await provider.send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)
    assert "timed out" in raised.value.message


@pytest.mark.parametrize("lost", ["hang", "close"])
async def test_a_reply_lost_after_sending_is_an_unknown_outcome(
    twilio_server: TwilioServer, build: Build, lost: LostReply
):
    """Twilio takes no idempotency key: the message may exist although no reply came."""
    twilio_server.lost_replies.append(lost)
    provider = build(twilio_server.url(timeout="0.4"))

    with pytest.raises(UnknownOutcome) as raised:
        await provider.send(delivery())

    assert len(twilio_server.messages) == 1  # it was created all the same
    assert "may have been accepted" in raised.value.message


async def test_other_content_is_not_the_recipients_fault(build: Build):
    email = Email(message_id="m@x", date=0.0, subject="s", to=())
    with pytest.raises(PermanentError) as raised:
        await build().send(Delivery("n-1", Channel.SMS, 1, email))
    assert not raised.value.recipient_fault


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("twilio://AC1@+15550001111", "account SID and auth token"),
        ("twilio://AC1:token@", "exactly one of"),
        ("twilio://AC1:token@+15550001111?messaging_service_sid=MG1", "exactly one of"),
        ("twilio://AC1:token@+1555?unreachable_retries=-1", "must not be negative"),
        ("twilio://AC1:token@+1555?timeout=0", "must be positive"),
        ("twilio://AC1:token@+1555?max_connections=-1", "must be positive"),
    ],
)
def test_urls_that_cannot_work_are_refused_at_start(url: str, problem: str):
    with pytest.raises(ConfigurationError, match=problem) as raised:
        TwilioProvider.from_url(ProviderURL.parse(url), name="twilio")
    assert "token" not in str(raised.value).replace("auth token", "")


def test_twilio_serves_sms_only():
    with pytest.raises(ConfigurationError, match="serves sms, not email"):
        build_providers({Channel.EMAIL: "twilio://AC1:token@+15550001111"})


def test_the_signature_check_follows_twilios_algorithm(twilio_server: TwilioServer):
    provider = TwilioProvider.from_url(ProviderURL.parse(twilio_server.url()), name="twilio")
    url = "https://herald.example.org/inbound/twilio/status"
    form = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC1"}
    good = twilio_server.signature(url, form)

    assert provider.signature_valid(url, form.items(), good)
    assert not provider.signature_valid(url + "?x=1", form.items(), good)
    assert not provider.signature_valid(url, [*form.items(), ("To", "+1")], good)
    assert not provider.signature_valid(url, form.items(), twilio_server.signature(url, form, "x"))
    assert not provider.signature_valid(url, form.items(), base64.b64encode(b"x" * 20).decode())
