"""Webhook bookkeeping: the registry of gone URLs, and the stored default signing secret."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from herald.store.database import Database, Dialect, insert_ignoring_duplicates
from herald.store.records import GoneUrl
from herald.store.tables import stored_settings, webhook_gone

_STORED_AS = "webhook_secret"


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def record_gone(conn: sa.Connection, dialect: Dialect, gone: Sequence[GoneUrl]) -> None:
    """Remember URLs that answered 410 (the first report of each is kept)."""
    rows = [{**g, "url_hash": url_hash(g["url"])} for g in gone]
    conn.execute(insert_ignoring_duplicates(dialect, webhook_gone), rows)


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def gone_urls(self) -> set[str]:
        query = sa.select(webhook_gone.c.url)
        return await self.db.run(lambda conn: set(conn.scalars(query)), readonly=True)

    async def list_gone(self) -> list[GoneUrl]:
        query = sa.select(webhook_gone).order_by(webhook_gone.c.at)
        return await self.db.run(
            lambda conn: [
                GoneUrl(url=r.url, at=r.at, notification_id=r.notification_id, detail=r.detail)
                for r in conn.execute(query)
            ],
            readonly=True,
        )

    async def clear_gone(self, urls: Sequence[str] | None = None) -> int:
        """Forget gone URLs (all of them when ``urls`` is None); returns how many."""
        statement = webhook_gone.delete()
        if urls is not None:
            statement = statement.where(webhook_gone.c.url_hash.in_([url_hash(u) for u in urls]))
        return await self.db.run(lambda conn: int(conn.execute(statement).rowcount))

    async def secret(self, generate: Callable[[], str]) -> str:
        """The stored default signing secret, generated and stored on first use (two
        processes starting at once agree: the first insert wins)."""
        candidate = generate()

        query = sa.select(stored_settings.c.value).where(stored_settings.c.key == _STORED_AS)

        def get_or_create(conn: sa.Connection) -> str:
            conn.execute(
                insert_ignoring_duplicates(self.db.dialect, stored_settings),
                {"key": _STORED_AS, "value": candidate, "created_at": time.time()},
            )
            return str(conn.execute(query).scalar_one())

        # Read first: only the very first start writes.
        stored = await self.db.run(lambda conn: conn.execute(query).scalar(), readonly=True)
        return str(stored) if stored is not None else await self.db.run(get_or_create)
