"""What the HTTP email API providers (SendGrid, Resend, Postmark) share: their URL settings
and one POST that tells a request that never left from one whose outcome is unknown.

Their URLs all read
``scheme://API_KEY@?from=…&base_url=…&timeout=…&max_connections=…&name=…``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import orjson

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.domain.message import Address
from herald.providers.base import ProviderURL
from herald.providers.http import HttpClient, HttpResponse, client_from_url

#: Options every HTTP email API URL accepts.
COMMON_OPTIONS = frozenset({"from", "base_url", "timeout", "max_connections"})
_MAILBOX = re.compile(r"^[^\s<>@,;\"]+@[^\s<>@,;\"]+$")
# Display names with these need quoting in a "Name <addr>" string (RFC 5322 specials).
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


@dataclass(frozen=True, slots=True)
class EmailApiSettings:
    """An HTTP email API URL, validated: the key, the endpoint and the default sender."""

    api_key: str
    base_url: str
    sender: Address
    timeout: float = 30.0

    @classmethod
    def from_url(
        cls,
        url: ProviderURL,
        *,
        default_base_url: str,
        options: frozenset[str] = COMMON_OPTIONS,
    ) -> EmailApiSettings:
        """Parse ``scheme://API_KEY@?from=…``; raises ConfigurationError naming the problem."""
        where = url.redacted
        api_key = url.username or url.password
        if not api_key:
            raise ConfigurationError(f"{where}: no API key (write {url.scheme}://API_KEY@)")
        raw_from = url.option("from")
        if not raw_from:
            raise ConfigurationError(
                f"{where}: option from= (the default sender, e.g. from=noreply@example.org) "
                "is required"
            )
        base_url = (url.option("base_url") or default_base_url).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError(f"{where}: base_url={base_url!r} is not an http(s) URL")
        timeout = url.number("timeout", 30.0)
        if timeout <= 0:
            raise ConfigurationError(f"{where}: timeout={timeout} must be positive")
        url.warn_unknown(options)
        return cls(
            api_key=api_key,
            base_url=base_url,
            sender=parse_sender(raw_from, where),
            timeout=timeout,
        )


class EmailApiProvider:
    """What the HTTP email API providers share: settings, one keep-alive client, one
    endpoint with its auth headers, and building from a URL. Subclasses name their API's
    default base URL and path, build the request and read the answer."""

    channel = Channel.EMAIL
    #: The API's own address (``?base_url=`` overrides it) and its send endpoint.
    default_base_url: ClassVar[str]
    path: ClassVar[str]
    #: Options of this API's URLs beyond the common ones.
    options: ClassVar[frozenset[str]] = COMMON_OPTIONS

    def __init__(
        self, settings: EmailApiSettings, *, name: str, http: HttpClient | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self._endpoint = f"{settings.base_url}{self.path}"
        #: Every request's headers, built once: JSON both ways, and the auth.
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.auth_headers(settings.api_key),
        }
        self._client = http or HttpClient(timeout=settings.timeout)

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> Self:
        """Build from ``scheme://API_KEY@?from=…``; raises ConfigurationError."""
        settings = EmailApiSettings.from_url(
            url, default_base_url=cls.default_base_url, options=cls.options
        )
        return cls(settings, name=name, http=client_from_url(url))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """How the API takes its key: a bearer token, unless the API says otherwise."""
        return {"Authorization": f"Bearer {api_key}"}

    @property
    def sender(self) -> Address:
        """The default From; its domain also names this provider's Message-IDs."""
        return self.settings.sender

    async def check(self) -> None:
        """Nothing to probe without spending quota; a bad key shows on the first send."""

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_sender(value: str, where: str) -> Address:
    """One address, ``noreply@example.org`` or ``Name <noreply@example.org>``."""
    parsed = getaddresses([value])
    if len(parsed) != 1 or not _MAILBOX.match(parsed[0][1]):
        raise ConfigurationError(
            f"{where}: from={value!r} is not one address (e.g. 'Name <noreply@example.org>')"
        )
    name, addr = parsed[0]
    return Address(name, addr)


def mailbox(address: Address) -> str:
    """``Name <addr>`` as the JSON APIs take it (UTF-8, no RFC 2047 encoding)."""
    if not address.name:
        return address.addr
    name = address.name
    if _SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{escaped}"'
    return f"{name} <{address.addr}>"


def unique(addresses: tuple[Address, ...], seen: set[str]) -> list[Address]:
    """The addresses not yet in ``seen`` (compared case-insensitively), adding them to it.

    APIs that refuse one address twice in a message (SendGrid) get each only once.
    """
    kept: list[Address] = []
    for address in addresses:
        key = address.addr.lower()
        if key not in seen:
            seen.add(key)
            kept.append(address)
    return kept


async def post_json(
    client: HttpClient,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    idempotent: bool,
) -> HttpResponse:
    """POST ``body`` as JSON (``headers`` say so). The client's timeout tells a request
    that never left (fail over) from one that may have been accepted (UnknownOutcome unless
    the API deduplicates: ``idempotent``)."""
    return await client.request(
        "POST",
        url,
        data=orjson.dumps(body),
        headers=headers,
        idempotent=idempotent,
    )
