"""Applying Alembic migrations from inside Herald (``herald migrate``, auto-migrate on SQLite)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from herald.store.database import Database

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""

    def run(connection: sa.Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    await database.run(run)


async def pending(database: Database) -> bool:
    """Whether the database is behind the newest migration."""

    def check(connection: sa.Connection) -> bool:
        current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(alembic_config()).get_heads()
        return set(current) != set(head)

    return await database.run(check, readonly=True)
