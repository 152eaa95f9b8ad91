"""Building providers from settings: URLs per channel, built-in schemes and entry points.

Third-party packages add schemes through the ``herald.providers`` entry-point group; the
entry point names the scheme and points at a callable ``(url, *, name, channel) -> Provider``.
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
    ProviderURL,
    split_provider_urls,
)
from herald.providers.capture import CaptureProvider

Factory = Callable[..., Provider]

# scheme -> (module, attribute, channels it can serve); imported lazily.
_BUILTIN: dict[str, tuple[str, str, frozenset[Channel]]] = {
    "smtp": ("herald.providers.smtp", "SmtpProvider", frozenset({Channel.EMAIL})),
    "capture": ("herald.providers.capture", "CaptureProvider", frozenset(Channel)),
}


def build_providers(urls_by_channel: dict[Channel, str | None]) -> dict[Channel, list[Provider]]:
    """Providers per channel in failover order; a channel with none gets the capture provider."""
    built: dict[Channel, list[Provider]] = {channel: [] for channel in Channel}
    for channel, name, url in _named_urls(urls_by_channel):
        provider_url = url.without(RESILIENCE_OPTIONS)
        built[channel].append(
            _factory(url.scheme, channel)(provider_url, name=name, channel=channel)
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
    builtin = _BUILTIN.get(scheme)
    if builtin is not None:
        module, attribute, channels = builtin
        if channel not in channels:
            served = ", ".join(sorted(c.value for c in channels))
            raise ConfigurationError(f"{scheme}:// serves {served}, not {channel.value}")
        cls: Any = getattr(importlib.import_module(module), attribute)
        return _with_channel(cls.from_url)
    for entry in entry_points(group="herald.providers"):
        if entry.name == scheme:
            factory: Factory = entry.load()
            return factory
    known = ", ".join(sorted(_BUILTIN))
    raise ConfigurationError(f"unknown provider scheme {scheme}:// (built in: {known})")


def _with_channel(from_url: Callable[..., Provider]) -> Factory:
    """Pass ``channel`` only to factories that take it (single-channel providers don't)."""
    if "channel" in inspect.signature(from_url).parameters:
        return from_url

    def build(url: ProviderURL, *, name: str, channel: Channel) -> Provider:
        return from_url(url, name=name)

    return build
