"""A Web Push service on 127.0.0.1 (aiohttp, TLS): RFC 8030 with RFC 8292 VAPID checks and
RFC 8291 decryption, as a browser vendor's push service would do it."""

from __future__ import annotations

import base64
import os
import ssl
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    """One push as the browser would get it: the decrypted payload and the headers."""

    subscription: str
    headers: dict[str, str]
    payload: dict[str, Any]
    claims: dict[str, Any]


@dataclass
class _Subscription:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    #: The application server key the browser subscribed with (``applicationServerKey``).
    server_key: str


@dataclass
class WebPushService:
    """``subscribe(server_key)`` makes a subscription; ``fail(status, headers)`` queues a
    reply for the next push."""

    ssl_context: ssl.SSLContext
    received: list[Received] = field(default_factory=list)
    failures: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    port: int = 0
    _subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def subscribe(self, server_key: str) -> str:
        """A subscription's JSON, as ``PushSubscription.toJSON()`` gives it."""
        sid = uuid.uuid4().hex
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._subscriptions[sid] = _Subscription(key, auth, server_key)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return orjson.dumps(
            {
                "endpoint": f"{self.origin}/push/{sid}",
                "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
            }
        ).decode()

    def fail(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, headers or {}))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{sid}", self._push)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _push(self, request: web.Request) -> web.Response:
        subscription = self._subscriptions.get(request.match_info["sid"])
        if subscription is None:
            return web.Response(status=404, text="no such subscription")
        claims = self._vapid_claims(request.headers.get("Authorization", ""), subscription)
        if claims is None:
            return web.Response(status=403, text="VAPID credentials do not match")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return web.Response(status=415, text="aes128gcm only")
        if not request.headers.get("TTL", "").isdigit():
            return web.Response(status=400, text="TTL header missing")
        if self.failures:
            status, headers = self.failures.popleft()
            return web.Response(status=status, headers=headers, text=f"scripted {status}")
        body = await request.read()
        plain = http_ece.decrypt(
            body, private_key=subscription.key, auth_secret=subscription.auth, version="aes128gcm"
        )
        self.received.append(
            Received(
                subscription=request.match_info["sid"],
                headers=dict(request.headers),
                payload=orjson.loads(plain),
                claims=claims,
            )
        )
        location = f"{self.origin}/message/{uuid.uuid4().hex}"
        return web.Response(status=201, headers={"Location": location})

    def _vapid_claims(self, header: str, subscription: _Subscription) -> dict[str, Any] | None:
        """RFC 8292 §3: ``vapid t=<JWT>, k=<key>``; the key must be the one subscribed with,
        the JWT signed by it (ES256) for this origin and not expired (at most 24 h ahead)."""
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            return None
        values = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if values.get("k") != subscription.server_key:
            return None
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(values["k"]))
        try:
            claims: dict[str, Any] = jwt.decode(
                values.get("t", ""),
                key=public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.InvalidTokenError:
            return None
        if claims["exp"] > time.time() + 24 * 3600:
            return None
        return claims
