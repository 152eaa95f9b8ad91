"""Circuit breakers and rate limits against real SMTP servers: a provider that keeps failing
is skipped (and no longer called) until its breaker half-opens; a rate is never exceeded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from herald import Herald
from herald.domain.breaker import CircuitState
from herald.worker.limits import Rate
from herald.worker.redis_windows import RedisWindows
from tests.integration.api import eventually, running_api
from tests.integration.conftest import SmtpServerFactory
from tests.integration.smtp_server import SmtpTestServer

BUSY = (451, "4.3.0 Try again later")
HERALD = str(Path(sys.executable).with_name("herald"))


def smtp_url(server: SmtpTestServer, **options: Any) -> str:
    query = "".join(f"&{key}={value}" for key, value in options.items())
    return f"smtp://{server.host}:{server.port}?tls=none&from=herald%40example.org{query}"


def mail_commands(server: SmtpTestServer) -> int:
    """MAIL FROM commands the server received: how often Herald called this provider."""
    return sum(read.upper().count(b"MAIL FROM:") for read in server.reads())


def metric(name: str, provider: str) -> float:
    return REGISTRY.get_sample_value(name, {"provider": provider}) or 0.0


async def send(herald: Herald, count: int = 1) -> list[str]:
    return [
        (await herald.send_email(to="rcpt@example.org", subject=f"n{n}", text="t")).id
        for n in range(count)
    ]


async def statuses(herald: Herald, ids: Sequence[str]) -> list[tuple[str, str | None, int]]:
    views = [await herald.get(nid) for nid in ids]
    return [(v.status, v.provider, v.attempts) for v in views]


def unique(name: str) -> str:
    """Provider names label process-wide metrics and Redis keys: keep tests apart."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_a_tripped_breaker_fails_over_without_calling_the_provider(
    database_url: str, smtp_server_factory: SmtpServerFactory
):
    primary, backup = smtp_server_factory(), smtp_server_factory()
    primary.queue_replies("mail", BUSY, BUSY, BUSY)
    name = unique("primary")
    email = ",".join(
        [
            smtp_url(primary, name=name, breaker_failures=3, breaker_cooldown=60),
            smtp_url(backup, name="backup"),
        ]
    )
    async with Herald(database_url, migrate=True, email=email, poll_interval=0.05) as herald:
        first = await send(herald, 3)
        await herald.drain()
        assert mail_commands(primary) == 3
        assert metric("herald_provider_circuit_state", name) == 2  # open
        assert metric("herald_provider_circuit_trips_total", name) == 1

        later = await send(herald, 3)
        await herald.drain()

        assert mail_commands(primary) == 3  # not called again while open
        assert await statuses(herald, first + later) == [("sent", "backup", 1)] * 6
        assert backup.message_count == 6
        view = await herald.get(later[0])
        skipped = [e.detail for e in view.events if e.status == "sending" and e.provider == name]
        assert skipped == [f"{name} circuit open; failing over to backup"]


async def test_half_open_probe_reopens_on_failure_and_closes_on_success(
    sqlite_url: str, smtp_server_factory: SmtpServerFactory
):
    primary, backup = smtp_server_factory(), smtp_server_factory()
    primary.queue_replies("mail", BUSY, BUSY)
    name = unique("primary")
    email = ",".join(
        [
            smtp_url(primary, name=name, breaker_failures=1, breaker_cooldown=0.2),
            smtp_url(backup, name="backup"),
        ]
    )
    async with Herald(sqlite_url, migrate=True, email=email, poll_interval=0.05) as herald:
        breaker = herald.guards[name].breaker
        await send(herald)
        await herald.drain()
        assert (mail_commands(primary), breaker.trips) == (1, 1)

        # Past the cool-down the next message is a probe; it fails, so the circuit
        # re-opens for twice as long.
        await asyncio.sleep(max(breaker.retry_at(time.time()) - time.time(), 0) + 0.05)
        assert herald.guards[name].state(time.time()) is CircuitState.HALF_OPEN
        assert metric("herald_provider_circuit_state", name) == 1
        (probe,) = await send(herald)
        await herald.drain()
        assert (mail_commands(primary), breaker.trips) == (2, 2)
        assert breaker.retry_at(time.time()) - time.time() <= 0.4
        assert await statuses(herald, [probe]) == [("sent", "backup", 1)]

        # The next probe succeeds: the circuit closes and the primary is used again.
        await asyncio.sleep(max(breaker.retry_at(time.time()) - time.time(), 0) + 0.05)
        recovered = await send(herald)
        await herald.drain()
        assert await statuses(herald, recovered) == [("sent", name, 1)]
        assert primary.message_count == 1
        assert metric("herald_provider_circuit_state", name) == 0
        assert breaker.trips == 0
        after = await send(herald, 3)
        await herald.drain()
        assert await statuses(herald, after) == [("sent", name, 1)] * 3


async def test_a_recipients_bad_address_does_not_count_against_the_provider(
    sqlite_url: str, smtp_server_factory: SmtpServerFactory
):
    server = smtp_server_factory()
    server.reject_recipient("nobody@example.org", 550, "5.1.1 No such user")
    name = unique("smtp")
    email = smtp_url(server, name=name, breaker_failures=1)
    async with Herald(sqlite_url, migrate=True, email=email, poll_interval=0.05) as herald:
        bad = await herald.send_email(to="nobody@example.org", subject="s", text="t")
        await herald.drain()
        good = await send(herald)
        await herald.drain()
        assert (await herald.get(bad.id)).status == "dead"
        assert await statuses(herald, good) == [("sent", name, 1)]
        assert herald.guards[name].breaker.trips == 0


async def test_every_circuit_open_defers_without_using_an_attempt(
    database_url: str, smtp_server_factory: SmtpServerFactory
):
    server = smtp_server_factory()
    server.queue_replies("mail", BUSY)
    name = unique("only")
    email = smtp_url(server, name=name, breaker_failures=1, breaker_cooldown=0.5)
    async with Herald(
        database_url, migrate=True, email=email, poll_interval=0.05, retry_initial_delay=60
    ) as herald:
        (failed,) = await send(herald)
        await herald.drain()
        (deferred,) = await send(herald)
        await herald.drain()

        assert mail_commands(server) == 1  # the second was never offered to the provider
        assert await statuses(herald, [failed, deferred]) == [
            ("retrying", name, 1),
            ("retrying", None, 0),
        ]
        view = await herald.get(deferred)
        assert view.last_error == f"{name} circuit open"
        pattern = rf"{name} circuit open; deferred [0-9.]+ s \(no attempt used\)"
        assert re.fullmatch(pattern, view.events[-1].detail or "")

        # Due when the breaker half-opens: then it is the probe, and its first attempt.
        async with herald.worker():

            async def sent() -> bool:
                return (await herald.get(deferred)).status == "sent"

            await eventually(sent)
        assert await statuses(herald, [deferred]) == [("sent", name, 1)]


async def test_readyz_reports_an_open_circuit(
    sqlite_url: str, smtp_server_factory: SmtpServerFactory
):
    primary, backup = smtp_server_factory(), smtp_server_factory()
    primary.queue_replies("mail", BUSY)
    name = unique("primary")
    email = ",".join(
        [smtp_url(primary, name=name, breaker_failures=1), smtp_url(backup, name="backup")]
    )
    async with running_api(sqlite_url, capture=True, email=email, migrate=True) as api:
        await api.send()
        await api.herald.drain()
        response = await api.client.get("/readyz")
        exposed = (await api.client.get("/metrics")).text

    assert response.status_code == 200  # accepting still works: messages queue
    body = response.json()
    assert body["status"] == "degraded"
    assert body["providers"][name] == "circuit open"
    assert body["providers"]["backup"] == "ok"
    assert f'herald_provider_circuit_state{{provider="{name}"}} 2.0' in exposed


async def test_a_long_wait_for_a_rate_slot_fails_over_or_defers_without_an_attempt(
    database_url: str, smtp_server_factory: SmtpServerFactory
):
    primary, backup = smtp_server_factory(), smtp_server_factory()
    name = unique("hourly")
    email = ",".join(
        [
            smtp_url(primary, name=name, rate="2/h", limit_wait=0.2),
            smtp_url(backup, name="backup", rate="1/h", limit_wait=0),
        ]
    )
    async with Herald(database_url, migrate=True, email=email, poll_interval=0.05) as herald:
        ids = await send(herald, 4)
        await herald.drain()
        views = [await herald.get(nid) for nid in ids]

    by_status = sorted((v.status, v.provider, v.attempts) for v in views)
    # Two fit the primary's hour, one the backup's; the last waits for a slot, unattempted.
    assert by_status == [
        ("retrying", None, 0),
        ("sent", "backup", 1),
        ("sent", name, 1),
        ("sent", name, 1),
    ]
    assert (primary.message_count, backup.message_count) == (2, 1)
    (waiting,) = [v for v in views if v.status == "retrying"]
    assert waiting.last_error == f"{name} rate limit reached; backup rate limit reached"
    failed_over = [e.detail for e in waiting.events if e.provider == name]
    assert failed_over == [f"{name} rate limit reached; failing over to backup"]
    (over,) = [v for v in views if v.provider == "backup"]
    assert [e.detail for e in over.events if e.provider == name] == failed_over


RATE = 20
# The window counts sends as they start; the sink sees them when the SMTP transaction
# ends, which on a busy two-core machine varies by tens of milliseconds (more than a
# hundred with two worker processes, PostgreSQL and the sink competing), so a one-second
# window at the sink may catch a few sends of the neighbouring one. Without the limit, or
# with two workers not sharing it, it sees twice the rate or more.
SINK_TOLERANCE = RATE // 4
PROCESSES_SINK_TOLERANCE = RATE // 2


def assert_paced(arrivals: Sequence[float], count: int, tolerance: int = SINK_TOLERANCE) -> None:
    """``count`` arrivals, never more than the rate (give or take the tolerance) in any
    one-second window, and so spread over more than two windows for three windows' worth."""
    ordered = sorted(arrivals)
    relative = [round(t - ordered[0], 3) for t in ordered]
    busiest = max(sum(1 for t in ordered[i:] if t < start + 1.0) for i, start in enumerate(ordered))
    assert len(ordered) == count
    assert busiest <= RATE + tolerance, str(relative)
    assert ordered[-1] - ordered[0] > (count / RATE - 1) - 0.5, relative


async def arrivals_when_paced(
    heralds: Sequence[Herald], server: SmtpTestServer, count: int
) -> list[float]:
    """Warm the SMTP connections with one window's worth of sends (opening connections
    would delay the first sends and bunch them with the next window's), then send
    ``count`` and return the times they reached the server.

    The providers set ``concurrency`` to their SMTP pool size: a send then takes its slot
    when a connection is free, rather than taking it and queueing for one."""
    async with contextlib.AsyncExitStack() as workers:
        for herald in heralds:
            await workers.enter_async_context(herald.worker())
        await send(heralds[0], RATE)
        await asyncio.to_thread(server.wait_for_messages, RATE, 60)
        server.clear()
        await send(heralds[-1], count)
        messages = await asyncio.to_thread(server.wait_for_messages, count, 60)
    return [m.received_at for m in messages]


async def test_a_rate_paces_sends_in_process(
    sqlite_url: str, smtp_server_factory: SmtpServerFactory
):
    server = smtp_server_factory()
    email = smtp_url(server, name=unique("paced"), rate=f"{RATE}/s", concurrency=4)
    async with Herald(sqlite_url, migrate=True, email=email, poll_interval=0.05) as herald:
        arrivals = await arrivals_when_paced([herald], server, 3 * RATE)

    assert_paced(arrivals, 3 * RATE)


async def test_a_rate_is_shared_through_redis_by_two_workers(
    database_url: str, redis_url: str, smtp_server_factory: SmtpServerFactory
):
    server = smtp_server_factory()
    email = smtp_url(server, name=unique("shared"), rate=f"{RATE}/s", concurrency=4)
    settings = {"email": email, "redis_url": redis_url, "poll_interval": 0.05}
    # Two workers, each with its own limiter, taking slots from one window in Redis (each
    # alone would let 20/s through: 40/s together).
    async with (
        Herald(database_url, migrate=True, **settings) as one,
        Herald(database_url, migrate=True, **settings) as two,
    ):
        arrivals = await arrivals_when_paced([one, two], server, 3 * RATE)

    assert_paced(arrivals, 3 * RATE)


def start_workers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    command = [HERALD, "worker", "--concurrency", "16"]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    return [worker.wait(60) for worker in workers]


@pytest.mark.slow
async def test_a_rate_is_shared_through_redis_by_two_worker_processes(
    postgres_url: str, redis_url: str, smtp_server_factory: SmtpServerFactory
):
    server = smtp_server_factory()
    email = smtp_url(server, name=unique("procs"), rate=f"{RATE}/s", concurrency=4)
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": postgres_url,
        "HERALD_EMAIL": email,
        "HERALD_REDIS_URL": redis_url,
        "HERALD_POLL_INTERVAL": "0.05",
        "HERALD_LOG_LEVEL": "warning",
    }
    workers = start_workers(env, 2)
    try:
        async with Herald(postgres_url) as herald:
            await send(herald, RATE)  # warms both workers' SMTP connections
            await asyncio.to_thread(server.wait_for_messages, RATE, 60)
            server.clear()
            await send(herald, 3 * RATE)
            messages = await asyncio.to_thread(server.wait_for_messages, 3 * RATE, 60)
    finally:
        codes = stop_workers(workers)

    assert codes == [0, 0]
    arrivals = [m.received_at for m in messages]
    assert_paced(arrivals, 3 * RATE, PROCESSES_SINK_TOLERANCE)


async def test_an_unreachable_redis_falls_back_to_a_window_in_the_process():
    windows = RedisWindows("redis://127.0.0.1:1/0")  # nothing listens on port 1
    window = windows.window(Rate(2, 3600), unique("unreachable"))
    try:
        assert await window.take() is None
        assert await window.take() is None
        wait = await window.take()
        assert wait is not None
        assert wait > 3000
    finally:
        await windows.aclose()
