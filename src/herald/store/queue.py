"""The queue operations on the notifications table: claim, complete, renew, reap.

Every completion is fenced by the lease token written at claim time: a worker whose lease
expired (and whose row another worker re-claimed) matches no row and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.store import jsonrows as j
from herald.store.database import Database
from herald.store.records import Claimed, NewCapture, NewEvent, Outcome
from herald.store.tables import captured, notifications

_CLAIMED_COLUMNS = (
    "id, channel, payload, priority, attempts, max_attempts, send_at, due_at, expires_at, "
    "created_at, idempotency_key, lease_token"
)
_CLAIM_SET = (
    "status = 'sending', attempts = attempts + 1, lease_token = :token, "
    "lease_expires_at = :until, updated_at = :now"
)
_DUE = """
    SELECT id FROM notifications{hint}
    WHERE status IN ('queued', 'retrying') AND due_at <= :now
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
    WHERE id IN ({_DUE.format(hint=" INDEXED BY ix_notifications_due")})
    RETURNING {_CLAIMED_COLUMNS}
""")

_SQLITE_CLAIM_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, detail)
    SELECT id, :now, 'sending', :actor, 'attempt ' || attempts FROM notifications
    WHERE id IN (SELECT value FROM {j.source("sqlite", "ids")})
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
    ("nid", j.TEXT),
    ("at", j.REAL),
    ("status", j.TEXT),
    ("provider", j.TEXT),
    ("detail", j.TEXT),
)


def _outcome_set(table: str) -> str:
    return f"""
        status = v.status,
        due_at = COALESCE(v.due_at, {table}.due_at),
        provider = COALESCE(v.provider, {table}.provider),
        provider_message_id = COALESCE(v.provider_message_id, {table}.provider_message_id),
        last_error = COALESCE(v.last_error, {table}.last_error),
        results = COALESCE(v.results, {table}.results),
        sent_at = COALESCE(v.sent_at, {table}.sent_at),
        possible_duplicates = {table}.possible_duplicates + v.dup,
        attempts = {table}.attempts + v.attempts_delta,
        lease_token = NULL,
        lease_expires_at = NULL,
        updated_at = v.at
    """


_FENCE = "{t}.id = v.id AND {t}.lease_token = v.token AND {t}.status = 'sending'"

_PG_COMPLETE = sa.text(f"""
    WITH v AS (SELECT {j.fields(_OUTCOME_COLUMNS)} FROM {j.source("postgresql", "outcomes")}),
    done AS (
        UPDATE notifications AS n SET {_outcome_set("n")}
        FROM v WHERE {_FENCE.format(t="n")}
        RETURNING n.id
    ),
    ev AS (
        SELECT {j.fields(_EVENT_COLUMNS)}, e.ord
        FROM json_array_elements(CAST(:events AS json)) WITH ORDINALITY AS e(value, ord)
    ),
    written AS (
        INSERT INTO notification_events (notification_id, at, status, actor, provider, detail)
        SELECT ev.nid, ev.at, ev.status, :actor, ev.provider, ev.detail
        FROM ev JOIN done ON done.id = ev.nid ORDER BY ev.ord
    )
    SELECT id FROM done
""")

# SQLite: find the rows whose lease still matches, then update them by primary key with
# executemany (one prepared statement, run in C). A join against json_each would let the
# planner scan every "sending" row per outcome. The write lock (BEGIN IMMEDIATE) is held
# throughout, so nothing changes between the check and the update.
_SQLITE_LEASED = sa.text(f"""
    SELECT id, lease_token FROM notifications
    WHERE id IN (SELECT value FROM {j.source("sqlite", "ids")}) AND status = 'sending'
""")

_SQLITE_COMPLETE = sa.text("""
    UPDATE notifications SET
        status = :status,
        due_at = COALESCE(:due_at, due_at),
        provider = COALESCE(:provider, provider),
        provider_message_id = COALESCE(:provider_message_id, provider_message_id),
        last_error = COALESCE(:last_error, last_error),
        results = COALESCE(:results, results),
        sent_at = COALESCE(:sent_at, sent_at),
        possible_duplicates = possible_duplicates + :dup,
        attempts = attempts + :attempts_delta,
        lease_token = NULL,
        lease_expires_at = NULL,
        updated_at = :at
    WHERE id = :id
""")

_SQLITE_COMPLETE_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, provider, detail)
    SELECT {", ".join(j.field(name, t) for name, t in _EVENT_COLUMNS[:2])},
           {j.field("status")}, :actor, {j.field("provider")}, {j.field("detail")}
    FROM {j.source("sqlite", "events")}
    WHERE {j.field("nid")} IN (SELECT value FROM json_each(:applied))
    ORDER BY e.key
""")

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

_SQLITE_REAP_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, detail)
    SELECT {j.field("id")}, :now, {j.field("status")}, :actor, :reason
    FROM {j.source("sqlite", "rows")}
""")

_SCHEDULED_DUE = """
    SELECT id FROM notifications WHERE status = 'scheduled' AND due_at <= :now
    ORDER BY due_at LIMIT :limit
"""
_PROMOTED = "'queued', :actor, 'send_at reached'"

_PG_PROMOTE = sa.text(f"""
    WITH due AS ({_SCHEDULED_DUE} FOR UPDATE SKIP LOCKED),
    promoted AS (
        UPDATE notifications SET status = 'queued', updated_at = :now
        WHERE id IN (SELECT id FROM due) RETURNING id
    ),
    ev AS (
        INSERT INTO notification_events (notification_id, at, status, actor, detail)
        SELECT id, :now, {_PROMOTED} FROM promoted
    )
    SELECT id FROM promoted
""")

_SQLITE_PROMOTE = sa.text(f"""
    UPDATE notifications SET status = 'queued', updated_at = :now
    WHERE id IN ({_SCHEDULED_DUE}) RETURNING id
""")

_SQLITE_PROMOTE_EVENTS = sa.text(f"""
    INSERT INTO notification_events (notification_id, at, status, actor, detail)
    SELECT e.value, :now, {_PROMOTED} FROM {j.source("sqlite", "ids")}
""")


async def _sqlite_complete(
    conn: AsyncConnection, outcomes: list[Outcome], events: str, actor: str
) -> set[str]:
    ids = j.dumps(o["id"] for o in outcomes)
    rows = (await conn.execute(_SQLITE_LEASED, {"ids": ids})).all()
    leased: dict[str, int] = {nid: token for nid, token in rows}
    live = [o for o in outcomes if leased.get(o["id"]) == o["token"]]
    if not live:
        return set()
    await conn.execute(_SQLITE_COMPLETE, live)
    applied = {o["id"] for o in live}
    await conn.execute(
        _SQLITE_COMPLETE_EVENTS, {"events": events, "applied": j.dumps(applied), "actor": actor}
    )
    return applied


LEASE_EXPIRED = "lease expired: the worker holding this notification stopped responding"


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, *, limit: int, now: float, lease_seconds: float, token: int, actor: str
    ) -> list[Claimed]:
        """Take up to ``limit`` due rows, highest priority first, under lease ``token``."""
        params = {
            "limit": limit,
            "now": now,
            "until": now + lease_seconds,
            "token": token,
            "actor": actor,
        }
        async with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                rows = (await conn.execute(_PG_CLAIM, params)).all()
            else:
                rows = (await conn.execute(_SQLITE_CLAIM, params)).all()
                if rows:
                    await conn.execute(
                        _SQLITE_CLAIM_EVENTS,
                        {"ids": j.dumps(r[0] for r in rows), "now": now, "actor": actor},
                    )
        claimed = [Claimed(*row) for row in rows]
        claimed.sort(key=lambda c: (-c.priority, c.due_at))
        return claimed

    async def complete(
        self,
        outcomes: list[Outcome],
        timeline: list[NewEvent],
        *,
        actor: str,
        captures: Sequence[NewCapture] = (),
    ) -> set[str]:
        """Apply outcomes still covered by their lease; returns the ids applied.

        Events (and captured copies) are written only for applied outcomes, so a fenced-out
        worker leaves no trace on a timeline that another worker now owns.
        """
        if not outcomes:
            return set()
        params = {"outcomes": j.dumps(outcomes), "events": j.dumps(timeline), "actor": actor}
        async with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                applied = {r[0] for r in (await conn.execute(_PG_COMPLETE, params)).all()}
            else:
                applied = await _sqlite_complete(conn, outcomes, params["events"], actor)
            kept = [c for c in captures if c["notification_id"] in applied]
            if kept:
                await conn.execute(captured.insert(), kept)
        return applied

    async def renew(self, tokens: list[int], *, until: float) -> int:
        """Extend the leases of rows still held under ``tokens``."""
        if not tokens:
            return 0
        async with self.db.write() as conn:
            result = await conn.execute(
                notifications.update()
                .where(notifications.c.status == "sending")
                .where(notifications.c.lease_token.in_(tokens))
                .values(lease_expires_at=until)
            )
        return int(result.rowcount)

    async def reap(self, *, now: float, limit: int, actor: str) -> list[tuple[str, str]]:
        """Return rows whose lease expired to the queue (or to the dead letters)."""
        params = {"now": now, "limit": limit, "actor": actor, "reason": LEASE_EXPIRED}
        async with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                return [(r[0], r[1]) for r in (await conn.execute(_PG_REAP, params)).all()]
            rows = [(r[0], r[1]) for r in (await conn.execute(_SQLITE_REAP, params)).all()]
            if rows:
                await conn.execute(
                    _SQLITE_REAP_EVENTS,
                    {
                        "rows": j.dumps({"id": i, "status": s} for i, s in rows),
                        "now": now,
                        "actor": actor,
                        "reason": LEASE_EXPIRED,
                    },
                )
        return rows

    async def promote_scheduled(self, *, now: float, actor: str, limit: int = 5000) -> int:
        """Queue scheduled rows whose ``send_at`` has come."""
        params = {"now": now, "limit": limit, "actor": actor}
        async with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                return len((await conn.execute(_PG_PROMOTE, params)).all())
            ids = [r[0] for r in (await conn.execute(_SQLITE_PROMOTE, params)).all()]
            if ids:
                await conn.execute(
                    _SQLITE_PROMOTE_EVENTS, {"ids": j.dumps(ids), "now": now, "actor": actor}
                )
        return len(ids)
