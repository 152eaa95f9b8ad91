"""HTTP email API URLs (sendgrid://, resend://): what they say, and what they refuse."""

from __future__ import annotations

import pytest

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.domain.message import Address
from herald.providers.base import ProviderURL
from herald.providers.email_api import EmailApiSettings, mailbox
from herald.providers.registry import build_providers
from herald.providers.resend import ResendProvider
from herald.providers.sendgrid import SendGridProvider


def settings(url: str) -> EmailApiSettings:
    return EmailApiSettings.from_url(ProviderURL.parse(url), default_base_url="https://api.x.com")


def test_a_url_names_key_sender_and_endpoint():
    parsed = settings(
        "sendgrid://SG.abc.def@?from=Shop%20%3Cshop@example.org%3E"
        "&base_url=http://127.0.0.1:8025/&timeout=5"
    )
    assert parsed == EmailApiSettings(
        api_key="SG.abc.def",
        base_url="http://127.0.0.1:8025",
        sender=Address("Shop", "shop@example.org"),
        timeout=5.0,
    )
    assert settings("resend://re_1@?from=a@example.org").base_url == "https://api.x.com"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sendgrid://?from=a@example.org", "no API key"),
        ("sendgrid://KEY@", "from= "),
        ("sendgrid://KEY@?from=not-an-address", "is not one address"),
        ("sendgrid://KEY@?from=a@example.org&base_url=ftp://x.org", "is not an http(s) URL"),
        ("sendgrid://KEY@?from=a@example.org&timeout=0", "must be positive"),
        ("sendgrid://KEY@?from=a@example.org&timeout=soon", "is not a number"),
    ],
)
def test_urls_that_cannot_work_are_refused_at_start_up(url: str, problem: str):
    with pytest.raises(ConfigurationError) as caught:
        settings(url)
    assert problem in str(caught.value)
    assert "//KEY@" not in str(caught.value)  # the key never shows in an error


def test_the_registry_builds_both_with_their_names():
    built = build_providers(
        {
            Channel.EMAIL: "sendgrid://SG.k@?from=a@example.org,"
            "resend://re_k@?from=a@example.org&name=backup"
        }
    )
    sendgrid, resend = built[Channel.EMAIL]
    assert isinstance(sendgrid, SendGridProvider)
    assert isinstance(resend, ResendProvider)
    assert (sendgrid.name, resend.name) == ("sendgrid", "backup")


def test_an_email_api_cannot_serve_another_channel():
    with pytest.raises(ConfigurationError, match="serves email, not sms"):
        build_providers({Channel.SMS: "sendgrid://SG.k@?from=a@example.org"})


@pytest.mark.parametrize(
    ("address", "formatted"),
    [
        (Address("", "a@example.org"), "a@example.org"),
        (Address("Zoë Ångström", "z@example.org"), "Zoë Ångström <z@example.org>"),
        (Address("Doe, Jane", "j@example.org"), '"Doe, Jane" <j@example.org>'),
        (Address('Say "hi"', "h@example.org"), '"Say \\"hi\\"" <h@example.org>'),
    ],
)
def test_mailboxes_quote_display_names_only_when_needed(address: Address, formatted: str):
    assert mailbox(address) == formatted
