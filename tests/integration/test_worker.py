"""The worker against real databases: failover, retries, dead letters, expiry, shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import PermanentError, TransientError, UnknownOutcome
from tests.integration.scripted import ScriptedProvider


async def started(url: str, providers: Sequence[Any], **settings: Any) -> Herald:
    # Retries wait a minute unless a test asks otherwise, so drain() never re-attempts
    # by chance (full jitter can draw a delay near zero).
    herald = Herald(
        url,
        providers={Channel.EMAIL: list(providers)},
        migrate=True,
        poll_interval=0.05,
        **{"retry_initial_delay": 60.0, **settings},
    )
    await herald.start()
    return herald


@pytest.fixture
async def primary(
    database_url: str,
) -> AsyncIterator[tuple[Herald, ScriptedProvider, ScriptedProvider]]:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    herald = await started(database_url, [a, b])
    yield herald, a, b
    await herald.aclose()


async def email(herald: Herald, **fields: Any) -> str:
    view = await herald.send_email(to="rcpt@example.org", subject="s", text="t", **fields)
    return view.id


async def test_transient_failure_fails_over_before_any_retry(primary):
    herald, a, b = primary
    a.script.append(TransientError("421 4.3.2 shutting down", code="421"))
    nid = await email(herald)
    await herald.drain()

    view = await herald.get(nid)
    assert (view.status, view.provider, view.attempts) == ("sent", "b", 1)
    assert [d.notification_id for d in b.delivered] == [nid]
    failover = [e for e in view.events if e.status == "sending" and e.provider == "a"]
    assert failover[0].detail == "421 4.3.2 shutting down; failing over to b"


async def test_recipient_fault_is_dead_at_once_with_no_failover(primary):
    herald, a, b = primary
    a.script.append(PermanentError("550 5.1.1 no such user", code="550 5.1.1", suppress=True))
    nid = await email(herald)
    await herald.drain()

    view = await herald.get(nid)
    assert view.status == "dead"
    assert view.last_error == "550 5.1.1 no such user [550 5.1.1]"
    assert b.attempts == []
    assert [(r.address, r.suppress) for r in view.rejected_recipients] == [
        ("rcpt@example.org", True)
    ]


async def test_provider_side_permanent_failure_fails_over(primary):
    herald, a, b = primary
    a.script.append(PermanentError("535 auth failed", code="535", recipient_fault=False))
    nid = await email(herald)
    await herald.drain()
    assert (await herald.get(nid)).provider == "b"
    assert len(b.delivered) == 1


async def test_transient_everywhere_is_retried_after_backoff_honouring_retry_after(database_url):
    a = ScriptedProvider("a", TransientError("busy", retry_after=120.0))
    herald = await started(database_url, [a])
    try:
        nid = await email(herald)
        before = time.time()
        await herald.drain()
        view = await herald.get(nid)
        stored, _ = await herald.notifications.get(nid)
    finally:
        await herald.aclose()
    assert view.status == "retrying"
    assert view.last_error == "busy"
    assert stored["due_at"] >= before + 120
    assert view.events[-1].detail.startswith("busy; retrying in 120.0 s")


async def test_retries_until_sent_then_until_exhausted(database_url):
    flaky = ScriptedProvider("flaky", TransientError("451 later"), TransientError("451 later"))
    herald = await started(database_url, [flaky], retry_initial_delay=0.0, retry_max_attempts=3)
    try:
        ok = await email(herald)
        for _ in range(3):
            await herald.drain()
        assert (await herald.get(ok)).status == "sent"
        assert (await herald.get(ok)).attempts == 3

        flaky.script.extend(TransientError("451 later") for _ in range(3))
        doomed = await email(herald)
        for _ in range(3):
            await herald.drain()
        view = await herald.get(doomed)
    finally:
        await herald.aclose()
    assert (view.status, view.attempts) == ("dead", 3)
    assert view.last_error == "attempts exhausted (3): 451 later"


async def test_unknown_outcome_is_retried_on_the_same_chain_and_counted(primary):
    herald, a, b = primary
    a.script.append(UnknownOutcome("timeout after DATA"))
    nid = await email(herald)
    await herald.drain()
    view = await herald.get(nid)
    assert (view.status, view.possible_duplicates) == ("retrying", 1)
    assert b.attempts == []


async def test_stale_messages_expire_instead_of_sending(database_url):
    a = ScriptedProvider("a")
    herald = await started(database_url, [a], max_lag=0.2)
    try:
        late = await email(herald)
        soon = await email(herald, expires_at="2099-01-01T00:00:00Z")
        await asyncio.sleep(0.3)
        await herald.drain()
        views = [await herald.get(late), await herald.get(soon)]
    finally:
        await herald.aclose()
    assert [v.status for v in views] == ["expired", "expired"]
    assert "HERALD_MAX_LAG" in (views[0].last_error or "")
    assert a.attempts == []


async def test_expires_at_is_honoured(database_url):
    a = ScriptedProvider("a")
    herald = await started(database_url, [a])
    try:
        soon = (time.time() + 0.2).__round__(3)
        from datetime import UTC, datetime

        nid = await email(herald, expires_at=datetime.fromtimestamp(soon, UTC).isoformat())
        await asyncio.sleep(0.3)
        await herald.drain()
        view = await herald.get(nid)
    finally:
        await herald.aclose()
    assert view.status == "expired"
    assert a.attempts == []


async def test_shutdown_finishes_in_flight_work_and_releases_the_rest(database_url):
    slow = ScriptedProvider("slow")
    slow.gate = asyncio.Event()
    herald = await started(database_url, [slow], worker_concurrency=1, shutdown_timeout=5.0)
    try:
        ids = [await email(herald) for _ in range(3)]
        stop = asyncio.Event()
        task = asyncio.create_task(herald.run_worker(stop))
        await slow.entered.wait()
        stop.set()
        await asyncio.sleep(0.05)
        slow.gate.set()  # the in-flight one completes within the shutdown deadline
        await task
        views = [await herald.get(i) for i in ids]
    finally:
        await herald.aclose()
    statuses = sorted(v.status for v in views)
    assert statuses == ["queued", "queued", "sent"]
    for view in views:
        if view.status == "queued":
            assert view.attempts == 0
            assert view.events[-1].detail == "released: the worker is shutting down"


async def test_work_interrupted_past_the_deadline_is_released_as_possibly_sent(database_url):
    stuck = ScriptedProvider("stuck")
    stuck.gate = asyncio.Event()  # never opened
    herald = await started(database_url, [stuck], worker_concurrency=1, shutdown_timeout=0.1)
    try:
        nid = await email(herald)
        stop = asyncio.Event()
        task = asyncio.create_task(herald.run_worker(stop))
        await stuck.entered.wait()
        stop.set()
        await task
        view = await herald.get(nid)
    finally:
        await herald.aclose()
    assert (view.status, view.possible_duplicates) == ("queued", 1)


async def test_a_crashing_provider_counts_as_transient(database_url):
    buggy = ScriptedProvider("buggy", RuntimeError("provider bug"))
    herald = await started(database_url, [buggy])
    try:
        nid = await email(herald)
        await herald.drain()
        view = await herald.get(nid)
    finally:
        await herald.aclose()
    assert (view.status, view.attempts) == ("retrying", 1)
    assert "buggy failed unexpectedly: RuntimeError('provider bug')" in (view.last_error or "")


async def test_leases_are_renewed_while_a_send_takes_long(database_url):
    slow = ScriptedProvider("slow")
    slow.gate = asyncio.Event()
    herald = await started(database_url, [slow], lease_seconds=0.3)
    try:
        nid = await email(herald)
        async with herald.worker():
            await slow.entered.wait()
            await asyncio.sleep(1.0)  # three lease lengths: renewal keeps it ours
            slow.gate.set()
            deadline = time.monotonic() + 10
            while (await herald.get(nid)).status != "sent" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        view = await herald.get(nid)
    finally:
        await herald.aclose()
    assert (view.status, view.attempts, view.possible_duplicates) == ("sent", 1, 0)
    assert len(slow.attempts) == 1
