"""Chat through Apprise: Slack, Discord, Telegram, Teams, Matrix, ntfy and 100+ more.

``apprise+<apprise url>``: ``apprise+slack://T1/B2/C3`` hands ``slack://T1/B2/C3`` to
Apprise (see ``docs/providers.md``). Apprise is synchronous (requests), so each send runs in
one of the provider's ``concurrency`` threads. Apprise answers success or failure; the reason
is in the log lines it records for the call, which are read for an HTTP status or a
connection error to classify the failure.
"""

from __future__ import annotations

import asyncio
import functools
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import apprise

from herald.domain.channels import Channel
from herald.domain.errors import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
    transient_http_status,
)
from herald.domain.message import Chat, Delivery, Receipt
from herald.providers.base import ProviderURL, content_of

PREFIX: Final = "apprise+"
#: Options Herald reads and removes before the URL reaches Apprise.
HERALD_OPTIONS: Final = frozenset({"name", "tag", "concurrency"})
# Apprise's services log a refused request as "…, error=429." (the HTTP status).
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
_CONNECTION = re.compile(r"connection error|timed? ?out|timeout", re.IGNORECASE)


class AppriseProvider:
    """Sends a chat message to one Apprise URL."""

    name: str
    channel: Channel

    def __init__(
        self,
        apprise_url: str,
        *,
        name: str = "apprise",
        tags: frozenset[str] = frozenset(),
        concurrency: int = 4,
    ) -> None:
        self.name = name
        self.channel = Channel.CHAT
        #: Labels (a chat message's ``to``) this destination answers to; empty: any.
        self.tags = tags
        self._apprise = apprise.Apprise()
        service = apprise.Apprise.instantiate(apprise_url)
        if service is None:
            # Only the scheme: Apprise URLs carry their tokens in the path too.
            scheme = apprise_url.partition("://")[0]
            raise ConfigurationError(
                f"{PREFIX}{scheme}://…: Apprise does not accept this URL "
                "(unknown service, or a token or path it cannot parse)"
            )
        self._apprise.add(service)
        #: The URL as Apprise shows it with its secrets masked, for logs.
        self.where = PREFIX + service.url(privacy=True)  # type: ignore[no-untyped-call]
        self._service = service.service_name or service.protocol or "apprise"
        # Its own threads: the default pool is small (CPUs + 4) and shared. The semaphore
        # keeps a cancelled send from waiting in the pool's queue and going out later.
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=f"herald-{name}")
        self._slots = asyncio.Semaphore(concurrency)

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> AppriseProvider:
        """Build from ``apprise+<apprise url>``; raises ConfigurationError."""
        if not url.raw.lower().startswith(PREFIX):
            raise ConfigurationError(
                f"{url.redacted}: write the Apprise URL after {PREFIX!r}, e.g. "
                f"{PREFIX}slack://T1/B2/C3 or {PREFIX}ntfy://ntfy.sh/topic"
            )
        concurrency = url.integer("concurrency", 4)
        if concurrency < 1:
            raise ConfigurationError(f"{url.redacted}: concurrency={concurrency} must be ≥ 1")
        tags = frozenset(t for t in (url.option("tag") or "").split() if t)
        return cls(
            url.without(HERALD_OPTIONS).raw[len(PREFIX) :],
            name=name,
            tags=tags,
            concurrency=concurrency,
        )

    def __repr__(self) -> str:
        return f"<AppriseProvider {self.name} {self.where}>"

    async def send(self, delivery: Delivery) -> Receipt:
        content = content_of(delivery, Chat, self.name)
        if content.to is not None and self.tags and content.to not in self.tags:
            raise PermanentError(
                f"{self.name}: not a destination for {content.to!r} "
                f"(tags: {', '.join(sorted(self.tags))})",
                code="no_tag_match",
                recipient_fault=False,
            )
        notify = functools.partial(
            self._apprise.notify, body=content.body, title=content.title or ""
        )
        async with self._slots:
            result = await asyncio.get_running_loop().run_in_executor(self._threads, notify)
        if result:
            return Receipt(detail=f"accepted by {self._service}")
        raise classify_apprise(
            [entry.message for entry in result.logs()],
            timed_out=result.status is apprise.AppriseResultStatus.TIMEOUT,
            what=f"{self.name} ({self._service})",
        )

    async def check(self) -> None:
        """Nothing to probe: most chat services have no side-effect-free request."""

    async def aclose(self) -> None:
        """Let running sends finish in their threads; start no more."""
        self._threads.shutdown(wait=False)


def classify_apprise(logs: list[str], *, timed_out: bool, what: str) -> DeliveryError:
    """A failure from what Apprise logged: an HTTP status it reports (``error=NNN``) is
    classified as HTTP statuses are; a connection error or timeout is transient; with no
    reason at all, transient too (retried until attempts run out)."""
    reason = logs[-1] if logs else "Apprise reported a failure without a reason"
    message = f"{what}: {reason}"
    statuses = [int(m.group(1)) for line in logs if (m := _HTTP_STATUS.search(line))]
    if statuses:
        status = statuses[-1]
        code = str(status)
        if transient_http_status(status):
            return TransientError(message, code=code)
        if status in {401, 403, 404}:
            # A revoked token or a deleted webhook/channel: our configuration, not the message.
            return PermanentError(message, code=code, recipient_fault=False)
        return PermanentError(message, code=code)
    if timed_out or any(_CONNECTION.search(line) for line in logs):
        return TransientError(message, code="connection")
    return TransientError(message)
