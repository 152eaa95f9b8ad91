"""The migrations build exactly the schema the code declares, and can be undone."""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from herald.store.database import Database
from herald.store.migrate import alembic_config, pending, upgrade
from herald.store.tables import metadata


async def test_migrations_match_the_table_definitions(database_url: str):
    database = Database(database_url)
    try:
        # PostgreSQL test databases are cloned from a migrated template: start from nothing.
        await database.run(lambda conn: command.downgrade(alembic_config(conn), "base"))
        assert await pending(database)
        await upgrade(database)
        assert not await pending(database)

        def differences(conn: sa.Connection) -> list[object]:
            with warnings.catch_warnings():
                # Alembic cannot compare expression indexes (priority DESC) and says so; the
                # one such index is checked by name below instead.
                warnings.filterwarnings("ignore", message=".*expression-based index")
                found = compare_metadata(MigrationContext.configure(conn), metadata)
                indexes = sa.inspect(conn).get_indexes("notifications")
            assert "ix_notifications_ready" in {ix["name"] for ix in indexes}
            return [d for d in found if "ix_notifications_ready" not in repr(d)]

        assert await database.run(differences, readonly=True) == []
    finally:
        await database.dispose()


async def test_downgrade_to_nothing_and_back(database_url: str):
    database = Database(database_url)
    try:
        await upgrade(database)
        await database.run(lambda conn: command.downgrade(alembic_config(conn), "base"))

        def tables(conn: sa.Connection) -> set[str]:
            return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}

        assert await database.run(tables, readonly=True) == set()
        await upgrade(database)
        assert await database.run(tables, readonly=True) == set(metadata.tables)
    finally:
        await database.dispose()
