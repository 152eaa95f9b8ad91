"""Webhook URLs that answered 410 Gone, as a worker knows them.

Loaded from the store and reloaded every few seconds (another worker's 410s, and URLs
cleared with ``herald webhooks forget``, show up within that), and added to at once
when this worker gets a 410, so the very next notification to that URL is not sent.
"""

from __future__ import annotations

import time

from herald.store.webhooks import WebhookStore


class GoneUrls:
    def __init__(self, store: WebhookStore, *, refresh_every: float = 5.0) -> None:
        self._store = store
        self._refresh_every = refresh_every
        self._urls: set[str] = set()
        self._loaded_at = -float("inf")

    async def contains(self, url: str) -> bool:
        now = time.monotonic()
        if now - self._loaded_at >= self._refresh_every:
            self._loaded_at = now  # one reload at a time; others use the current set
            try:
                self._urls = await self._store.gone_urls()
            except Exception:
                self._loaded_at = -float("inf")  # try again on the next delivery
                raise
        return url in self._urls

    def add(self, url: str) -> None:
        self._urls.add(url)
