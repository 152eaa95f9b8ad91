"""FCM HTTP v1 and Google's OAuth token endpoint on 127.0.0.1 (aiohttp): tokens are issued
for JWT assertions signed by the service account's key, sends need a live Bearer token, and
errors come back in Google's JSON shape with FCM's ``errorCode``."""

from __future__ import annotations

import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

#: A registration token the tests send to.
TOKEN = "fcm-token-0123456789abcdef:APA91bHPRgkF"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(
    status: int, error_code: str | None, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if error_code:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    return web.json_response({"error": error}, status=status, headers=headers)


@dataclass
class FcmService:
    """``fail(status, error_code, headers)`` queues an error for the next send;
    ``revoke_tokens()`` makes every issued access token stale (401 UNAUTHENTICATED)."""

    project_id: str
    client_email: str
    public_key: rsa.RSAPublicKey
    received: list[dict[str, Any]] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[tuple[int, str | None, dict[str, str]]] = field(default_factory=deque)
    port: int = 0
    _tokens: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def fail(
        self, status: int, error_code: str | None, headers: dict[str, str] | None = None
    ) -> None:
        self.failures.append((status, error_code, headers or {}))

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                key=self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        if claims.get("scope") != SCOPE:
            return web.json_response({"error": "invalid_scope"}, status=400)
        self.assertions.append(claims)
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self._tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return google_error(
                401,
                None,
                "Request had invalid authentication credentials. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        if request.match_info["project"] != self.project_id:
            return google_error(403, "SENDER_ID_MISMATCH", "SenderId mismatch")
        try:
            message = (await request.json())["message"]
        except (ValueError, KeyError):
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        problem = _message_problem(message)
        if problem:
            return google_error(400, "INVALID_ARGUMENT", problem)
        if self.failures:
            status, error_code, headers = self.failures.popleft()
            return google_error(status, error_code, f"scripted {error_code}", headers)
        self.received.append(message)
        name = f"projects/{self.project_id}/messages/0:{len(self.received)}%{secrets.token_hex(8)}"
        return web.json_response({"name": name})


def _message_problem(message: dict[str, Any]) -> str | None:
    """What FCM's validation would refuse in a ``Message``."""
    if not isinstance(message.get("token"), str) or len(message["token"]) < 16:
        return "The registration token is not a valid FCM registration token"
    data = message.get("data", {})
    if not all(isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data': values must be strings"
    ttl = message.get("android", {}).get("ttl")
    if ttl is not None and not re.fullmatch(r"\d+(\.\d{1,9})?s", ttl):
        return (
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
        )
    known = {"token", "notification", "data", "android", "apns", "webpush", "fcm_options"}
    unknown = set(message) - known
    if unknown:
        return f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}"
    return None


def fcm_url(service: FcmService, credentials: Path, **options: str) -> str:
    query = {"credentials": str(credentials), "base_url": service.base_url, **options}
    return f"fcm://?{urlencode(query)}"
