"""The provider interface and provider URLs.

A provider delivers on one channel. ``send`` returns a :class:`Receipt` or raises a
:class:`~herald.domain.errors.TransientError` / :class:`~herald.domain.errors.PermanentError`;
it never returns a bare success flag. Providers talk only to the outside world.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import structlog

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError
from herald.domain.message import Delivery, Receipt
from herald.domain.network import IPNetwork

C = TypeVar("C")
_log = structlog.get_logger(__name__)

#: Options every provider URL accepts that the worker reads (circuit breaker, rate limit);
#: the registry removes them before a provider sees its URL.
RESILIENCE_OPTIONS = frozenset(
    {
        "breaker_failures",
        "breaker_cooldown",
        "breaker_max_cooldown",
        "breaker_probes",
        "rate",
        "limit_wait",
    }
)
#: ``concurrency`` (sends in flight at once per process) is read by the worker and left on
#: the URL: a provider may size its own resources by it (Apprise's threads do).
CONCURRENCY_OPTION = "concurrency"
#: Options every provider URL accepts and no provider reads itself: ``name`` (the
#: registry's) and ``concurrency`` (the worker's).
_EVERY_PROVIDER = frozenset({"name", CONCURRENCY_OPTION})


@runtime_checkable
class Provider(Protocol):
    """What every provider implements."""

    #: Shown as a notification's ``provider``; unique among configured providers.
    name: str
    channel: Channel

    async def send(self, delivery: Delivery) -> Receipt:
        """Deliver one message or raise a classified DeliveryError."""
        ...

    async def check(self) -> None:
        """Raise if the provider cannot currently be reached (used by ``/readyz``)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    """Settings that providers fall back to when their URL does not say."""

    #: ``whsec_…`` secrets (comma/space separated): ``HERALD_WEBHOOK_SECRET`` or the stored one.
    webhook_secret: str | None = None
    #: ``HERALD_WEBHOOK_ALLOWED_NETWORKS``: exempt from the SSRF guard.
    webhook_allowed_networks: tuple[IPNetwork, ...] = ()


def content_of(delivery: Delivery, kind: type[C], provider: str) -> C:
    """The delivery's content if it is a ``kind``; otherwise this provider cannot carry it,
    which is not the recipient's fault (the worker tries the next provider)."""
    content = delivery.content
    if not isinstance(content, kind):
        raise PermanentError(
            f"{provider} cannot deliver {type(content).__name__.lower()} content",
            recipient_fault=False,
        )
    return content


@dataclass(frozen=True, slots=True)
class ProviderURL:
    """A parsed provider URL: ``scheme://user:password@host:port/path?query``."""

    raw: str
    scheme: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    path: str
    query: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> ProviderURL:
        parts = urlsplit(url.strip())
        if not parts.scheme:
            raise ConfigurationError(f"provider URL {redact(url)!r} has no scheme")
        try:
            port = parts.port
        except ValueError as exc:
            # ``apprise+tgram://123:TOKEN/…``: a URL handed on to another library (a ``+``
            # scheme) is that library's to judge; its netloc need not hold a port.
            if "+" not in parts.scheme:
                raise ConfigurationError(f"provider URL {redact(url)!r}: {exc}") from None
            port = None
        return cls(
            raw=url.strip(),
            scheme=parts.scheme.lower(),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=port,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        )

    def without(self, keys: frozenset[str]) -> ProviderURL:
        """The same URL minus the query options named in ``keys`` (in ``raw`` too, for
        providers that hand their URL on, as Apprise's does; untouched if none is there)."""
        if not keys & self.query.keys():
            return self
        parts = urlsplit(self.raw)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in keys]
        raw = urlunsplit(parts._replace(query=urlencode(kept)))
        return replace(self, raw=raw, query={k: v for k, v in self.query.items() if k not in keys})

    def warn_unknown(self, known: frozenset[str]) -> None:
        """Log each option that is neither in ``known`` nor one every provider accepts: a
        typo in a setting should show, but not stop Herald."""
        for key in sorted(self.query.keys() - known - _EVERY_PROVIDER):
            _log.warning("provider.unknown_option", url=self.redacted, option=key)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.query.get(key, default)

    def flag(self, key: str, default: bool) -> bool:
        value = self.query.get(key)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"{self.scheme}:// option {key}={value!r} is not a boolean")

    def number(self, key: str, default: float) -> float:
        value = self.query.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigurationError(
                f"{self.scheme}:// option {key}={value!r} is not a number"
            ) from None

    def integer(self, key: str, default: int) -> int:
        value = self.query.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(
                f"{self.scheme}:// option {key}={value!r} is not an integer"
            ) from None

    @property
    def redacted(self) -> str:
        return redact(self.raw)


def redact(url: str) -> str:
    """The URL with its password (and any ``token``/``key`` query values) hidden; a user
    name without a password is an API key (``sendgrid://KEY@``) and is hidden too."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    elif parts.username:
        netloc = "***@" + netloc.split("@", 1)[1]
    query = "&".join(
        f"{k}=***"
        if any(s in k.lower() for s in ("token", "key", "secret", "password"))
        else f"{k}={v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{rebuilt}?{query}" if query else rebuilt


def split_provider_urls(value: str | None) -> list[str]:
    """Provider URLs from a setting: comma- or newline-separated, blanks ignored."""
    if not value:
        return []
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def tls_context(ca_file: str | None, where: str) -> ssl.SSLContext:
    """The system's trust store, plus ``ca_file`` (private CAs, test servers) if given."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"{where} ca_file={ca_file!r}: {exc}") from None
    return context
