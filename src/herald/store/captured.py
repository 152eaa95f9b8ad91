"""What the capture provider kept: a built-in outbox for every channel."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from herald.store.database import Database
from herald.store.tables import captured


class CapturedStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self,
        *,
        channel: str | None = None,
        notification_id: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[RowMapping]:
        """Newest first."""
        query = sa.select(captured).order_by(captured.c.id.desc()).limit(limit)
        if channel:
            query = query.where(captured.c.channel == channel)
        if notification_id:
            query = query.where(captured.c.notification_id == notification_id)
        if before_id is not None:
            query = query.where(captured.c.id < before_id)
        return await self.db.run(lambda conn: list(conn.execute(query).mappings()), readonly=True)

    async def clear(self, *, channel: str | None = None) -> int:
        query = captured.delete()
        if channel:
            query = query.where(captured.c.channel == channel)
        return await self.db.run(lambda conn: int(conn.execute(query).rowcount))
