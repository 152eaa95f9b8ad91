"""APNs on 127.0.0.1: an ASGI app served by hypercorn over TLS with ALPN ``h2`` only, as
Apple's servers are. It checks the provider token (ES256, ``kid``, ``iss``, age), the
``apns-*`` headers and the payload, and answers in APNs' JSON error shape."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = dict[str, Any]
#: A device token the tests send to.
DEVICE = "a1b2c3d4" * 8
_DEVICE = re.compile(r"/3/device/([0-9a-fA-F]{64})")


@dataclass
class Received:
    device: str
    headers: dict[str, str]
    payload: dict[str, Any]
    http_version: str


@dataclass
class ApnsService:
    """``fail(status, reason, headers)`` queues an error for the next push; ``unregister``
    makes a device token answer 410; ``expire_tokens`` makes every token seen so far stale."""

    team_id: str
    key_id: str
    topic: str
    public_key: ec.EllipticCurvePublicKey
    certificate: Path  # PEM: the key and the certificate chain
    received: list[Received] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    failures: deque[tuple[int, str, dict[str, str]]] = field(default_factory=deque)
    unregistered: set[str] = field(default_factory=set)
    #: Requests after which the server closes a connection (GOAWAY), as servers do.
    max_requests_per_connection: int = 1000
    port: int = 0
    _expired: set[str] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def fail(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, reason, headers or {}))

    def expire_tokens(self) -> None:
        self._expired.update(self.tokens)

    async def start(self) -> None:
        self._stop = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as hypercorn's own binds
        sock.bind(("127.0.0.1", 0))
        sock.listen(100)  # connections wait in the backlog until hypercorn accepts them
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile = config.keyfile = str(self.certificate)
        config.alpn_protocols = ["h2"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1
        config.keep_alive_max_requests = self.max_requests_per_connection
        self._task = asyncio.create_task(
            serve(self._app, config, shutdown_trigger=self._stop.wait, mode="asgi")  # type: ignore[arg-type]
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, reply = self._handle(scope, headers, body)
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        response_headers = [(b"apns-id", apns_id.encode())]
        if status != 200:
            response_headers.append((b"content-type", b"application/json"))
        extra = reply.pop("_headers", {}) if isinstance(reply, dict) else {}
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": orjson.dumps(reply) if reply else b""})

    def _handle(self, scope: Scope, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if scope["method"] != "POST":
            return 405, {"reason": "MethodNotAllowed"}
        match = _DEVICE.fullmatch(scope["path"])
        if match is None:
            return (
                (400, {"reason": "BadDeviceToken"})
                if scope["path"].startswith("/3/device/")
                else (404, {"reason": "BadPath"})
            )
        problem = self._token_problem(headers.get("authorization", ""))
        if problem:
            return 403, {"reason": problem}
        problem = _header_problem(headers, self.topic)
        if problem:
            return 400, {"reason": problem}
        if len(body) > 4096:
            return 413, {"reason": "PayloadTooLarge"}
        try:
            payload = orjson.loads(body)
            assert isinstance(payload["aps"], dict)
        except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
            return 400, {"reason": "PayloadEmpty" if not body else "BadPayload"}
        device = match.group(1)
        if device in self.unregistered:
            return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}
        if self.failures:
            status, reason, extra = self.failures.popleft()
            return status, {"reason": reason, "_headers": extra}
        self.received.append(Received(device, headers, payload, scope["http_version"]))
        return 200, None

    def _token_problem(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "MissingProviderToken"
        if token not in self.tokens:
            self.tokens.append(token)
        if token in self._expired:
            return "ExpiredProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, key=self.public_key, algorithms=["ES256"], options={"require": ["iat"]}
            )
        except jwt.InvalidTokenError:
            return "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return "InvalidProviderToken"
        if time.time() - claims["iat"] > 3600:
            return "ExpiredProviderToken"
        return None


def _header_problem(headers: dict[str, str], topic: str) -> str | None:
    if "apns-topic" not in headers:
        return "MissingTopic"
    if headers["apns-topic"] != topic:
        return "DeviceTokenNotForTopic"
    if headers.get("apns-push-type", "alert") not in {"alert", "background"}:
        return "InvalidPushType"
    if headers.get("apns-priority", "10") not in {"1", "5", "10"}:
        return "BadPriority"
    if not headers.get("apns-expiration", "0").isdigit():
        return "BadExpirationDate"
    if len(headers.get("apns-collapse-id", "").encode()) > 64:
        return "BadCollapseId"
    if "apns-id" in headers:
        try:
            uuid.UUID(headers["apns-id"])
        except ValueError:
            return "BadMessageId"
    return None


def apns_url(service: ApnsService, key_file: Path, ca_file: Path, **options: str) -> str:
    query = {
        "team_id": service.team_id,
        "key_id": service.key_id,
        "key": str(key_file),
        "topic": service.topic,
        "base_url": service.base_url,
        "ca_file": str(ca_file),
        **options,
    }
    return f"apns://?{urlencode(query)}"
