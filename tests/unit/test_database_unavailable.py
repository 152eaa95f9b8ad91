"""Which database errors mean "unavailable, retry" (503) rather than "refused this"."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from herald.store.database import unavailable


def wrapped(
    driver_error: Exception, kind: type[sa_exc.DBAPIError] = sa_exc.DBAPIError
) -> Exception:
    """How SQLAlchemy hands a driver's error up: the driver's error as ``orig``."""
    return kind("INSERT …", None, driver_error)


def adapted(asyncpg_error: Exception) -> Exception:
    """SQLAlchemy's asyncpg dialect wraps asyncpg's error in its own, raised from it."""
    try:
        raise RuntimeError("adapted") from asyncpg_error
    except RuntimeError as adapted_error:
        return wrapped(adapted_error)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionRefusedError(111, "refused"), id="connection refused"),
        pytest.param(TimeoutError(), id="timeout"),
        pytest.param(wrapped(ConnectionResetError(104, "reset")), id="reset, wrapped"),
        pytest.param(adapted(asyncpg.CannotConnectNowError("starting up")), id="57P03"),
        pytest.param(adapted(asyncpg.AdminShutdownError("terminating")), id="57P01"),
        pytest.param(adapted(asyncpg.TooManyConnectionsError("too many")), id="53300"),
        pytest.param(adapted(asyncpg.InvalidCatalogNameError("no such db")), id="3D000"),
        pytest.param(adapted(asyncpg.ConnectionDoesNotExistError("gone")), id="08003"),
        pytest.param(asyncpg.InterfaceError("connection is closed"), id="closed"),
        pytest.param(
            wrapped(sqlite3.OperationalError("database is locked"), sa_exc.OperationalError),
            id="sqlite locked",
        ),
        pytest.param(
            wrapped(sqlite3.OperationalError("unable to open database file")), id="sqlite open"
        ),
    ],
)
def test_unavailable(error: Exception):
    assert unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(adapted(asyncpg.UniqueViolationError("duplicate")), id="unique"),
        pytest.param(adapted(asyncpg.DataError("bad value")), id="data"),
        pytest.param(
            wrapped(sqlite3.IntegrityError("UNIQUE constraint failed"), sa_exc.IntegrityError),
            id="sqlite unique",
        ),
        pytest.param(wrapped(sqlite3.OperationalError("no such table: x")), id="sqlite schema"),
        pytest.param(
            asyncpg.InterfaceError("another operation is in progress"), id="driver misuse"
        ),
    ],
)
def test_refused_statements_are_not_unavailability(error: Exception):
    assert not unavailable(error)


def test_a_dropped_connection_sqlalchemy_noticed_is_unavailable():
    error = sa_exc.DBAPIError("SELECT 1", None, Exception("?"), connection_invalidated=True)
    assert unavailable(error)
