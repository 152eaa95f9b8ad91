"""Webhook URLs that answered 410 Gone, as a worker knows them.

Loaded from the store and reloaded every few seconds (another worker's 410s, and URLs
cleared with ``herald webhooks forget``, show up within that), and added to at once
when this worker gets a 410, so the very next notification to that URL is not sent.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from herald.store.webhooks import WebhookStore

log = structlog.get_logger(__name__)


class GoneUrls:
    def __init__(self, store: WebhookStore, *, refresh_every: float = 5.0) -> None:
        self._store = store
        self._refresh_every = refresh_every
        self._urls: set[str] = set()
        self._loaded_at: float | None = None
        self._reloading: asyncio.Task[None] | None = None

    async def contains(self, url: str) -> bool:
        if self._loaded_at is None:  # nothing loaded yet: the first webhook waits for it
            self._urls |= await self._store.gone_urls()
            self._loaded_at = time.monotonic()
        elif time.monotonic() - self._loaded_at >= self._refresh_every and (
            self._reloading is None or self._reloading.done()
        ):
            # Later reloads run beside deliveries, which use the set they have meanwhile.
            self._reloading = asyncio.create_task(self._reload())
        return url in self._urls

    async def _reload(self) -> None:
        try:
            self._urls = await self._store.gone_urls()
        except Exception as exc:  # the database is away: keep the set, try again later
            log.warning("gone_urls_reload_failed", error=str(exc))
        self._loaded_at = time.monotonic()

    def add(self, url: str) -> None:
        self._urls.add(url)
