"""Shared fixtures: real SQLite files, real PostgreSQL databases and a real Redis.

PostgreSQL tests use a fresh database per test, cloned from a migrated template. The
template is per session: several checkouts (branches with other migrations) may run their
tests against the same server at once. Locally the tests are skipped when no server
answers (PostgreSQL or Redis); with ``CI=true`` a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from herald.store.database import Database
from herald.store.migrate import upgrade

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN = os.environ.get(
    "HERALD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HERALD_TEST_REDIS", "redis://127.0.0.1:6379/0")
_TEST_SERVICES = {"HERALD_TEST_POSTGRES", "HERALD_TEST_REDIS"}


def require(service: str, reason: str) -> None:
    """Skip locally, fail in CI: CI must never silently skip a real service."""
    message = f"{service} is not reachable: {reason}"
    if CI:
        pytest.fail(f"{message} (required when CI=true)")
    pytest.skip(message)


def _database_url(name: str) -> str:
    base, _, _ = POSTGRES_ADMIN.rpartition("/")
    return f"{base}/{name}"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HERALD_* variable or herald.toml from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("HERALD_") and name not in _TEST_SERVICES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HERALD_CONFIG", str(tmp_path / "absent-herald.toml"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database, built once per test session and dropped after it."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError) as exc:
        require("PostgreSQL", str(exc))
    template = f"herald_test_template_{uuid.uuid4().hex[:12]}"

    async def build() -> None:
        await _admin(f"CREATE DATABASE {template}")
        database = Database(_database_url(template))
        try:
            await upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(build())
    yield template
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)"))


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE DATABASE {name} TEMPLATE {postgres_template}"))
    yield _database_url(name)
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'herald.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


def _redis_ping(url: str) -> None:
    """PING over a plain socket: no client library needed to know whether Redis answers."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as s:
        s.sendall(b"PING\r\n")
        reply = s.recv(64)
    if not reply.startswith(b"+PONG"):
        raise OSError(f"unexpected reply to PING: {reply!r}")


@pytest.fixture
def redis_url() -> str:
    """A Redis server (``HERALD_TEST_REDIS``); tests keep apart by unique key names."""
    try:
        _redis_ping(REDIS_URL)
    except OSError as exc:
        require("Redis", str(exc))
    return REDIS_URL
