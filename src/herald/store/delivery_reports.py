"""Applying providers' delivery reports to notifications, once each."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from herald.domain.delivery_reports import DeliveryReport, ReportedState
from herald.domain.errors import DeliveryError
from herald.domain.status import Status
from herald.store.database import Database, Dialect
from herald.store.queue import spawn_fallbacks
from herald.store.tables import events, notifications

_ACTOR = "provider-callback"
_MOVES = {ReportedState.DELIVERED: Status.DELIVERED, ReportedState.FAILED: Status.FAILED}


class DeliveryReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, report: DeliveryReport, *, now: float) -> str | None:
        """Record ``report`` on its notification's timeline and move a ``sent`` one to
        ``delivered`` or ``failed`` (queueing its channel fallback, if it has one); the
        notification id, or None if no notification has this provider message id. A
        replayed report changes nothing."""
        dialect = self.db.dialect
        return await self.db.run(lambda conn: _apply(conn, dialect, report, now))


def _apply(conn: sa.Connection, dialect: Dialect, report: DeliveryReport, now: float) -> str | None:
    n = notifications.c
    found = conn.execute(
        sa.select(n.id, n.status, n.recipient)
        .where(n.provider_message_id == report.provider_message_id)
        .where(n.provider == report.provider)
        # Concurrent replays of one report wait here, then see each other's event.
        .with_for_update()
    ).first()
    if found is None:
        return None
    nid, current, recipient = found
    detail = report.detail
    replayed = conn.execute(
        sa.select(events.c.id)
        .where(events.c.notification_id == nid)
        .where(events.c.actor == _ACTOR)
        .where(events.c.detail == detail)
        .limit(1)
    ).first()
    if replayed is not None:
        return str(nid)
    status = Status(current)
    target = _MOVES.get(report.state)
    if target is not None and status is Status.SENT:
        values: dict[str, object] = {"status": target.value, "updated_at": now}
        error = report.error
        if error is not None:
            values["last_error"] = error.message + (f" [{error.code}]" if error.code else "")
            values["results"] = _results(recipient, error, suppress=report.suppress)
        conn.execute(notifications.update().where(n.id == nid).values(**values))
        status = target
    conn.execute(
        events.insert().values(
            notification_id=nid,
            at=now,
            status=status.value,
            actor=_ACTOR,
            provider=report.provider,
            detail=detail,
        )
    )
    if status is Status.FAILED and current != status.value:
        spawn_fallbacks(conn, dialect, [nid], _ACTOR)
    return str(nid)


def _results(recipient: str, error: DeliveryError, *, suppress: bool) -> str:
    """The same per-recipient shape the worker writes, so suppression reads both alike."""
    row = {"address": recipient, "code": error.code, "message": error.message, "suppress": suppress}
    return orjson.dumps([row]).decode()
