"""OAuth 2.0 access tokens for a Google service account (the JWT bearer grant, RFC 7523),
as FCM HTTP v1 wants them: a JWT signed RS256 with the account's key, exchanged at the
token URI for an access token that is cached until shortly before it expires."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.domain.errors import ConfigurationError, PermanentError, TransientError
from herald.providers.http import HttpClient, classify_status

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: A token is replaced this many seconds before Google says it expires.
_EARLY = 300


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The parts of a service-account key file (``…-firebase-adminsdk-….json``) we use."""

    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str | None
    project_id: str | None
    token_uri: str

    @classmethod
    def from_file(cls, path: str) -> ServiceAccount:
        try:
            with open(path, "rb") as file:
                info: dict[str, Any] = orjson.loads(file.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigurationError(f"service account file {path!r}: {exc}") from None
        if info.get("type") != "service_account":
            raise ConfigurationError(f"{path!r} is not a service account key file")
        try:
            key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
            email = str(info["client_email"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"service account file {path!r}: {exc!r}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"service account file {path!r}: not an RSA key")
        return cls(
            client_email=email,
            private_key=key,
            private_key_id=info.get("private_key_id"),
            project_id=info.get("project_id"),
            token_uri=info.get("token_uri") or GOOGLE_TOKEN_URL,
        )


class AccessTokens:
    """One access token at a time, fetched when needed (one fetch however many sends wait)."""

    def __init__(
        self, account: ServiceAccount, *, scope: str, token_url: str, http: HttpClient
    ) -> None:
        self._account = account
        self._scope = scope
        self._token_url = token_url
        self._http = http
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    async def get(self) -> str:
        if self._token is not None and time.time() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is None or time.time() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                self._renew_at = time.time() + max(lifetime - _EARLY, lifetime / 2)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the API refused it); the next ``get`` fetches a new one."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        now = int(time.time())
        claims = {
            "iss": self._account.client_email,
            "scope": self._scope,
            "aud": self._token_url,
            "iat": now,
            "exp": now + 3600,
        }
        headers = {"kid": self._account.private_key_id} if self._account.private_key_id else None
        assertion = jwt.encode(claims, self._account.private_key, "RS256", headers=headers)
        response = await self._http.request(
            "POST", self._token_url, data={"grant_type": _GRANT, "assertion": assertion}
        )
        if response.status in {400, 401, 403}:
            # invalid_grant, invalid_client…: the key was revoked or the file is wrong.
            raise PermanentError(
                f"OAuth token request refused: HTTP {response.status}: {response.text()[:300]}",
                code="oauth",
                recipient_fault=False,
            )
        error = classify_status(response, what="OAuth token request", code="oauth")
        if error is not None:
            raise error
        try:
            reply = orjson.loads(response.body)
            return str(reply["access_token"]), float(reply.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TransientError(f"OAuth token reply not understood: {exc!r}") from None
