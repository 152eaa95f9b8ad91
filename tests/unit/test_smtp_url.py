"""``smtp://`` provider URLs: options, defaults and the errors a misconfiguration gets."""

from pathlib import Path

import pytest

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.domain.message import Address
from herald.providers.base import Provider, ProviderURL
from herald.providers.smtp import SmtpProvider, SmtpSettings

FROM = "from=noreply@example.org"


def settings(url: str) -> SmtpSettings:
    return SmtpSettings.from_url(ProviderURL.parse(url))


def test_defaults():
    s = settings(f"smtp://mail.example.org?{FROM}")
    assert s.host == "mail.example.org"
    assert s.tls == "starttls"
    assert s.port == 587
    assert s.sender == Address("", "noreply@example.org")
    assert s.envelope_from is None
    assert s.username is None
    assert s.password is None
    assert (s.pool_size, s.max_messages, s.idle_timeout, s.timeout) == (4, 100, 30.0, 30.0)
    assert s.verify is True
    assert s.ca_file is None
    assert s.helo is None
    assert s.pipelining is True


@pytest.mark.parametrize(
    ("tls", "port"), [("starttls", 587), ("tls", 465), ("none", 25), ("STARTTLS", 587)]
)
def test_default_port_follows_tls_mode(tls: str, port: int):
    s = settings(f"smtp://mail.example.org?tls={tls}&{FROM}")
    assert s.tls == tls.lower()
    assert s.port == port


def test_smtps_scheme_means_implicit_tls():
    s = settings(f"smtps://mail.example.org?{FROM}")
    assert (s.tls, s.port) == ("tls", 465)


def test_every_option(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    s = settings(
        "smtp://us%40er:p%3Ass@mail.example.org:2525?tls=none"
        "&from=Herald%20%3Cnoreply@example.org%3E&envelope_from=bounces@example.org"
        "&pool_size=8&max_messages=50&idle_timeout=2.5&timeout=0.5&verify=false"
        f"&ca_file={ca}&helo=worker-1.example.org&pipelining=false&name=primary"
    )
    assert s.port == 2525
    assert (s.username, s.password) == ("us@er", "p:ss")
    assert s.sender == Address("Herald", "noreply@example.org")
    assert s.envelope_from == "bounces@example.org"
    assert (s.pool_size, s.max_messages, s.idle_timeout, s.timeout) == (8, 50, 2.5, 0.5)
    assert s.verify is False
    assert s.ca_file == str(ca)
    assert s.helo == "worker-1.example.org"
    assert s.pipelining is False


def test_quoted_display_name_with_comma():
    s = settings("smtp://h?from=%22Shop%2C%20Inc.%22%20%3Cshop@example.org%3E")
    assert s.sender == Address("Shop, Inc.", "shop@example.org")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtp://mail.example.org", "from= (the default sender"),
        ("smtp://mail.example.org?from=", "from= (the default sender"),
        ("smtp://mail.example.org?from=nobody", "is not one address"),
        ("smtp://mail.example.org?from=a@x.org,b@x.org", "is not one address"),
        ("smtp://mail.example.org?from=Name%20%3C%3E", "is not one address"),
        (f"smtp://mail.example.org?tls=ssl&{FROM}", "must be starttls, tls or none"),
        (f"smtp://?{FROM}", "no SMTP host"),
        (f"http://mail.example.org?{FROM}", "not an smtp:// URL"),
        (f"smtp://mail.example.org?pool_size=0&{FROM}", "pool_size=0 must be positive"),
        (f"smtp://mail.example.org?pool_size=four&{FROM}", "is not an integer"),
        (f"smtp://mail.example.org?timeout=-1&{FROM}", "timeout=-1.0 must be positive"),
        (f"smtp://mail.example.org?idle_timeout=soon&{FROM}", "is not a number"),
        (f"smtp://mail.example.org?max_messages=0&{FROM}", "max_messages=0 must be positive"),
        (f"smtp://mail.example.org?verify=maybe&{FROM}", "is not a boolean"),
        (f"smtp://mail.example.org?pipelining=sometimes&{FROM}", "is not a boolean"),
        (f"smtp://mail.example.org?envelope_from=bounces&{FROM}", "is not an address"),
        (f"smtp://mail.example.org?helo=a%20b&{FROM}", "is not a host name"),
        (f"smtp://mail.example.org?ca_file=/no/such/ca.pem&{FROM}", "is not a readable file"),
        (f"smtp://:secret@mail.example.org?{FROM}", "password without a user name"),
    ],
)
def test_configuration_errors(url: str, message: str):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        settings(url)


def test_errors_never_show_the_password():
    with pytest.raises(ConfigurationError) as raised:
        settings("smtp://user:hunter2@mail.example.org?tls=bogus&from=noreply@example.org")
    assert "hunter2" not in str(raised.value)


def test_provider_from_url():
    url = ProviderURL.parse("smtp://user:hunter2@mail.example.org?from=noreply@example.org")
    provider = SmtpProvider.from_url(url, name="smtp#2")
    assert isinstance(provider, Provider)
    assert provider.name == "smtp#2"
    assert provider.channel is Channel.EMAIL
    assert provider.settings.host == "mail.example.org"
    assert "hunter2" not in repr(provider)


def test_unreadable_ca_file_is_a_configuration_error(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("this is not a certificate")
    url = ProviderURL.parse(f"smtp://mail.example.org?from=noreply@example.org&ca_file={ca}")
    with pytest.raises(ConfigurationError, match="ca_file"):
        SmtpProvider.from_url(url, name="smtp")
