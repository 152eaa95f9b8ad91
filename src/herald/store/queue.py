"""The queue operations on the notifications table: claim, complete, renew, reap.

Every completion is fenced by the lease token written at claim time: a worker whose lease
expired (and whose row another worker re-claimed) matches no row and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import itemgetter

import orjson
import sqlalchemy as sa

from herald.domain.ids import new_id
from herald.store import jsonrows as j
from herald.store.database import Database, Dialect, insert_ignoring_duplicates
from herald.store.notifications import insert_rows
from herald.store.records import (
    Claimed,
    GoneUrl,
    MessagePart,
    NewCapture,
    NewEvent,
    NewNotification,
    Outcome,
)
from herald.store.tables import captured, events, message_parts, notifications
from herald.store.webhooks import record_gone

_CLAIMED_COLUMNS = (
    "id, channel, recipient, payload, priority, attempts, max_attempts, send_at, due_at, "
    "expires_at, created_at, idempotency_key, lease_token, category"
)
_CLAIM_SET = (
    "status = 'sending', attempts = attempts + 1, lease_token = :token, "
    "lease_expires_at = :until, updated_at = :now"
)
_DUE = """
    SELECT id FROM notifications{hint}
    WHERE status = 'queued' AND due_at <= :now
    ORDER BY priority DESC, due_at
    LIMIT :limit
"""

_PG_CLAIM = sa.text(f"""
    WITH due AS ({_DUE.format(hint="")} FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE notifications AS n SET {_CLAIM_SET}
        FROM due WHERE n.id = due.id
        RETURNING {", ".join("n." + c.strip() for c in _CLAIMED_COLUMNS.split(","))}
    ),
    ev AS (
        INSERT INTO notification_events (notification_id, at, status, actor, detail)
        SELECT id, :now, 'sending', :actor, 'attempt ' || attempts FROM claimed
    )
    SELECT {_CLAIMED_COLUMNS} FROM claimed
""")

# INDEXED BY: without table statistics SQLite may pick the status index and sort every
# queued row on each claim; the partial index yields rows already in claim order.
_SQLITE_CLAIM = sa.text(f"""
    UPDATE notifications SET {_CLAIM_SET}
    WHERE id IN ({_DUE.format(hint=" INDEXED BY ix_notifications_ready")})
    RETURNING {_CLAIMED_COLUMNS}
""")

_SQLITE_CLAIM_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, detail)
    SELECT id, :now, 'sending', :actor, 'attempt ' || attempts FROM notifications
    WHERE id IN (SELECT value FROM {j.sqlite_ids("ids")})
""")

_OUTCOME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", j.TEXT),
    ("token", j.BIGINT),
    ("status", j.TEXT),
    ("at", j.REAL),
    ("due_at", j.REAL),
    ("provider", j.TEXT),
    ("provider_message_id", j.TEXT),
    ("last_error", j.TEXT),
    ("results", j.TEXT),
    ("sent_at", j.REAL),
    ("dup", j.INTEGER),
    ("attempts_delta", j.INTEGER),
)
_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", j.INTEGER),
    ("nid", j.TEXT),
    ("at", j.REAL),
    ("status", j.TEXT),
    ("provider", j.TEXT),
    ("detail", j.TEXT),
)

_PG_COMPLETE = sa.text(f"""
    WITH done AS (
        UPDATE notifications AS n SET
            status = v.status,
            due_at = COALESCE(v.due_at, n.due_at),
            provider = COALESCE(v.provider, n.provider),
            provider_message_id = COALESCE(v.provider_message_id, n.provider_message_id),
            last_error = COALESCE(v.last_error, n.last_error),
            results = COALESCE(v.results, n.results),
            sent_at = COALESCE(v.sent_at, n.sent_at),
            possible_duplicates = n.possible_duplicates + v.dup,
            attempts = n.attempts + v.attempts_delta,
            lease_token = NULL,
            lease_expires_at = NULL,
            updated_at = v.at
        FROM {j.records("outcomes", _OUTCOME_COLUMNS)}
        WHERE n.id = v.id AND n.lease_token = v.token AND n.status = 'sending'
        RETURNING n.id
    ),
    written AS (
        INSERT INTO notification_events (notification_id, at, status, actor, provider, detail)
        SELECT e.nid, e.at, e.status, :actor, e.provider, e.detail
        FROM {j.records("events", _EVENT_COLUMNS, alias="e")}
        JOIN done ON done.id = e.nid
        ORDER BY e.seq
    )
    SELECT id FROM done
""")

# SQLite: find the rows whose lease still matches, then update them by primary key with
# executemany (one prepared statement, run in C). The write lock (BEGIN IMMEDIATE) is held
# throughout, so nothing changes between the check and the update.
_SQLITE_LEASED = sa.text(f"""
    SELECT id, lease_token FROM notifications
    WHERE id IN (SELECT value FROM {j.sqlite_ids("ids")}) AND status = 'sending'
""")
_SQLITE_COMPLETE = """
    UPDATE notifications SET
        status = ?,
        due_at = COALESCE(?, due_at),
        provider = COALESCE(?, provider),
        provider_message_id = COALESCE(?, provider_message_id),
        last_error = COALESCE(?, last_error),
        results = COALESCE(?, results),
        sent_at = COALESCE(?, sent_at),
        possible_duplicates = possible_duplicates + ?,
        attempts = attempts + ?,
        lease_token = NULL,
        lease_expires_at = NULL,
        updated_at = ?
    WHERE id = ?
"""
_sqlite_outcome = itemgetter(
    "status",
    "due_at",
    "provider",
    "provider_message_id",
    "last_error",
    "results",
    "sent_at",
    "dup",
    "attempts_delta",
    "at",
    "id",
)
_SQLITE_EVENT = (
    "INSERT INTO notification_events (notification_id, at, status, actor, provider, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

_REAP_SET = """
    status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'retrying' END,
    due_at = :now, lease_token = NULL, lease_expires_at = NULL, updated_at = :now,
    possible_duplicates = possible_duplicates + 1, last_error = :reason
"""
_EXPIRED_LEASES = """
    SELECT id FROM notifications
    WHERE status = 'sending' AND lease_expires_at < :now
    ORDER BY lease_expires_at LIMIT :limit
"""

_PG_REAP = sa.text(f"""
    WITH expired AS ({_EXPIRED_LEASES} FOR UPDATE SKIP LOCKED),
    reaped AS (
        UPDATE notifications SET {_REAP_SET}
        WHERE id IN (SELECT id FROM expired)
        RETURNING id, status
    ),
    ev AS (
        INSERT INTO notification_events (notification_id, at, status, actor, detail)
        SELECT id, :now, status, :actor, :reason FROM reaped
    )
    SELECT id, status FROM reaped
""")

_SQLITE_REAP = sa.text(f"""
    UPDATE notifications SET {_REAP_SET}
    WHERE id IN ({_EXPIRED_LEASES})
    RETURNING id, status
""")

_WAITING_DUE = """
    SELECT id, status FROM notifications{hint}
    WHERE status IN ('scheduled', 'retrying') AND due_at <= :now
    ORDER BY due_at LIMIT :limit
"""
_QUEUED_DETAIL = "CASE WHEN {was} = 'scheduled' THEN 'send_at reached' ELSE 'retry due' END"

_PG_PROMOTE = sa.text(f"""
    WITH due AS ({_WAITING_DUE.format(hint="")} FOR UPDATE SKIP LOCKED),
    promoted AS (
        UPDATE notifications AS n SET status = 'queued', updated_at = :now
        FROM due WHERE n.id = due.id
        RETURNING n.id, due.status AS was
    ),
    ev AS (
        INSERT INTO notification_events (notification_id, at, status, actor, detail)
        SELECT id, :now, 'queued', :actor, {_QUEUED_DETAIL.format(was="was")} FROM promoted
    )
    SELECT id FROM promoted
""")

# SQLite: pick the rows, write their events (reading the old status), then queue them.
_SQLITE_WAITING_DUE = sa.text(_WAITING_DUE.format(hint=" INDEXED BY ix_notifications_waiting"))
_SQLITE_PROMOTE_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, detail)
    SELECT id, :now, 'queued', :actor, {_QUEUED_DETAIL.format(was="status")} FROM notifications
    WHERE id IN (SELECT value FROM {j.sqlite_ids("ids")})
""")
_SQLITE_PROMOTE = sa.text(f"""
    UPDATE notifications SET status = 'queued', updated_at = :now
    WHERE id IN (SELECT value FROM {j.sqlite_ids("ids")})
""")


def _sqlite_complete(
    conn: sa.Connection, outcomes: list[Outcome], timeline: list[NewEvent], actor: str
) -> set[str]:
    ids = j.dumps(o["id"] for o in outcomes)
    rows = conn.execute(_SQLITE_LEASED, {"ids": ids}).all()
    leased: dict[str, int] = {nid: token for nid, token in rows}
    live = [o for o in outcomes if leased.get(o["id"]) == o["token"]]
    if not live:
        return set()
    conn.exec_driver_sql(_SQLITE_COMPLETE, [_sqlite_outcome(o) for o in live])
    applied = {o["id"] for o in live}
    written = [
        (e["nid"], e["at"], e["status"], actor, e["provider"], e["detail"])
        for e in timeline
        if e["nid"] in applied
    ]
    if written:  # an empty list would run the statement once, with no parameters
        conn.exec_driver_sql(_SQLITE_EVENT, written)
    return applied


_ENDED = frozenset({"dead", "failed"})


def spawn_fallbacks(conn: sa.Connection, dialect: Dialect, ended: list[str], actor: str) -> None:
    """Queue the next fallback of each notification that just died or failed (prepared at
    accept time), linked both ways: ``fallback_of`` and an event on each timeline."""
    n = notifications.c
    rows = conn.execute(
        sa.select(
            n.id,
            n.status,
            n.priority,
            n.recipient_id,
            n.category,
            n.metadata,
            n.max_attempts,
            n.expires_at,
            n.fallback,
        ).where(n.id.in_(ended), n.fallback.is_not(None))
    ).all()
    now = time.time()
    spawned: list[NewNotification] = []
    for row in rows:
        first, *rest = orjson.loads(row.fallback)
        spawned.append(
            {
                "id": new_id(now),
                "channel": first["channel"],
                "status": "queued",
                "priority": row.priority,
                "recipient": first["recipient"],
                "recipient_id": row.recipient_id,
                "category": row.category,
                "payload": orjson.dumps(first["payload"]).decode(),
                "metadata": row.metadata,
                "idempotency_key": None,
                "request_hash": None,
                "max_attempts": row.max_attempts,
                "send_at": now,
                "due_at": now,
                "expires_at": row.expires_at,
                "created_at": now,
                "fallback": orjson.dumps(rest).decode() if rest else None,
                "fallback_of": row.id,
            }
        )
    if not spawned:
        return
    insert_rows(conn, dialect, spawned, actor)
    # A notification falls back once; retrying it from the dead letters does not again.
    conn.execute(notifications.update().where(n.id.in_([r.id for r in rows])).values(fallback=None))
    conn.execute(
        events.insert(),
        [
            {
                "notification_id": new["fallback_of"],
                "at": now,
                "status": old.status,
                "actor": actor,
                "detail": f"falling back to {new['channel']}: {new['id']}",
            }
            for old, new in zip(rows, spawned, strict=True)
        ],
    )


LEASE_EXPIRED = "lease expired: the worker holding this notification stopped responding"


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # A single statement on PostgreSQL needs no BEGIN/COMMIT round trips.
        self._single = self.db.dialect == "postgresql"

    async def claim(
        self, *, limit: int, now: float, lease_seconds: float, token: int, actor: str
    ) -> list[Claimed]:
        """Take up to ``limit`` queued rows, highest priority first, under lease ``token``."""
        params = {
            "limit": limit,
            "now": now,
            "until": now + lease_seconds,
            "token": token,
            "actor": actor,
        }

        def claim(conn: sa.Connection) -> list[Claimed]:
            if self.db.dialect == "postgresql":
                return [Claimed(*row) for row in conn.execute(_PG_CLAIM, params)]
            rows = [Claimed(*row) for row in conn.execute(_SQLITE_CLAIM, params)]
            if rows:
                conn.execute(
                    _SQLITE_CLAIM_EVENTS,
                    {"ids": j.dumps(r.id for r in rows), "now": now, "actor": actor},
                )
            return rows

        claimed = await self.db.run(claim, autocommit=self._single, durable=False)
        claimed.sort(key=lambda c: (-c.priority, c.due_at))
        return claimed

    async def complete(
        self,
        outcomes: list[Outcome],
        timeline: list[NewEvent],
        *,
        actor: str,
        captures: Sequence[NewCapture] = (),
        gone: Sequence[GoneUrl] = (),
        parts: Sequence[MessagePart] = (),
    ) -> set[str]:
        """Apply outcomes still covered by their lease; returns the ids applied.

        Events (and captured copies) are written only for applied outcomes, so a fenced-out
        worker leaves no trace on a timeline that another worker now owns. ``gone``: webhook
        URLs that answered 410, and ``parts``: the part ids of multipart sends, recorded in
        the same transaction.
        """
        if not outcomes:
            return set()

        def complete(conn: sa.Connection) -> set[str]:
            if self.db.dialect == "postgresql":
                params = {
                    "outcomes": j.dumps(outcomes),
                    "events": j.dumps({**e, "seq": n} for n, e in enumerate(timeline)),
                    "actor": actor,
                }
                applied = {r[0] for r in conn.execute(_PG_COMPLETE, params)}
            else:
                applied = _sqlite_complete(conn, outcomes, timeline, actor)
            kept = [c for c in captures if c["notification_id"] in applied]
            if kept:
                conn.execute(captured.insert(), kept)
            gone_now = [g for g in gone if g["notification_id"] in applied]
            if gone_now:
                record_gone(conn, self.db.dialect, gone_now)
            sent_parts = [p for p in parts if p["notification_id"] in applied]
            if sent_parts:
                insert = insert_ignoring_duplicates(self.db.dialect, message_parts)
                conn.execute(insert, sent_parts)
            ended = [o["id"] for o in outcomes if o["status"] in _ENDED and o["id"] in applied]
            if ended:
                spawn_fallbacks(conn, self.db.dialect, ended, actor)
            return applied

        single = (
            self._single
            and not captures
            and not gone
            and not parts
            and not any(o["status"] in _ENDED for o in outcomes)
        )
        return await self.db.run(complete, autocommit=single, durable=False)

    async def renew(self, tokens: list[int], *, until: float) -> int:
        """Extend the leases of rows still held under ``tokens``."""
        if not tokens:
            return 0
        statement = (
            notifications.update()
            .where(notifications.c.status == "sending")
            .where(notifications.c.lease_token.in_(tokens))
            .values(lease_expires_at=until)
        )
        return await self.db.run(
            lambda conn: int(conn.execute(statement).rowcount),
            autocommit=self._single,
            durable=False,
        )

    async def reap(self, *, now: float, limit: int, actor: str) -> list[tuple[str, str]]:
        """Return rows whose lease expired to the queue (or to the dead letters)."""
        params = {"now": now, "limit": limit, "actor": actor, "reason": LEASE_EXPIRED}

        def reap(conn: sa.Connection) -> list[tuple[str, str]]:
            if self.db.dialect == "postgresql":
                return [(r[0], r[1]) for r in conn.execute(_PG_REAP, params)]
            rows = [(r[0], r[1]) for r in conn.execute(_SQLITE_REAP, params)]
            if rows:
                conn.exec_driver_sql(
                    _SQLITE_EVENT,
                    [(nid, now, status, actor, None, LEASE_EXPIRED) for nid, status in rows],
                )
            return rows

        return await self.db.run(reap, autocommit=self._single, durable=False)

    async def promote_due(self, *, now: float, actor: str, limit: int = 5000) -> int:
        """Queue scheduled rows whose ``send_at`` came and retrying rows whose retry is due."""
        params = {"now": now, "limit": limit, "actor": actor}

        def promote(conn: sa.Connection) -> int:
            if self.db.dialect == "postgresql":
                return len(conn.execute(_PG_PROMOTE, params).all())
            ids = [r[0] for r in conn.execute(_SQLITE_WAITING_DUE, params)]
            if ids:
                listed = {"ids": j.dumps(ids), "now": now, "actor": actor}
                conn.execute(_SQLITE_PROMOTE_EVENTS, listed)
                conn.execute(_SQLITE_PROMOTE, listed)
            return len(ids)

        return await self.db.run(promote, autocommit=self._single, durable=False)
