"""Apple Push Notification service — ``apns://``: HTTP/2 with token (``.p8`` key) auth.

APNs speaks only HTTP/2 and aiohttp has no HTTP/2 client, so this provider alone uses
``httpx`` (with ``h2``): one multiplexed connection carries every request. Errors are the
``reason`` APNs returns in its JSON body (Apple's "Handling notification responses from APNs").
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from herald.domain.channels import Channel
from herald.domain.errors import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import Content, Delivery, Push, Receipt
from herald.providers.base import ProviderURL, tls_context
from herald.providers.http import USER_AGENT, retry_after
from herald.providers.push_routing import push_for, read_key_file, serves_platform

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
#: APNs refuses provider tokens older than an hour and ones replaced more often than every
#: 20 minutes (TooManyProviderTokenUpdates): a token is used for 50 minutes.
TOKEN_LIFETIME = 50 * 60
#: The token is stale: sign a new one and try once more.
_STALE_TOKEN = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
#: The device token is no good (for this app, or at all): suppress it.
_DEAD_DEVICE = frozenset({"BadDeviceToken", "Unregistered", "ExpiredToken"})
#: Our configuration (topic, key, team), not the device: another provider may do better.
_OURS = frozenset(
    {"DeviceTokenNotForTopic", "TopicDisallowed", "BadTopic", "MissingTopic", "BadCertificate"}
)

#: Transport errors of a connection the server closed while a request was on its way.
_CLOSED_UNDER_US = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class ProviderToken:
    """The ES256 JWT APNs wants (``iss`` = team id, ``kid`` = key id, ``iat``), reused
    until it is :data:`TOKEN_LIFETIME` old or APNs calls it stale."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._clock = clock
        self._token: str | None = None
        self._issued = 0.0

    def current(self) -> str:
        now = self._clock()
        if self._token is None or now - self._issued >= TOKEN_LIFETIME:
            claims = {"iss": self._team_id, "iat": int(now)}
            headers = {"kid": self._key_id}
            self._token = jwt.encode(claims, self._key, "ES256", headers=headers)
            self._issued = now
        return self._token

    def renew(self, stale: str) -> None:
        """Drop ``stale`` (unless another request already replaced it)."""
        if self._token == stale:
            self._token = None


class ApnsProvider:
    """Sends alert notifications to iOS / iPadOS / macOS device tokens of one app (topic)."""

    channel = Channel.PUSH
    platform = "apns"

    def __init__(
        self,
        token: ProviderToken,
        topic: str,
        client: httpx.AsyncClient,
        *,
        name: str = "apns",
        base_url: str = PRODUCTION_URL,
        priority: int = 10,
    ) -> None:
        self.name = name
        self._token = token
        self._topic = topic
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._priority = priority

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> ApnsProvider:
        missing = [o for o in ("team_id", "key_id", "key", "topic") if not url.option(o)]
        if missing:
            raise ConfigurationError(f"apns:// needs ?{'=, ?'.join(missing)}=")
        try:
            key = serialization.load_pem_private_key(
                read_key_file(url, "key").encode(), password=None
            )
        except ValueError as exc:
            raise ConfigurationError(f"apns:// key is not a .p8 private key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError("apns:// key must be the EC (ES256) .p8 key from Apple")
        priority = url.integer("priority", 10)
        if priority not in {1, 5, 10}:
            raise ConfigurationError("apns:// priority must be 10, 5 or 1")
        timeout = url.number("timeout", 30.0)
        if timeout <= 0:
            raise ConfigurationError("apns:// timeout must be positive")
        sandbox = url.flag("sandbox", False)
        base_url = url.option("base_url") or (SANDBOX_URL if sandbox else PRODUCTION_URL)
        client = httpx.AsyncClient(
            http1=False,
            http2=True,
            verify=tls_context(url.option("ca_file"), f"{url.scheme}://"),
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        )
        key_id, team_id, topic = (str(url.option(o)) for o in ("key_id", "team_id", "topic"))
        return cls(
            ProviderToken(key, key_id=key_id, team_id=team_id),
            topic,
            client,
            name=name,
            base_url=base_url,
            priority=priority,
        )

    def serves(self, content: Content) -> bool:
        return serves_platform(content, self.platform)

    async def send(self, delivery: Delivery) -> Receipt:
        push = push_for(delivery, self.platform, self.name)
        body = orjson.dumps(apns_payload(push))
        headers = self._headers(push, delivery.notification_id)
        token = self._token.current()
        response = await self._post(push.to, body, headers, token)
        reason = _reason(response)
        if response.status_code == 403 and reason in _STALE_TOKEN:
            self._token.renew(token)
            response = await self._post(push.to, body, headers, self._token.current())
            reason = _reason(response)
        error = apns_error(response.status_code, reason, response.headers)
        if error is not None:
            raise error
        return Receipt(
            provider_message_id=response.headers.get("apns-id"),
            detail=f"HTTP {response.status_code} from APNs",
        )

    async def check(self) -> None:
        return None  # APNs has no endpoint that answers without sending a notification

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, push: Push, notification_id: str) -> dict[str, str]:
        headers = {
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": str(self._priority),
        }
        with contextlib.suppress(ValueError):  # not a UUID: APNs makes one up and returns it
            headers["apns-id"] = str(uuid.UUID(notification_id))
        headers.update(expiry_and_collapse(push))
        return headers

    async def _post(
        self, device: str, body: bytes, headers: dict[str, str], token: str
    ) -> httpx.Response:
        url = f"{self._base_url}/3/device/{device}"
        headers = {**headers, "authorization": f"bearer {token}"}
        try:
            try:
                return await self._client.post(url, content=body, headers=headers)
            except _CLOSED_UNDER_US:
                # APNs closes connections (GOAWAY when idle, on maintenance); a request
                # sent before the client saw it fails: once more, on a new connection.
                return await self._client.post(url, content=body, headers=headers)
        except httpx.ReadTimeout as exc:
            raise UnknownOutcome(f"APNs: no reply in time: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"APNs: {type(exc).__name__}: {exc}") from exc


def apns_payload(push: Push) -> dict[str, Any]:
    """``aps`` (alert, badge) plus the custom data at the top level; ``link`` rides along
    as a custom key for the app to open."""
    alert = {k: v for k, v in (("title", push.title), ("body", push.body)) if v}
    aps: dict[str, Any] = {"alert": alert}
    if push.badge is not None:
        aps["badge"] = push.badge
    payload: dict[str, Any] = dict(push.data)
    if push.link:
        payload.setdefault("link", push.link)
    payload["aps"] = aps
    return payload


def expiry_and_collapse(push: Push) -> dict[str, str]:
    """The ``apns-expiration`` and ``apns-collapse-id`` headers a push asks for (also sent
    through FCM, which hands them on to APNs)."""
    headers: dict[str, str] = {}
    if push.ttl is not None:
        # 0: deliver now or never; otherwise a Unix time until which APNs keeps trying.
        headers["apns-expiration"] = str(int(time.time()) + push.ttl if push.ttl else 0)
    if push.collapse_key:
        headers["apns-collapse-id"] = collapse_id(push.collapse_key)
    return headers


def collapse_id(collapse_key: str) -> str:
    """``apns-collapse-id`` is at most 64 bytes: a longer key becomes its SHA-256 (hex)."""
    if len(collapse_key.encode()) <= 64:
        return collapse_key
    return hashlib.sha256(collapse_key.encode()).hexdigest()


def apns_error(status: int, reason: str, headers: httpx.Headers) -> DeliveryError | None:
    """None for 200; otherwise the error APNs' ``reason`` calls for."""
    if status == 200:
        return None
    message = f"APNs: HTTP {status} {reason}"
    if reason in _DEAD_DEVICE or status == 410:
        return PermanentError(message, code=reason, suppress=True)
    if reason in _OURS or status in {401, 403, 404, 405}:
        return PermanentError(message, code=reason, recipient_fault=False)
    if status == 429 or status >= 500:
        return TransientError(message, code=reason, retry_after=retry_after(headers))
    return PermanentError(message, code=reason)


def _reason(response: httpx.Response) -> str:
    try:
        return str(orjson.loads(response.content)["reason"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return str(response.status_code)
