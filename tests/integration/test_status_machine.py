"""Property test of the status machine, driven through the real store on SQLite.

Random interleavings of accept, claim, complete (fresh and stale), lease expiry, cancel,
dead-letter retry and scheduling, checking after every step that: every status change is
one the machine allows; terminal statuses never change; attempts never exceed the
maximum; a row holds a lease exactly while it is being sent; a stale worker's completion
is never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from herald.domain.errors import Conflict
from herald.domain.status import TERMINAL, Status, can_transition
from herald.store.database import Database
from herald.store.migrate import upgrade
from herald.store.notifications import NotificationStore
from herald.store.queue import QueueStore
from herald.store.records import NewNotification, Outcome
from herald.store.tables import notifications

MAX_ATTEMPTS = 3
LEASE = 10.0
_TEMPLATE = tempfile.TemporaryDirectory(prefix="herald-machine-")
_TEMPLATE_DB = Path(_TEMPLATE.name) / "template.db"


def _template() -> Path:
    """A migrated database file, copied for each example (migrating each time is slow)."""
    if not _TEMPLATE_DB.exists():
        database = Database(f"sqlite:///{_TEMPLATE_DB}")

        async def build() -> None:
            await upgrade(database)
            await database.dispose()

        asyncio.run(build())
    return _TEMPLATE_DB


class StatusMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "m.db"
        shutil.copy(_template(), path)
        self.loop = asyncio.new_event_loop()
        self.db = Database(f"sqlite:///{path}")
        # Deterministic ids keep hypothesis' replays identical (UUIDv7s are random).
        self.ids = (f"n{n:05d}" for n in itertools.count())
        self.store = NotificationStore(self.db)
        self.queue = QueueStore(self.db)
        self.now = 1_000_000.0
        self.tokens = 0
        self.held: dict[str, tuple[int, int]] = {}  # id -> (token, attempts at claim)
        self.stale: dict[str, int] = {}  # id -> a token that lost its lease
        self.seen: dict[str, str] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()
        self.dir.cleanup()

    def rows(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self.run(
            self.db.run(
                lambda conn: {
                    r["id"]: dict(r) for r in conn.execute(notifications.select()).mappings()
                },
                readonly=True,
            )
        )
        return result

    # -- rules -----------------------------------------------------------------------------

    @rule(count=st.integers(1, 3), delay=st.sampled_from([0.0, 0.0, 30.0]))
    def accept(self, count: int, delay: float) -> None:
        rows: list[NewNotification] = []
        for _ in range(count):
            due = self.now + delay
            rows.append(
                {
                    "id": next(self.ids),
                    "channel": "email",
                    "status": "scheduled" if delay else "queued",
                    "priority": 5,
                    "recipient": "a@example.org",
                    "recipient_id": None,
                    "category": None,
                    "payload": orjson.dumps({}).decode(),
                    "metadata": None,
                    "idempotency_key": None,
                    "request_hash": None,
                    "max_attempts": MAX_ATTEMPTS,
                    "send_at": due,
                    "due_at": due,
                    "expires_at": None,
                    "created_at": self.now,
                    "fallback": None,
                    "fallback_of": None,
                }
            )
        self.run(self.store.accept([rows], actor="api"))

    @rule(limit=st.integers(1, 4))
    def claim(self, limit: int) -> None:
        self.tokens += 1
        claimed = self.run(
            self.queue.claim(
                limit=limit, now=self.now, lease_seconds=LEASE, token=self.tokens, actor="w"
            )
        )
        for row in claimed:
            assert row.id not in self.held, "a row was claimed twice while leased"
            self.held[row.id] = (row.lease_token, row.attempts)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), verdict=st.sampled_from(["sent", "transient", "permanent", "release"]))
    def complete(self, data: st.DataObject, verdict: str) -> None:
        nid = data.draw(st.sampled_from(sorted(self.held)))
        token, attempts = self.held.pop(nid)
        # The worker's rule: transient failures retry until attempts run out.
        status = {
            "sent": "sent",
            "permanent": "dead",
            "transient": "dead" if attempts >= MAX_ATTEMPTS else "retrying",
            "release": "queued",
        }[verdict]
        outcome: Outcome = {
            "id": nid,
            "token": token,
            "status": status,
            "at": self.now,
            "due_at": self.now,
            "provider": "p",
            "provider_message_id": None,
            "last_error": None,
            "results": None,
            "sent_at": self.now if status == "sent" else None,
            "dup": 0,
            "attempts_delta": -1 if verdict == "release" else 0,
        }
        applied = self.run(self.queue.complete([outcome], [], actor="w"))
        assert applied == {nid}, "a live lease's completion was refused"

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def stale_worker_completes(self, data: st.DataObject) -> None:
        nid = data.draw(st.sampled_from(sorted(self.stale)))
        token = self.stale[nid]  # stays stale forever: tokens are never reused
        before = self.rows()[nid]
        outcome: Outcome = {
            "id": nid,
            "token": token,
            "status": "sent",
            "at": self.now,
            "due_at": None,
            "provider": "stale",
            "provider_message_id": None,
            "last_error": None,
            "results": None,
            "sent_at": self.now,
            "dup": 0,
            "attempts_delta": 0,
        }
        assert self.run(self.queue.complete([outcome], [], actor="old")) == set()
        assert self.rows()[nid] == before

    @rule(seconds=st.sampled_from([1.0, LEASE + 1, 31.0]))
    def time_passes(self, seconds: float) -> None:
        """Scheduled rows come due; leases not renewed for longer than LEASE expire."""
        self.now += seconds
        self.run(self.queue.promote_due(now=self.now, actor="scheduler"))
        reaped = self.run(self.queue.reap(now=self.now, limit=100, actor="reaper"))
        for nid, _status in reaped:
            token, _ = self.held.pop(nid)
            self.stale[nid] = token

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ids = sorted(self.rows())
        if not ids:
            return
        nid = data.draw(st.sampled_from(ids))
        with contextlib.suppress(Conflict):
            self.run(self.store.cancel(nid, now=self.now, actor="api"))

    @rule(data=st.data())
    def retry_dead_letter(self, data: st.DataObject) -> None:
        dead = sorted(i for i, r in self.rows().items() if r["status"] == "dead")
        if not dead:
            return
        nid = data.draw(st.sampled_from(dead))
        self.run(self.store.retry_dead(nid, now=self.now, actor="api"))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def rows_obey_the_machine(self) -> None:
        for nid, row in self.rows().items():
            status = Status(row["status"])
            previous = self.seen.get(nid)
            if previous is not None and previous != status.value:
                assert can_transition(Status(previous), status), f"{previous} -> {status}"
                assert Status(previous) not in TERMINAL
            self.seen[nid] = status.value
            assert 0 <= row["attempts"] <= row["max_attempts"]
            leased = row["lease_token"] is not None
            assert leased == (status is Status.SENDING), f"{status} with lease={leased}"
            assert leased == (nid in self.held)


TestStatusMachine = pytest.mark.timeout(300)(StatusMachine.TestCase)
TestStatusMachine.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
