"""Web Push — ``webpush://``: a browser subscription's push service, any vendor.

The payload is encrypted for the subscription (RFC 8291, ``aes128gcm`` content coding, with
``http-ece``) and the request signed with the application server's VAPID key (RFC 8292, with
``py-vapid``); both libraries are the ones pywebpush builds on. Requests go out on Herald's
aiohttp client. The protocol is RFC 8030: 201 Created, headers ``TTL``, ``Urgency``, ``Topic``.

A subscription's endpoint is a URL the browser (so, the caller) chose: it gets the webhook
SSRF guard — literal addresses checked before sending, every resolved address checked when
connecting, ``HERALD_WEBHOOK_ALLOWED_NETWORKS`` exempting networks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import http_ece
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError
from herald.domain.message import Content, Delivery, Push, Receipt
from herald.domain.network import IPNetwork, url_problem
from herald.providers.base import ProviderDefaults, ProviderURL, tls_context
from herald.providers.http import HttpClient, classify_status, client_from_url
from herald.providers.push_routing import push_for, serves_platform
from herald.providers.ssrf_guard import GuardedResolver

#: What push services keep at most (FCM's 28 days; Mozilla's is shorter and it says so).
DEFAULT_TTL = 28 * 24 * 3600
URGENCIES = ("very-low", "low", "normal", "high")
#: RFC 8030 §5.4: a topic is at most 32 characters of the URL-safe base64 alphabet.
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: A VAPID token lives this long (RFC 8292 §2: at most 24 hours) and is re-signed an hour
#: before it runs out, so one signature serves a push service for hours.
_VAPID_LIFETIME = 12 * 3600
_VAPID_MARGIN = 3600


class WebPushProvider:
    """Sends to Web Push subscriptions (the JSON a browser's ``PushManager`` gives)."""

    channel = Channel.PUSH
    platform = "webpush"

    def __init__(
        self,
        vapid: Vapid02,
        subject: str,
        *,
        name: str = "webpush",
        ttl: int = DEFAULT_TTL,
        urgency: str = "normal",
        http: HttpClient | None = None,
        allowed_networks: Sequence[IPNetwork] = (),
    ) -> None:
        self.name = name
        self._allowed = tuple(allowed_networks)
        self._vapid = vapid
        self._subject = subject
        self._ttl = ttl
        self._urgency = urgency
        self._http = http or HttpClient()
        self._signatures: dict[str, tuple[float, str]] = {}

    @classmethod
    def from_url(
        cls, url: ProviderURL, *, name: str, defaults: ProviderDefaults | None = None
    ) -> WebPushProvider:
        key = url.option("vapid_private_key")
        if not key:
            raise ConfigurationError("webpush:// needs ?vapid_private_key= (a key or a file)")
        subject = url.option("subject")
        if not subject or not subject.startswith(("mailto:", "https://")):
            raise ConfigurationError(
                "webpush:// needs ?subject= (mailto:you@example.org or an https:// URL), "
                "the contact push services use when something goes wrong"
            )
        urgency = url.option("urgency", "normal") or "normal"
        if urgency not in URGENCIES:
            raise ConfigurationError(f"webpush:// urgency={urgency!r}: one of {URGENCIES}")
        ttl = url.integer("ttl", DEFAULT_TTL)
        if ttl < 0:
            raise ConfigurationError("webpush:// ttl must not be negative")
        allowed = (defaults or ProviderDefaults()).webhook_allowed_networks
        return cls(
            load_vapid_key(key),
            subject,
            name=name,
            ttl=ttl,
            urgency=urgency,
            http=client_from_url(
                url,
                resolver=GuardedResolver(allowed),
                ssl=tls_context(url.option("ca_file"), f"{url.scheme}://"),
            ),
            allowed_networks=allowed,
        )

    def serves(self, content: Content) -> bool:
        return serves_platform(content, self.platform)

    async def send(self, delivery: Delivery) -> Receipt:
        push = push_for(delivery, self.platform, self.name)
        endpoint, p256dh, auth = _subscription(push.to)
        if problem := url_problem(endpoint, self._allowed):
            raise PermanentError(f"push endpoint {endpoint} {problem}", code="ssrf")
        body = encrypt(web_push_payload(push), p256dh, auth)
        headers = {
            "Authorization": self._authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(push.ttl if push.ttl is not None else self._ttl),
            "Urgency": self._urgency,
        }
        if push.collapse_key:
            headers["Topic"] = topic(push.collapse_key)
        response = await self._http.request("POST", endpoint, data=body, headers=headers)
        if response.status in {404, 410}:
            raise PermanentError(
                f"subscription gone: the push service answered HTTP {response.status}",
                code=str(response.status),
                suppress=True,
            )
        if response.status == 413:
            raise PermanentError(
                f"payload too large for the push service ({len(body)} bytes encrypted)",
                code="413",
            )
        error = classify_status(response, what=f"push service {urlsplit(endpoint).hostname}")
        if error is not None:
            raise error
        return Receipt(
            provider_message_id=response.headers.get("Location"),
            detail=f"HTTP {response.status} from the push service",
        )

    async def check(self) -> None:
        return None  # every subscription names its own push service

    async def aclose(self) -> None:
        await self._http.aclose()

    def _authorization(self, endpoint: str) -> str:
        """``vapid t=<JWT>,k=<public key>`` for the endpoint's origin, reused for hours."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._signatures.get(audience)
        if cached is not None and cached[0] - _VAPID_MARGIN > now:
            return cached[1]
        expires = int(now) + _VAPID_LIFETIME
        claims = {"aud": audience, "sub": self._subject, "exp": expires}
        try:
            header: str = self._vapid.sign(claims)["Authorization"]
        except VapidException as exc:  # an endpoint origin py-vapid will not sign for
            raise PermanentError(f"cannot sign VAPID for {audience}: {exc}") from None
        self._signatures[audience] = (expires, header)
        return header


def load_vapid_key(value: str) -> Vapid02:
    """A VAPID key from the raw base64url private key, base64 DER, or a PEM/DER file."""
    try:
        if os.path.isfile(value):
            with open(value, encoding="ascii") as file:
                text = file.read()
            if "-----BEGIN" in text:
                return Vapid02.from_pem(text.encode())
            return Vapid02.from_der(text.strip().encode())
        return Vapid02.from_string(value)
    except (OSError, ValueError, VapidException) as exc:
        raise ConfigurationError(f"webpush:// vapid_private_key is unusable: {exc}") from None


def web_push_payload(push: Push) -> bytes:
    """What the service worker's ``push`` event sees (``event.data.json()``)."""
    payload: dict[str, Any] = {
        "title": push.title,
        "body": push.body,
        "badge": push.badge,
        "link": push.link,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    if push.data:
        payload["data"] = push.data
    return orjson.dumps(payload)


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: ``aes128gcm`` with a fresh sender key per message (its public half travels
    in the header as the key id)."""
    try:
        receiver = _b64url(p256dh)
        secret = _b64url(auth)
        sender = ec.generate_private_key(ec.SECP256R1())
        encrypted: bytes = http_ece.encrypt(
            payload, private_key=sender, dh=receiver, auth_secret=secret, version="aes128gcm"
        )
    except (ValueError, http_ece.ECEException) as exc:
        raise PermanentError(f"the subscription's keys cannot be used: {exc}") from None
    return encrypted


def topic(collapse_key: str) -> str:
    """The ``Topic`` header for a collapse key: as is when it fits RFC 8030's alphabet and
    length, otherwise a digest of it (same key, same topic)."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    digest = hashlib.sha256(collapse_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def _subscription(to: str) -> tuple[str, str, str]:
    """``(endpoint, p256dh, auth)`` from a subscription's JSON (checked at accept time)."""
    try:
        value = orjson.loads(to)
        endpoint, keys = value["endpoint"], value["keys"]
        return str(endpoint), str(keys["p256dh"]), str(keys["auth"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PermanentError(f"not a Web Push subscription: {exc}") from None


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
