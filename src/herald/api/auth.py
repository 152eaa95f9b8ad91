"""Bearer API keys: ``HERALD_API_KEYS`` and keys made with ``herald keys create``.

Only SHA-256 digests are kept in memory or in the database; a presented key is hashed and
compared in constant time against the configured ones, then looked up among stored keys.
"""

from __future__ import annotations

import hmac
import time

from fastapi import HTTPException, Request

from herald.store.api_keys import ApiKeyStore, digest

_CACHE_SECONDS = 10.0


class KeyCheck:
    def __init__(self, configured: list[str], stored: ApiKeyStore) -> None:
        self._configured = [digest(k) for k in configured]
        self._stored = stored
        self._known: dict[str, float] = {}  # digest -> when it was last found valid
        self._stored_any: tuple[bool, float] | None = None

    async def required(self) -> bool:
        """Whether any key exists (only then is a key demanded)."""
        if self._configured:
            return True
        now = time.monotonic()
        if self._stored_any is None or now - self._stored_any[1] > _CACHE_SECONDS:
            self._stored_any = (await self._stored.any_active(), now)
        return self._stored_any[0]

    async def __call__(self, request: Request) -> None:
        if not await self.required():
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(
                401,
                "an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not await self._valid(token.strip()):
            raise HTTPException(
                401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
            )

    async def _valid(self, token: str) -> bool:
        presented = digest(token)
        matched = False
        for known in self._configured:
            matched |= hmac.compare_digest(known, presented)
        if matched:
            return True
        seen = self._known.get(presented)
        now = time.monotonic()
        if seen is not None and now - seen < _CACHE_SECONDS:
            return True
        if await self._stored.is_active(presented):
            self._known[presented] = now
            return True
        self._known.pop(presented, None)
        return False
