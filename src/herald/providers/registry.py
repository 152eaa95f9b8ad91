"""Building providers from settings: URLs per channel, built-in schemes and entry points.

Third-party packages add schemes through the ``herald.providers`` entry-point group; the
entry point names the scheme and points at a callable ``(url, *, name, channel) -> Provider``
(it is also given ``defaults``, a :class:`ProviderDefaults`, if it takes that keyword).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.providers.base import Provider, ProviderDefaults, ProviderURL, split_provider_urls
from herald.providers.capture import CaptureProvider

Factory = Callable[..., Provider]

# scheme -> (module, attribute, channels it can serve); imported lazily.
_BUILTIN: dict[str, tuple[str, str, frozenset[Channel]]] = {
    "smtp": ("herald.providers.smtp", "SmtpProvider", frozenset({Channel.EMAIL})),
    "capture": ("herald.providers.capture", "CaptureProvider", frozenset(Channel)),
    "webhook": ("herald.providers.webhook", "WebhookProvider", frozenset({Channel.WEBHOOK})),
}


def build_providers(
    urls_by_channel: dict[Channel, str | None], defaults: ProviderDefaults | None = None
) -> dict[Channel, list[Provider]]:
    """Providers per channel in failover order; a channel with none gets the capture provider."""
    defaults = defaults or ProviderDefaults()
    built: dict[Channel, list[Provider]] = {}
    taken: set[str] = set()
    for channel in Channel:
        providers: list[Provider] = []
        for raw in split_provider_urls(urls_by_channel.get(channel)):
            url = ProviderURL.parse(raw)
            name = url.option("name") or _default_name(url.scheme, taken)
            if name in taken:
                raise ConfigurationError(f"two providers are named {name!r}; set ?name= on one")
            taken.add(name)
            factory = _factory(url.scheme, channel)
            providers.append(factory(url, name=name, channel=channel, defaults=defaults))
        built[channel] = providers or [CaptureProvider(channel)]
    return built


def _default_name(scheme: str, taken: set[str]) -> str:
    if scheme not in taken:
        return scheme
    n = 2
    while f"{scheme}#{n}" in taken:
        n += 1
    return f"{scheme}#{n}"


def _factory(scheme: str, channel: Channel) -> Factory:
    builtin = _BUILTIN.get(scheme)
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
    """Pass ``channel`` and ``defaults`` only to factories that take them (single-channel
    providers don't take ``channel``; only some need ``defaults``)."""
    parameters = inspect.signature(from_url).parameters
    wanted = {"channel", "defaults"}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        wanted &= parameters.keys()

    def build(
        url: ProviderURL, *, name: str, channel: Channel, defaults: ProviderDefaults
    ) -> Provider:
        given = {"channel": channel, "defaults": defaults}
        return from_url(url, name=name, **{k: given[k] for k in wanted})

    return build
