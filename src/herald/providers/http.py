"""What every HTTP API provider shares: one keep-alive client, and one place that turns
transport errors and status codes into Herald's error classes.

aiohttp rather than httpx: at 64 requests in flight on this kind of machine aiohttp sends
~7,000–10,000 requests/s where httpx's pool manages ~350 (PERFORMANCE.md; httpx #3215).
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl as ssl_module
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import aiohttp.abc
import orjson

from herald import __version__
from herald.domain.errors import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
    UnknownOutcome,
    transient_http_status,
)
from herald.providers.base import ProviderURL

USER_AGENT = f"Herald/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024
#: Headers of a form-encoded request to an API that answers JSON (Twilio, Vonage).
FORM_HEADERS: Final = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Accept": "application/json",
}
#: Seconds allowed to open a connection (within a request's own timeout).
CONNECT_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes  # at most ``max_body`` bytes: larger responses are cut

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON, or None when it is not (an HTML error page, a cut body)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class HttpClient:
    """A lazily created ``aiohttp.ClientSession`` with Herald's defaults.

    ``timeout`` covers a whole request, of which at most half (and at most
    ``CONNECT_TIMEOUT``) may go to connecting, so that a request that never got a
    connection is told from one that may have been accepted. ``resolver`` and ``ssl`` go to
    the connector: the SSRF guard checks every resolved address in its resolver, a private
    CA goes in the TLS context.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_connections: int = 100,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        ssl: ssl_module.SSLContext | bool = True,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout / 2, CONNECT_TIMEOUT)
        )
        self._max_connections = max_connections
        self._resolver = resolver
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, resolver=self._resolver, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        max_body: int = MAX_RESPONSE_BYTES,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> HttpResponse:
        """Send one request; transport failures become TransientError (redirects are not
        followed: a provider API that redirects is misconfigured, a webhook must not be
        steered elsewhere).

        A request that never connected was never sent. One that timed out or lost its
        connection after that may have been accepted: unless the API deduplicates it
        (``idempotent``), that is an UnknownOutcome — retried on the same provider and
        counted as a possible duplicate, not sent again through another one. Telling the
        two apart needs a connect timeout (``sock_connect``) in the request's timeout (the
        client's default has one).
        """
        kwargs.setdefault("allow_redirects", False)
        try:
            async with self.session().request(method, url, **kwargs) as response:
                body = await response.content.read(max_body)
                return HttpResponse(response.status, response.headers, body)
        except aiohttp.ClientConnectorError as exc:
            # A resolver that classifies its own refusal (the SSRF guard's) keeps its verdict.
            if isinstance(exc.os_error, DeliveryError):
                raise exc.os_error from exc
            raise TransientError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            )
            if idempotent or isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise TransientError(f"{method} {url}: {reason}") from exc
            raise UnknownOutcome(f"{method} {url}: {reason}; it may have been accepted") from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports close before the loop moves on (aiohttp docs).
            await asyncio.sleep(0)


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3: delta-seconds or an HTTP-date)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def classify_status(
    response: HttpResponse, *, what: str, code: str | None = None
) -> DeliveryError | None:
    """None for 2xx; otherwise transient (408/425/429/5xx, honouring Retry-After) or
    permanent (other 4xx; 401/403 point at our credentials, so not the recipient's fault)."""
    status = response.status
    if 200 <= status < 300:
        return None
    detail = response.text()[:300].strip()
    message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    label = code or str(status)
    if transient_http_status(status):
        return TransientError(message, code=label, retry_after=retry_after(response.headers))
    if status in {401, 403}:
        return PermanentError(message, code=label, recipient_fault=False)
    if 300 <= status < 400:
        return PermanentError(f"{message} (redirects are not followed)", code=label)
    return PermanentError(message, code=label)


def client_from_url(
    url: ProviderURL,
    *,
    default_timeout: float = 30.0,
    resolver: aiohttp.abc.AbstractResolver | None = None,
    ssl: ssl_module.SSLContext | bool = True,
) -> HttpClient:
    """An :class:`HttpClient` from a provider URL's ``timeout`` (seconds) and
    ``max_connections`` (default 100) options; ConfigurationError unless both are positive."""
    timeout = url.number("timeout", default_timeout)
    max_connections = url.integer("max_connections", 100)
    if timeout <= 0 or max_connections <= 0:
        raise ConfigurationError(f"{url.redacted}: timeout and max_connections must be positive")
    return HttpClient(timeout=timeout, max_connections=max_connections, resolver=resolver, ssl=ssl)
