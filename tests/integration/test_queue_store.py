"""The queue's SQL on both databases: claims, fenced completions, leases, idempotency."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest

from herald.domain.ids import new_id
from herald.store.database import Database
from herald.store.migrate import upgrade
from herald.store.notifications import KeyConflict, NotificationStore
from herald.store.queue import LEASE_EXPIRED, QueueStore
from herald.store.records import NewNotification, Outcome


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    yield database
    await database.dispose()


def row(
    *,
    key: str | None = None,
    digest: str | None = None,
    priority: int = 5,
    due: float | None = None,
    status: str = "queued",
    max_attempts: int = 5,
) -> NewNotification:
    now = time.time()
    return {
        "id": new_id(),
        "channel": "email",
        "status": status,
        "priority": priority,
        "recipient": "a@example.org",
        "recipient_id": None,
        "category": None,
        "payload": orjson.dumps({"subject": "é"}).decode(),
        "metadata": None,
        "idempotency_key": key,
        "request_hash": digest,
        "max_attempts": max_attempts,
        "send_at": due or now,
        "due_at": due or now,
        "expires_at": None,
        "created_at": now,
        "fallback": None,
        "fallback_of": None,
    }


def sent(claimed_id: str, token: int) -> Outcome:
    now = time.time()
    return {
        "id": claimed_id,
        "token": token,
        "status": "sent",
        "at": now,
        "due_at": None,
        "provider": "p",
        "provider_message_id": "m-1",
        "last_error": None,
        "results": None,
        "sent_at": now,
        "dup": 0,
        "attempts_delta": 0,
    }


async def test_claim_takes_due_rows_by_priority_and_records_the_attempt(db: Database):
    store, queue = NotificationStore(db), QueueStore(db)
    low, high, later = row(priority=1), row(priority=9), row(due=time.time() + 3600)
    await store.accept([[low, high, later]], actor="test")

    claimed = await queue.claim(limit=10, now=time.time(), lease_seconds=30, token=7, actor="w")

    assert [c.id for c in claimed] == [high["id"], low["id"]]
    assert all(c.attempts == 1 and c.lease_token == 7 for c in claimed)
    assert await queue.claim(limit=10, now=time.time(), lease_seconds=30, token=8, actor="w") == []
    _, events = await store.get(high["id"])
    assert [(e["status"], e["actor"], e["detail"]) for e in events] == [
        ("queued", "test", "accepted"),
        ("sending", "w", "attempt 1"),
    ]


async def test_completion_is_fenced_by_the_lease_token(db: Database):
    store, queue = NotificationStore(db), QueueStore(db)
    first = row()
    await store.accept([[first]], actor="test")
    (stale,) = await queue.claim(limit=1, now=time.time(), lease_seconds=0.01, token=1, actor="a")
    # The lease runs out, the reaper returns the row, another worker claims it.
    assert await queue.reap(now=time.time() + 1, limit=10, actor="reaper") == [
        (first["id"], "retrying")
    ]
    assert await queue.promote_due(now=time.time() + 1, actor="scheduler") == 1
    (fresh,) = await queue.claim(limit=1, now=time.time() + 1, lease_seconds=30, token=2, actor="b")

    stale_event = {
        "nid": stale.id,
        "at": time.time(),
        "status": "sent",
        "provider": "p",
        "detail": "stale",
    }
    assert (
        await queue.complete([sent(stale.id, stale.lease_token)], [stale_event], actor="a") == set()
    )
    fresh_event = {**stale_event, "detail": "fresh"}
    assert await queue.complete([sent(fresh.id, fresh.lease_token)], [fresh_event], actor="b") == {
        fresh.id
    }

    stored, events = await store.get(first["id"])
    assert stored["status"] == "sent"
    assert stored["attempts"] == 2
    assert stored["possible_duplicates"] == 1
    assert stored["lease_token"] is None
    details = [e["detail"] for e in events]
    assert "stale" not in details
    assert details[-1] == "fresh"
    assert LEASE_EXPIRED in details


async def test_reaping_after_the_last_attempt_is_a_dead_letter(db: Database):
    store, queue = NotificationStore(db), QueueStore(db)
    only = row(max_attempts=1)
    await store.accept([[only]], actor="test")
    await queue.claim(limit=1, now=time.time(), lease_seconds=0.01, token=1, actor="a")
    assert await queue.reap(now=time.time() + 1, limit=10, actor="reaper") == [(only["id"], "dead")]


async def test_renewed_leases_are_not_reaped(db: Database):
    store, queue = NotificationStore(db), QueueStore(db)
    await store.accept([[row()]], actor="test")
    now = time.time()
    await queue.claim(limit=1, now=now, lease_seconds=1, token=5, actor="a")
    assert await queue.renew([5], until=now + 100) == 1
    assert await queue.reap(now=now + 50, limit=10, actor="reaper") == []


async def test_scheduled_rows_are_promoted_when_due(db: Database):
    store, queue = NotificationStore(db), QueueStore(db)
    soon = row(status="scheduled", due=time.time() + 60)
    await store.accept([[soon]], actor="test")
    assert (
        await queue.claim(limit=5, now=time.time() + 120, lease_seconds=5, token=1, actor="w") == []
    )
    assert await queue.promote_due(now=time.time(), actor="scheduler") == 0
    assert await queue.promote_due(now=time.time() + 61, actor="scheduler") == 1
    claimed = await queue.claim(limit=5, now=time.time() + 61, lease_seconds=5, token=1, actor="w")
    assert [c.id for c in claimed] == [soon["id"]]


async def test_idempotency_replays_same_body_and_rejects_another(db: Database):
    store = NotificationStore(db)
    key = f"key-{new_id()}"
    original = row(key=key, digest="aaa")
    same, other = row(key=key, digest="aaa"), row(key=key, digest="bbb")

    first = await store.accept([[original]], actor="test")
    results = await store.accept([[same], [other], [row()]], actor="test")

    assert first[0][0].id == original["id"]
    assert results[0][0].replayed
    assert results[0][0].id == original["id"]
    assert results[1] == KeyConflict(index=0, key=key)
    assert not isinstance(results[2], KeyConflict)
    assert not results[2][0].replayed
    listed = await store.list(limit=10)
    assert {r["id"] for r in listed} == {original["id"], results[2][0].id}


async def test_a_request_conflicting_inside_one_group_commits_nothing(db: Database):
    store = NotificationStore(db)
    key = f"k-{new_id()}"
    batch = [row(), row(key=key, digest="x"), row(key=key, digest="y")]
    (result,) = await store.accept([batch], actor="test")
    assert result == KeyConflict(index=2, key=key)
    assert await store.list(limit=10) == []


async def test_cancel_and_dead_letter_retry(db: Database):
    from herald.domain.errors import Conflict

    store, queue = NotificationStore(db), QueueStore(db)
    waiting, doomed = row(), row(max_attempts=1)
    await store.accept([[waiting], [doomed]], actor="test")
    await store.cancel(waiting["id"], now=time.time(), actor="api")
    with pytest.raises(Conflict):
        await store.cancel(waiting["id"], now=time.time(), actor="api")

    (claimed,) = await queue.claim(limit=5, now=time.time(), lease_seconds=5, token=3, actor="w")
    dead: Outcome = {
        **sent(claimed.id, 3),
        "status": "dead",
        "sent_at": None,
        "last_error": "550 5.1.1 no such user",
    }
    await queue.complete([dead], [], actor="w")
    with pytest.raises(Conflict):
        await store.cancel(doomed["id"], now=time.time(), actor="api")
    await store.retry_dead(doomed["id"], now=time.time(), actor="api")

    stored, events = await store.get(doomed["id"])
    assert (stored["status"], stored["attempts"]) == ("queued", 0)
    assert events[-1]["detail"] == "retried from the dead-letter queue"
    assert await store.count_by_status(["queued", "cancelled", "dead"]) == {
        "queued": 1,
        "cancelled": 1,
        "dead": 0,
    }
