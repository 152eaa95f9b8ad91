"""Building providers from settings: URLs per channel, built-in schemes and entry points.

A scheme ``base+rest`` that is not registered itself goes to ``base`` (``apprise+slack://``
is the ``apprise`` provider, which hands ``slack://…`` to Apprise).
Third-party packages add schemes through the ``herald.providers`` entry-point group; the
entry point names the scheme and points at a callable ``(url, *, name, channel) -> Provider``.
Built-in factories may also take ``public_url`` (where provider callbacks reach Herald) and
``defaults`` (a :class:`ProviderDefaults`: settings such as the default webhook secret).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.providers.base import (
    RESILIENCE_OPTIONS,
    Provider,
    ProviderDefaults,
    ProviderURL,
    split_provider_urls,
)
from herald.providers.capture import CaptureProvider

Factory = Callable[..., Provider]

# scheme -> (module, attribute, channels it can serve); imported lazily.
_BUILTIN: dict[str, tuple[str, str, frozenset[Channel]]] = {
    "smtp": ("herald.providers.smtp", "SmtpProvider", frozenset({Channel.EMAIL})),
    "capture": ("herald.providers.capture", "CaptureProvider", frozenset(Channel)),
    "sendgrid": ("herald.providers.sendgrid", "SendGridProvider", frozenset({Channel.EMAIL})),
    "resend": ("herald.providers.resend", "ResendProvider", frozenset({Channel.EMAIL})),
    "postmark": ("herald.providers.postmark", "PostmarkProvider", frozenset({Channel.EMAIL})),
    "apprise": ("herald.providers.apprise_chat", "AppriseProvider", frozenset({Channel.CHAT})),
    "twilio": ("herald.providers.twilio", "TwilioProvider", frozenset({Channel.SMS})),
    "vonage": ("herald.providers.vonage", "VonageProvider", frozenset({Channel.SMS})),
    "webpush": ("herald.providers.webpush", "WebPushProvider", frozenset({Channel.PUSH})),
    "fcm": ("herald.providers.fcm", "FcmProvider", frozenset({Channel.PUSH})),
    "apns": ("herald.providers.apns", "ApnsProvider", frozenset({Channel.PUSH})),
    "webhook": ("herald.providers.webhook", "WebhookProvider", frozenset({Channel.WEBHOOK})),
}


def build_providers(
    urls_by_channel: dict[Channel, str | None],
    *,
    public_url: str | None = None,
    defaults: ProviderDefaults | None = None,
) -> dict[Channel, list[Provider]]:
    """Providers per channel in failover order; a channel with none gets the capture provider.

    ``public_url`` (HERALD_PUBLIC_URL) is handed to providers that ask the outside service to
    call Herald back (delivery status callbacks); ``defaults`` to those that fall back on
    settings (the webhook provider's secret and allowed networks). The resilience options
    are the worker's: providers get their URL without them."""
    defaults = defaults or ProviderDefaults()
    built: dict[Channel, list[Provider]] = {channel: [] for channel in Channel}
    for channel, name, url in _named_urls(urls_by_channel):
        factory = _factory(url.scheme, channel)
        provider_url = url.without(RESILIENCE_OPTIONS)
        built[channel].append(
            factory(
                provider_url, name=name, channel=channel, public_url=public_url, defaults=defaults
            )
        )
    return {
        channel: providers or [CaptureProvider(channel)] for channel, providers in built.items()
    }


def provider_urls(urls_by_channel: dict[Channel, str | None]) -> dict[str, ProviderURL]:
    """Each configured provider's URL by provider name (the worker reads its resilience
    options)."""
    return {name: url for _, name, url in _named_urls(urls_by_channel)}


def _named_urls(
    urls_by_channel: dict[Channel, str | None],
) -> Iterator[tuple[Channel, str, ProviderURL]]:
    taken: set[str] = set()
    for channel in Channel:
        for raw in split_provider_urls(urls_by_channel.get(channel)):
            url = ProviderURL.parse(raw)
            name = url.option("name") or _default_name(url.scheme, taken)
            if name in taken:
                raise ConfigurationError(f"two providers are named {name!r}; set ?name= on one")
            taken.add(name)
            yield channel, name, url


def _default_name(scheme: str, taken: set[str]) -> str:
    if scheme not in taken:
        return scheme
    n = 2
    while f"{scheme}#{n}" in taken:
        n += 1
    return f"{scheme}#{n}"


def _factory(scheme: str, channel: Channel) -> Factory:
    # ``apprise+slack``: a scheme with a ``+`` is served by the provider named before it.
    builtin = _BUILTIN.get(scheme) or _BUILTIN.get(scheme.partition("+")[0])
    if builtin is not None:
        module, attribute, channels = builtin
        if channel not in channels:
            served = ", ".join(sorted(c.value for c in channels))
            raise ConfigurationError(f"{scheme}:// serves {served}, not {channel.value}")
        cls: Any = getattr(importlib.import_module(module), attribute)
        return _taking_what_it_needs(cls.from_url)
    for entry in entry_points(group="herald.providers"):
        if entry.name == scheme:
            return _taking_what_it_needs(entry.load())
    known = ", ".join(sorted(_BUILTIN))
    raise ConfigurationError(f"unknown provider scheme {scheme}:// (built in: {known})")


def _taking_what_it_needs(from_url: Callable[..., Provider]) -> Factory:
    """Pass ``channel``, ``public_url`` and ``defaults`` only to factories that take them
    (single-channel providers don't need the channel; only providers with callbacks need the
    public URL; only some need the defaults)."""
    accepted = inspect.signature(from_url).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return from_url
    optional = [key for key in ("channel", "public_url", "defaults") if key not in accepted]
    if not optional:
        return from_url

    def build(url: ProviderURL, *, name: str, **context: Any) -> Provider:
        for key in optional:
            context.pop(key)
        return from_url(url, name=name, **context)

    return build
