"""Several `herald worker` processes on one PostgreSQL database, delivering to a real SMTP
server: no message lost when workers are killed with SIGKILL; exactly once when none is.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald import Herald
from tests.integration.smtp_server import SmtpTestServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HERALD = str(Path(sys.executable).with_name("herald"))


def worker_env(database_url: str, smtp: SmtpTestServer, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_EMAIL": f"smtp://{smtp.host}:{smtp.port}?tls=none&from=herald%40example.org",
        "HERALD_LOG_LEVEL": "warning",
        "HERALD_LOG_FORMAT": "json",
        "HERALD_POLL_INTERVAL": "0.1",
        **extra,
    }


class Workers:
    """`herald worker` subprocesses, started and killed at will."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.env = env
        self.concurrency = concurrency
        self.running: list[subprocess.Popen[bytes]] = []
        self.killed = 0

    def start(self) -> None:
        self.running.append(
            subprocess.Popen(
                [HERALD, "worker", "--concurrency", str(self.concurrency)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def kill_one(self) -> None:
        victim = self.running.pop(random.randrange(len(self.running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.killed += 1

    def stop_all(self) -> list[int]:
        for proc in self.running:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in self.running]
        self.running.clear()
        return codes


@pytest.fixture
def workers_factory() -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for workers in made:
        for proc in workers.running:
            proc.kill()
            proc.wait()


async def accept(database_url: str, count: int) -> list[str]:
    async with Herald(database_url, migrate=True) as herald:
        ids: list[str] = []
        for start in range(0, count, 500):
            batch = [
                {
                    "channel": "email",
                    "to": f"user{i}@example.org",
                    "subject": f"message {i}",
                    "text": f"body {i}",
                }
                for i in range(start, min(start + 500, count))
            ]
            ids.extend(item.id for item in await herald.send_batch(batch))
        return ids


async def statuses(database_url: str) -> dict[str, tuple[str, int, int]]:
    """id -> (status, attempts, possible_duplicates)"""
    async with Herald(database_url, migrate=True) as herald:
        rows = await herald.db.run(
            lambda conn: conn.execute(
                sa.text("SELECT id, status, attempts, possible_duplicates FROM notifications")
            ).all(),
            readonly=True,
        )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def wait_all_sent(
    database_url: str, count: int, within: float
) -> dict[str, tuple[str, int, int]]:
    deadline = time.monotonic() + within
    while True:
        state = await statuses(database_url)
        if sum(1 for s, _, _ in state.values() if s == "sent") == count:
            return state
        if time.monotonic() > deadline:
            pending = {s for s, _, _ in state.values() if s != "sent"}
            raise AssertionError(f"not all sent within {within} s; still {pending}")
        await asyncio.sleep(0.5)


def counts_by_notification(smtp: SmtpTestServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message_id, n in smtp.message_id_counts().items():
        nid = message_id.strip("<>").split("@", 1)[0]
        counts[nid] = counts.get(nid, 0) + n
    return counts


async def test_sigkilled_workers_lose_nothing(
    postgres_url: str, smtp_server: SmtpTestServer, workers_factory: list[Workers]
):
    total, concurrency, batch = 2000, 16, 32
    ids = await accept(postgres_url, total)
    workers = Workers(
        worker_env(
            postgres_url,
            smtp_server,
            HERALD_LEASE_SECONDS="2",
            HERALD_CLAIM_BATCH_SIZE=str(batch),
        ),
        concurrency,
    )
    workers_factory.append(workers)
    for _ in range(3):
        workers.start()
    # Kill a worker every half second while mail flows, replacing it each time.
    while smtp_server.message_count < total and workers.killed < 6:
        await asyncio.sleep(0.5)
        if smtp_server.message_count > 100:
            workers.kill_one()
            workers.start()
    state = await wait_all_sent(postgres_url, total, within=120)
    workers.stop_all()

    delivered = counts_by_notification(smtp_server)
    assert set(delivered) == set(ids), "every accepted message arrived at least once"
    duplicates = sum(n - 1 for n in delivered.values())
    possible = sum(dup for _, _, dup in state.values())
    window = workers.killed * (concurrency + batch)
    print(
        f"\n{total} messages, {workers.killed} workers SIGKILLed: {duplicates} delivered twice "
        f"(recorded as possible duplicates: {possible}; bound: {window})"
    )
    assert workers.killed >= 3
    assert duplicates <= possible, "every duplicate was counted on its notification"
    assert duplicates <= window, "duplicates are bounded by the in-flight window"


async def test_four_workers_deliver_each_message_exactly_once(
    postgres_url: str, smtp_server: SmtpTestServer, workers_factory: list[Workers]
):
    total = 5000
    ids = await accept(postgres_url, total)
    workers = Workers(worker_env(postgres_url, smtp_server), concurrency=32)
    workers_factory.append(workers)
    for _ in range(4):
        workers.start()
    state = await wait_all_sent(postgres_url, total, within=240)
    assert workers.stop_all() == [0, 0, 0, 0], "each worker exits cleanly on SIGTERM"

    delivered = counts_by_notification(smtp_server)
    assert set(delivered) == set(ids)
    assert all(n == 1 for n in delivered.values()), "no message delivered twice"
    assert all(attempts == 1 and dup == 0 for _, attempts, dup in state.values())
    async with Herald(postgres_url) as herald:
        actors = await herald.db.run(
            lambda conn: conn.execute(
                sa.text("SELECT DISTINCT actor FROM notification_events WHERE status = 'sent'")
            ).all(),
            readonly=True,
        )
    assert len(actors) == 4, "every worker took a share"
