"""PostgreSQL dropping Herald's connections (a restart, a failover, an admin's
``pg_terminate_backend``): nothing accepted is lost and work resumes on new connections."""

from __future__ import annotations

import asyncpg
import pytest

from herald import Channel, DatabaseUnavailable, Herald
from herald.store.wakeup import PostgresListener, Wakeup
from tests.conftest import POSTGRES_ADMIN
from tests.integration.api import eventually, running_api
from tests.integration.test_library import SignallingProvider


async def _terminate_connections(url: str) -> int:
    """End every other session on ``url``'s database, as a restart would; how many."""
    admin = await asyncpg.connect(url)
    try:
        ended: int = await admin.fetchval(
            "SELECT count(*) FROM ("
            "  SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            "  WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ") AS ended"
        )
        return ended
    finally:
        await admin.close()


async def test_accepting_and_delivering_go_on_after_connections_are_dropped(postgres_url: str):
    provider = SignallingProvider()
    async with (
        Herald(postgres_url, providers={Channel.EMAIL: [provider]}, poll_interval=0.05) as herald,
        herald.worker(),
    ):
        first = await herald.send_email(to="a@example.org", subject="before", text="t")
        await provider.wait_for(1)
        await eventually(lambda: _status(herald, first.id, "sent"))

        # The pool's idle connections and the LISTEN connection are all gone now.
        assert await _terminate_connections(postgres_url) >= 2

        second = await herald.send_email(to="b@example.org", subject="after", text="t")
        await provider.wait_for(2)
        await eventually(lambda: _status(herald, second.id, "sent"))
        assert [d.content.subject for d in provider.outbox] == ["before", "after"]


async def test_the_listener_reconnects_and_wakes_the_worker_again(postgres_url: str):
    """Another process's NOTIFY reaches a worker whose LISTEN connection was dropped."""
    wakeup = Wakeup()
    listener = PostgresListener(postgres_url, wakeup)
    listener.start()
    try:
        assert await wakeup.wait(30)  # connected: it wakes the worker once on connecting
        assert await _terminate_connections(postgres_url) >= 1
        assert await wakeup.wait(30)  # reconnected, and woke the worker to catch up
        notifier = await asyncpg.connect(postgres_url)
        try:
            await notifier.execute("NOTIFY herald_queue")
        finally:
            await notifier.close()
        assert await wakeup.wait(30)
    finally:
        await listener.stop()


async def _status(herald: Herald, notification_id: str, expected: str) -> bool:
    return (await herald.get(notification_id)).status == expected


async def test_the_api_answers_503_while_the_database_is_gone(postgres_url: str):
    async with running_api(postgres_url) as api:
        await _drop_database(postgres_url)

        accepted = await api.client.post(
            "/v1/notifications",
            json={"channel": "email", "to": "a@example.org", "subject": "s", "text": "t"},
        )
        listed = await api.client.get("/v1/notifications")

        for response in (accepted, listed):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            error = response.json()["error"]
            assert error["code"] == "database_unavailable"
            assert "does not exist" in error["message"]
        assert (await api.client.get("/healthz")).status_code == 200


async def test_the_library_raises_database_unavailable(postgres_url: str):
    async with Herald(postgres_url) as herald:
        await _drop_database(postgres_url)
        with pytest.raises(DatabaseUnavailable, match="does not exist"):
            await herald.send_email(to="a@example.org", subject="s", text="t")


async def _drop_database(url: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
