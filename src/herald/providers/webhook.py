"""Webhooks: the notification's ``data`` POSTed as JSON to its URL, signed per Standard
Webhooks (https://www.standardwebhooks.com).

``webhook://?secret=whsec_…&timeout=10&max_connections=100``. The body is the envelope
the spec recommends, ``{"type", "timestamp", "data"}``; ``webhook-id`` is the notification
id, the same on every retry, so receivers can drop duplicates. Without ``?secret=`` the
default secret signs (``HERALD_WEBHOOK_SECRET``, else one generated and stored).

Outcomes: 2xx sent; 410 gone (:class:`~herald.domain.errors.Gone`: the worker stops sending
to that URL); 408/425/429/5xx, timeouts and resets transient (``Retry-After`` honoured);
redirects (never followed) and other 4xx permanent; an address the SSRF guard refuses is
permanent (code ``ssrf``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, Gone, PermanentError
from herald.domain.message import Delivery, Receipt, Webhook
from herald.domain.network import IPNetwork, url_problem
from herald.domain.webhook_signing import parse_secrets, signature_header
from herald.providers.base import ProviderDefaults, ProviderURL, content_of
from herald.providers.http import HttpClient, classify_status
from herald.providers.ssrf_guard import GuardedResolver

#: Receivers answer with a status; their bodies only feed error messages.
MAX_RESPONSE_BYTES = 4096


class WebhookProvider:
    channel = Channel.WEBHOOK

    def __init__(
        self,
        *,
        secret: str,
        name: str = "webhook",
        allowed_networks: Sequence[IPNetwork] = (),
        timeout: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        self.name = name
        self._keys = parse_secrets(secret)
        self._allowed = tuple(allowed_networks)
        # Requests queue here, in order, for one of the pooled connections: waiting inside
        # aiohttp's pool would count against the request's timeout, and under load some
        # waiters starve there until they time out.
        self._slots = asyncio.Semaphore(max_connections)
        self._http = HttpClient(
            timeout=timeout,
            max_connections=max_connections,
            resolver=GuardedResolver(self._allowed),
        )

    @classmethod
    def from_url(
        cls, url: ProviderURL, *, name: str, defaults: ProviderDefaults
    ) -> WebhookProvider:
        secret = url.option("secret") or defaults.webhook_secret
        if not secret:
            raise ConfigurationError("webhook:// needs ?secret=whsec_… or HERALD_WEBHOOK_SECRET")
        timeout = url.number("timeout", 10.0)
        connections = url.integer("max_connections", 100)
        if timeout <= 0 or connections < 1:
            raise ConfigurationError("webhook:// needs timeout > 0 and max_connections >= 1")
        try:
            return cls(
                secret=secret,
                name=name,
                allowed_networks=defaults.webhook_allowed_networks,
                timeout=timeout,
                max_connections=connections,
            )
        except ValueError as exc:
            raise ConfigurationError(f"webhook:// secret: {exc}") from None

    async def send(self, delivery: Delivery) -> Receipt:
        hook = content_of(delivery, Webhook, self.name)
        # The accept-time check again: the allowlist may have changed since.
        if problem := url_problem(hook.url, self._allowed):
            raise PermanentError(f"{hook.url} {problem}", code="ssrf")
        body = envelope(hook)
        msg_id = delivery.notification_id
        async with self._slots:
            # Signed once a connection is free, so the timestamp is the sending time.
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(self._keys, msg_id, timestamp, body),
            }
            response = await self._http.request(
                "POST", hook.url, data=body, headers=headers, max_body=MAX_RESPONSE_BYTES
            )
        if response.status == 410:
            raise Gone(
                f"POST {hook.url}: HTTP 410 Gone; no more notifications go to this URL "
                "until it is forgotten (herald webhooks forget URL)",
                target=hook.url,
            )
        error = classify_status(response, what=f"POST {hook.url}")
        if error is not None:
            raise error
        return Receipt(provider_message_id=msg_id, detail=f"HTTP {response.status}")

    async def check(self) -> None:
        """Nothing to check ahead of time: each notification names its own URL."""

    async def aclose(self) -> None:
        await self._http.aclose()


def envelope(hook: Webhook) -> bytes:
    """The JSON body: ``{"type", "timestamp", "data"}`` as Standard Webhooks recommends;
    the timestamp is the notification's acceptance, RFC 3339 in UTC."""
    when = datetime.fromtimestamp(hook.created_at, UTC)
    return orjson.dumps(
        {"type": hook.event_type, "timestamp": when, "data": hook.data}, option=orjson.OPT_UTC_Z
    )
