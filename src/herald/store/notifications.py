"""Notifications and their timelines: accepting, reading, cancelling, dead-letter retries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from herald.domain.errors import Conflict, NotFound
from herald.domain.status import CANCELLABLE, Status
from herald.store import jsonrows as j
from herald.store.database import Database, Dialect
from herald.store.records import Accepted, NewNotification
from herald.store.tables import events, notifications

_INSERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", j.TEXT),
    ("channel", j.TEXT),
    ("status", j.TEXT),
    ("priority", j.INTEGER),
    ("recipient", j.TEXT),
    ("recipient_id", j.TEXT),
    ("category", j.TEXT),
    ("payload", j.TEXT),
    ("metadata", j.TEXT),
    ("idempotency_key", j.TEXT),
    ("request_hash", j.TEXT),
    ("max_attempts", j.INTEGER),
    ("send_at", j.REAL),
    ("due_at", j.REAL),
    ("expires_at", j.REAL),
    ("created_at", j.REAL),
    ("fallback", j.TEXT),
    ("fallback_of", j.TEXT),
    ("template", j.TEXT),
    ("template_version", j.INTEGER),
)
_NAMES = ", ".join(name for name, _ in _INSERT_COLUMNS)

# ON CONFLICT names the partial unique index, so a key inserted concurrently by another
# transaction is skipped rather than failing ours; the caller then retries its key check.
_PG_INSERT = sa.text(f"""
    WITH ins AS (
        INSERT INTO notifications ({_NAMES}, attempts, possible_duplicates, updated_at)
        SELECT {_NAMES}, 0, 0, created_at FROM {j.records("rows", _INSERT_COLUMNS)}
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id, status, created_at, fallback_of
    ),
    ev AS (
        INSERT INTO notification_events (notification_id, at, status, actor, detail)
        SELECT id, created_at, status, :actor,
               CASE WHEN fallback_of IS NULL THEN 'accepted'
                    ELSE 'queued as the fallback of ' || fallback_of END
        FROM ins
    )
    SELECT id FROM ins
""")
_PG_WAKE = sa.text("SELECT pg_notify('herald_queue', '')")

# SQLite holds the write lock (BEGIN IMMEDIATE) from the key check to the commit, so no
# other writer can take a key in between: a plain executemany INSERT is enough.
_SQLITE_INSERT = (
    f"INSERT INTO notifications ({_NAMES}, attempts, possible_duplicates, updated_at) "
    f"VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)}, 0, 0, ?)"
)
_OPTIONAL = {"template", "template_version"}  # NotRequired in NewNotification
_required_values = itemgetter(*(name for name, _ in _INSERT_COLUMNS if name not in _OPTIONAL))


def _sqlite_values(row: NewNotification) -> tuple[object, ...]:
    """Every column, then created_at again for updated_at (the optional ones last)."""
    return (
        *_required_values(row),
        row.get("template"),
        row.get("template_version"),
        row["created_at"],
    )


_SQLITE_INSERT_EVENT = (
    "INSERT INTO notification_events (notification_id, at, status, actor, detail) "
    "VALUES (?, ?, ?, ?, ?)"
)


class _LostRace(Exception):
    """Another process inserted an idempotency key between our check and our insert."""


@dataclass(frozen=True, slots=True)
class KeyConflict:
    """A request whose idempotency key was already used with a different body."""

    index: int  # position of the offending notification within its request
    key: str


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- accepting -------------------------------------------------------------------------

    async def accept(
        self, requests: Sequence[Sequence[NewNotification]], *, actor: str
    ) -> list[list[Accepted] | KeyConflict]:
        """Insert several requests' rows in one transaction (group commit).

        Each request is all-or-nothing: a key conflict rejects that request only. Rows whose
        idempotency key was already used with the same body are replayed, not inserted.
        """
        dialect = self.db.dialect
        for _ in range(5):
            try:
                return await self.db.run(lambda conn: _accept(conn, dialect, requests, actor))
            except _LostRace:
                continue
        raise RuntimeError("idempotency keys kept colliding with concurrent inserts")

    # -- reading ---------------------------------------------------------------------------

    async def get(self, notification_id: str) -> tuple[RowMapping, list[RowMapping]]:
        def read(conn: sa.Connection) -> tuple[RowMapping | None, list[RowMapping]]:
            row = (
                conn.execute(sa.select(notifications).where(notifications.c.id == notification_id))
                .mappings()
                .first()
            )
            timeline = conn.execute(
                sa.select(events)
                .where(events.c.notification_id == notification_id)
                .order_by(events.c.id)
            ).mappings()
            return row, list(timeline)

        row, timeline = await self.db.run(read, readonly=True)
        if row is None:
            raise NotFound(f"no notification {notification_id}")
        return row, timeline

    async def list(
        self,
        *,
        status: Sequence[str] = (),
        channel: str | None = None,
        recipient: str | None = None,
        recipient_id: str | None = None,
        category: str | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[RowMapping]:
        """Newest first; ``before_id`` is the cursor (ids are time-ordered)."""
        query = sa.select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        if status:
            query = query.where(notifications.c.status.in_(list(status)))
        if channel:
            query = query.where(notifications.c.channel == channel)
        if recipient:
            query = query.where(notifications.c.recipient == recipient)
        if recipient_id:
            query = query.where(notifications.c.recipient_id == recipient_id)
        if category:
            query = query.where(notifications.c.category == category)
        if before_id:
            query = query.where(notifications.c.id < before_id)
        return await self.db.run(lambda conn: list(conn.execute(query).mappings()), readonly=True)

    async def statuses(self, ids: Sequence[str]) -> dict[str, str]:
        query = sa.select(notifications.c.id, notifications.c.status).where(
            notifications.c.id.in_(list(ids))
        )
        rows = await self.db.run(lambda conn: conn.execute(query).all(), readonly=True)
        return {nid: status for nid, status in rows}

    async def count_by_status(self, statuses: Sequence[str]) -> dict[str, int]:
        """Counts for the given statuses (index-backed; meant for non-terminal ones)."""
        query = (
            sa.select(notifications.c.status, sa.func.count())
            .where(notifications.c.status.in_(list(statuses)))
            .group_by(notifications.c.status)
        )
        rows = await self.db.run(lambda conn: conn.execute(query).all(), readonly=True)
        counts = {status: int(n) for status, n in rows}
        return {status: counts.get(status, 0) for status in statuses}

    # -- changing state on request ---------------------------------------------------------

    async def cancel(self, notification_id: str, *, now: float, actor: str) -> None:
        await self._transition(
            notification_id,
            allowed=CANCELLABLE,
            values={"status": Status.CANCELLED.value, "updated_at": now},
            event=(now, Status.CANCELLED, actor, "cancelled on request"),
            refusal="only a notification that has not been sent yet can be cancelled",
            refusal_code="not_cancellable",
        )

    async def retry_dead(self, notification_id: str, *, now: float, actor: str) -> None:
        """Move a dead letter back to the queue with a fresh set of attempts."""
        await self._transition(
            notification_id,
            allowed=frozenset({Status.DEAD}),
            values={
                "status": Status.QUEUED.value,
                "attempts": 0,
                "send_at": now,
                "due_at": now,
                "updated_at": now,
            },
            event=(now, Status.QUEUED, actor, "retried from the dead-letter queue"),
            refusal="only a dead notification can be retried",
            refusal_code="not_dead",
        )

    async def _transition(
        self,
        notification_id: str,
        *,
        allowed: frozenset[Status],
        values: dict[str, Any],
        event: tuple[float, Status, str, str],
        refusal: str,
        refusal_code: str,
    ) -> None:
        at, status, actor, detail = event
        wake = self.db.dialect == "postgresql" and status is Status.QUEUED

        def change(conn: sa.Connection) -> str | None:
            """None when changed, else the current status ("" if there is no such row)."""
            changed = conn.execute(
                notifications.update()
                .where(notifications.c.id == notification_id)
                .where(notifications.c.status.in_([s.value for s in allowed]))
                .values(**values)
                .returning(notifications.c.id)
            ).first()
            if changed is None:
                current = conn.execute(
                    sa.select(notifications.c.status).where(notifications.c.id == notification_id)
                ).scalar()
                return current or ""
            conn.execute(
                events.insert().values(
                    notification_id=notification_id,
                    at=at,
                    status=status.value,
                    actor=actor,
                    detail=detail,
                )
            )
            if wake:
                conn.execute(_PG_WAKE)
            return None

        current = await self.db.run(change)
        if current == "":
            raise NotFound(f"no notification {notification_id}")
        if current is not None:
            raise Conflict(f"{refusal}; this one is {current}", code=refusal_code)


def _accept(
    conn: sa.Connection,
    dialect: Dialect,
    requests: Sequence[Sequence[NewNotification]],
    actor: str,
) -> list[list[Accepted] | KeyConflict]:
    keys = [r["idempotency_key"] for rows in requests for r in rows if r["idempotency_key"]]
    known = _find_keys(conn, keys) if keys else {}
    results: list[list[Accepted] | KeyConflict] = []
    to_insert: list[NewNotification] = []
    for rows in requests:
        outcome, inserting, claimed = _resolve_keys(rows, known)
        results.append(outcome)
        if not isinstance(outcome, KeyConflict):
            to_insert.extend(inserting)
            known.update(claimed)
    if to_insert:
        inserted = insert_rows(conn, dialect, to_insert, actor)
        if len(inserted) != len(to_insert):
            raise _LostRace
    return results


def _find_keys(conn: sa.Connection, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    rows = conn.execute(
        sa.select(
            notifications.c.idempotency_key, notifications.c.id, notifications.c.request_hash
        ).where(notifications.c.idempotency_key.in_(sorted(set(keys))))
    )
    return {key: (nid, digest) for key, nid, digest in rows.all()}


def _resolve_keys(
    rows: Sequence[NewNotification], known: dict[str, tuple[str, str | None]]
) -> tuple[list[Accepted] | KeyConflict, list[NewNotification], dict[str, tuple[str, str | None]]]:
    """Decide insert / replay / conflict for one request's rows against the keys seen so far."""
    accepted: list[Accepted] = []
    inserting: list[NewNotification] = []
    claimed: dict[str, tuple[str, str | None]] = {}
    for index, row in enumerate(rows):
        key = row["idempotency_key"]
        previous = None if key is None else claimed.get(key) or known.get(key)
        if key is None or previous is None:
            inserting.append(row)
            accepted.append(Accepted(row["id"], replayed=False))
            if key is not None:
                claimed[key] = (row["id"], row["request_hash"])
        elif previous[1] == row["request_hash"]:
            accepted.append(Accepted(previous[0], replayed=True))
        else:
            return KeyConflict(index, key), [], {}
    return accepted, inserting, claimed


def insert_rows(
    conn: sa.Connection, dialect: Dialect, rows: list[NewNotification], actor: str
) -> list[str]:
    if dialect == "postgresql":
        params = {"rows": j.dumps(rows), "actor": actor}
        inserted = [r[0] for r in conn.execute(_PG_INSERT, params).all()]
        if inserted:
            conn.execute(_PG_WAKE)
        return inserted
    conn.exec_driver_sql(_SQLITE_INSERT, [_sqlite_values(row) for row in rows])
    conn.exec_driver_sql(
        _SQLITE_INSERT_EVENT,
        [
            (row["id"], row["created_at"], row["status"], actor, _accepted_detail(row))
            for row in rows
        ],
    )
    return [row["id"] for row in rows]


def _accepted_detail(row: NewNotification) -> str:
    if row["fallback_of"] is None:
        return "accepted"
    return f"queued as the fallback of {row['fallback_of']}"
