"""One way to run a transaction on SQLite or PostgreSQL: ``await db.run(fn)``.

Store operations are plain functions of a synchronous SQLAlchemy ``Connection``, so each
is written once for both databases:

- **SQLite** runs the whole function on one dedicated thread (pysqlite, WAL). The event
  loop waits on a single future per transaction. With aiosqlite every statement cost three
  or four thread hops, each waiting for a busy loop to come round: a 128-row claim took
  40 ms under load instead of 17.
- **PostgreSQL** runs it through SQLAlchemy's greenlet bridge on asyncpg. Single-statement
  operations may ask for ``autocommit`` to save the BEGIN and COMMIT round trips.

Accepting a notification is always durable: its commit waits for the disk (SQLite
``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``). The worker's bookkeeping —
claims, outcomes, lease upkeep — may pass ``durable=False``: a crash of the machine (not of
the process) can then forget the last few milliseconds of it, which the lease mechanism
turns into a redelivery (at-least-once holds), in exchange for not waiting on a disk flush
per batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from herald.domain.errors import DatabaseUnavailable

Dialect = Literal["sqlite", "postgresql"]
T = TypeVar("T")

_READONLY = "herald_readonly"
#: PostgreSQL SQLSTATEs (classes and codes) that say the server is not there for us now:
#: connection exceptions (08), insufficient resources (53: too many connections, disk
#: full), operator intervention (57P: shutting down, starting up), and a database that does
#: not exist (3D000: dropped, or not created yet).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "3D000")
#: SQLite errors of the same kind: another process held the lock past the busy timeout,
#: the file cannot be opened or written.
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "disk is full")


def normalized_url(url: str) -> tuple[Dialect, str]:
    """The dialect, and the URL with the driver Herald uses for it."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return "sqlite", str(parsed.set(drivername="sqlite+pysqlite"))
    if backend in {"postgresql", "postgres"}:
        return "postgresql", parsed.set(drivername="postgresql+asyncpg").render_as_string(
            hide_password=False
        )
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


class Database:
    """Runs store functions in transactions; see the module docstring."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.dialect, self.url = normalized_url(url)
        self._synchronous = sqlite_synchronous
        if self.dialect == "sqlite":
            self._sqlite = _sqlite_engine(self.url, sqlite_synchronous)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="herald-sqlite")
        else:
            self._postgres = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self._postgres_relaxed = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args={"server_settings": {"synchronous_commit": "off"}},
            )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def run(
        self,
        fn: Callable[[sa.Connection], T],
        *,
        readonly: bool = False,
        autocommit: bool = False,
        durable: bool = True,
    ) -> T:
        """``fn(connection)`` in one transaction, committed if it returns.

        ``autocommit`` (PostgreSQL) runs without BEGIN/COMMIT: only for a function that
        executes a single statement, which is atomic on its own. ``durable=False``: see the
        module docstring.
        """
        try:
            if self.dialect == "sqlite":
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._thread, self._run_sqlite, fn, readonly, durable
                )
            engine = self._postgres if durable else self._postgres_relaxed
            if autocommit:
                async with engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    return await conn.run_sync(fn)
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        except (sa_exc.DBAPIError, OSError, asyncpg.InterfaceError) as exc:
            if not unavailable(exc):
                raise
            raise DatabaseUnavailable(f"the database is unavailable: {_root(exc)}") from exc

    def _run_sqlite(self, fn: Callable[[sa.Connection], T], readonly: bool, durable: bool) -> T:
        with self._sqlite.connect() as conn:
            if readonly:
                conn = conn.execution_options(**{_READONLY: True})
            elif not durable and self._synchronous in {"FULL", "EXTRA"}:
                # Per transaction: WAL with NORMAL skips the fsync at commit. Set on the
                # driver connection, outside any transaction (SQLite refuses it inside).
                raw: Any = conn.connection.driver_connection
                raw.execute("PRAGMA synchronous=NORMAL")
                try:
                    with conn.begin():
                        return fn(conn)
                finally:
                    raw.execute(f"PRAGMA synchronous={self._synchronous}")
            with conn.begin():
                return fn(conn)

    async def ping(self) -> None:
        await self.run(lambda conn: conn.execute(sa.text("SELECT 1")), readonly=True)

    async def dispose(self) -> None:
        if self.dialect == "sqlite":
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._sqlite.dispose)
            self._thread.shutdown(wait=True)
        else:
            await self._postgres.dispose()
            await self._postgres_relaxed.dispose()


def insert_ignoring_duplicates(dialect: Dialect, table: sa.Table) -> Any:
    """An INSERT that skips rows whose key exists (ON CONFLICT DO NOTHING)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or dropped the connection,
    rather than refusing this statement (a constraint, bad data, a bug)."""
    for error in _causes(exc):
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, OSError):  # refused, reset, timed out (TimeoutError is one)
            return True
        if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(error, sqlite3.OperationalError):
            message = str(error).lower()
            return any(words in message for words in _SQLITE_UNAVAILABLE)
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig`` (the driver's error), and the
    errors it was raised from (asyncpg's, under SQLAlchemy's adaptation of it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _root(exc: BaseException) -> str:
    """The driver's own words for what went wrong."""
    *_, last = _causes(exc)
    return str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__


def _sqlite_engine(url: str, synchronous: str) -> sa.Engine:
    memory = make_url(url).database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module (SQLAlchemy's documented
        # recipe), so BEGIN is emitted exactly when and how we say below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # Other processes (herald api + herald worker on one file) wait their turn.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
