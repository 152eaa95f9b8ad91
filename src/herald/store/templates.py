"""Templates in the database: every PUT a new version, DELETE a flag on all of them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from herald.store.database import Database
from herald.store.tables import templates

_t = templates.c


@dataclass(frozen=True, slots=True)
class TemplateRow:
    name: str
    version: int
    engine: str
    body: str  # JSON
    description: str | None
    created_at: float
    deleted: bool


def _row(mapping: sa.RowMapping) -> TemplateRow:
    return TemplateRow(
        name=mapping["name"],
        version=mapping["version"],
        engine=mapping["engine"],
        body=mapping["body"],
        description=mapping["description"],
        created_at=mapping["created_at"],
        deleted=bool(mapping["deleted"]),
    )


_LATEST = (
    sa.select(_t.name, sa.func.max(_t.version).label("version"))
    .group_by(_t.name)
    .subquery("latest")
)


class TemplateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(
        self, name: str, *, engine: str, body: str, description: str | None, now: float
    ) -> TemplateRow:
        """Store a new version (one more than any before, deleted or not)."""

        def insert(conn: sa.Connection) -> TemplateRow:
            latest = conn.execute(
                sa.select(sa.func.max(_t.version)).where(_t.name == name)
            ).scalar()
            values = {
                "name": name,
                "version": (latest or 0) + 1,
                "engine": engine,
                "body": body,
                "description": description,
                "created_at": now,
                "deleted": False,
            }
            conn.execute(templates.insert().values(values))
            return TemplateRow(**values)  # type: ignore[arg-type]

        for _ in range(5):
            try:
                return await self.db.run(insert)
            except IntegrityError:  # a concurrent PUT (PostgreSQL) took the same version
                continue
        raise RuntimeError(f"template {name!r}: concurrent updates kept colliding")

    async def get(self, name: str, version: int | None = None) -> TemplateRow | None:
        """The current version (None if there is none or it was deleted), or a given one
        (deleted or not: notifications still name it)."""
        query = sa.select(templates).where(_t.name == name)
        if version is None:
            query = query.order_by(_t.version.desc()).limit(1)
        else:
            query = query.where(_t.version == version)

        def read(conn: sa.Connection) -> TemplateRow | None:
            found = conn.execute(query).mappings().first()
            return _row(found) if found is not None else None

        row = await self.db.run(read, readonly=True)
        if row is None or (version is None and row.deleted):
            return None
        return row

    async def current_version(self, name: str) -> int | None:
        """The live version's number, cheaply (for checking a cached copy)."""

        def read(conn: sa.Connection) -> tuple[int, bool] | None:
            found = conn.execute(
                sa.select(_t.version, _t.deleted)
                .where(_t.name == name)
                .order_by(_t.version.desc())
                .limit(1)
            ).first()
            return (found[0], bool(found[1])) if found is not None else None

        latest = await self.db.run(read, readonly=True)
        return None if latest is None or latest[1] else latest[0]

    async def list(self) -> list[TemplateRow]:
        """The current version of every live template, by name."""
        query = (
            sa.select(templates)
            .join(_LATEST, sa.and_(_t.name == _LATEST.c.name, _t.version == _LATEST.c.version))
            .where(_t.deleted.is_(False))
            .order_by(_t.name)
        )
        return await self.db.run(
            lambda conn: [_row(m) for m in conn.execute(query).mappings()], readonly=True
        )

    async def delete(self, name: str) -> bool:
        """Mark every version deleted; False if there was no live version."""

        def mark(conn: sa.Connection) -> bool:
            live = templates.update().where(_t.name == name, _t.deleted.is_(False))
            return bool(conn.execute(live.values(deleted=True)).rowcount)

        return await self.db.run(mark)
