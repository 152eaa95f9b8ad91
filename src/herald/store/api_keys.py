"""API keys created with ``herald keys create``: only a SHA-256 digest is stored."""

from __future__ import annotations

import hashlib
import secrets
import time

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from herald.domain.ids import new_id
from herald.store.database import Database
from herald.store.tables import api_keys

KEY_PREFIX = "hk_"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str) -> tuple[str, str]:
        """A new key: returns (id, key). The key itself is shown once and never stored."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = new_id()
        statement = api_keys.insert().values(
            id=key_id, name=name, prefix=key[:10], key_hash=digest(key), created_at=time.time()
        )
        await self.db.run(lambda conn: conn.execute(statement))
        return key_id, key

    async def list(self) -> list[RowMapping]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at)
        return await self.db.run(lambda conn: list(conn.execute(query).mappings()), readonly=True)

    async def revoke(self, key_id: str) -> bool:
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        return await self.db.run(lambda conn: bool(conn.execute(statement).rowcount))

    async def is_active(self, key_hash: str) -> bool:
        return await self._exists(
            sa.select(api_keys.c.id).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            )
        )

    async def any_active(self) -> bool:
        return await self._exists(
            sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
        )

    async def _exists(self, query: sa.Select[tuple[str]]) -> bool:
        found = await self.db.run(lambda conn: conn.execute(query).first(), readonly=True)
        return found is not None
