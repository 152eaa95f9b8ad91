"""Applying providers' delivery reports to notifications, once each and in arrival order.

A provider may report on a message before Herald has recorded sending it (the worker writes
outcomes in batches, and a callback can beat the write by milliseconds). Such a report is
parked in ``pending_delivery_reports``; the next report on the same message, or the
worker's periodic :meth:`DeliveryReportStore.sweep`, applies it once the message is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import orjson
import sqlalchemy as sa

from herald.domain.delivery_reports import DeliveryReport, ReportedState, classified, describe
from herald.domain.errors import DeliveryError
from herald.domain.status import Status
from herald.store.database import Database, Dialect
from herald.store.queue import spawn_fallbacks
from herald.store.tables import events, notifications, pending_delivery_reports

_ACTOR = "provider-callback"
_MOVES = {ReportedState.DELIVERED: Status.DELIVERED, ReportedState.FAILED: Status.FAILED}

_n = notifications.c
_p = pending_delivery_reports.c

#: Parked reports whose message is now known, one row per message, oldest report first.
_MATCHED = (
    sa.select(_p.provider, _p.provider_message_id)
    .where(
        sa.exists()
        .where(_n.provider_message_id == _p.provider_message_id)
        .where(_n.provider == _p.provider)
    )
    .group_by(_p.provider, _p.provider_message_id)
    .order_by(sa.func.min(_p.id))
)


class DeliveryReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, report: DeliveryReport, *, now: float) -> str | None:
        """Record ``report`` on its notification's timeline and move a ``sent`` one to
        ``delivered`` or ``failed`` (queueing its channel fallback, if it has one); returns
        the notification id. When no notification has this provider message id yet, the
        report is parked instead and None returned. A replayed report changes nothing."""
        dialect = self.db.dialect
        return await self.db.run(lambda conn: _apply_or_park(conn, dialect, report, now))

    async def sweep(self, *, now: float, retention: float, limit: int = 500) -> tuple[int, int]:
        """Apply parked reports whose message is now known (in arrival order), and delete
        those parked longer than ``retention`` seconds; returns (applied, deleted)."""
        matched = await self.db.run(
            lambda conn: conn.execute(_MATCHED.limit(limit)).all(), readonly=True
        )
        applied = 0
        for provider, message_id in matched:
            # One transaction per message: its notification's row lock orders them.
            applied += await self.db.run(
                partial(_apply_parked, dialect=self.db.dialect, key=(provider, message_id), now=now)
            )
        expired = pending_delivery_reports.delete().where(_p.received_at < now - retention)
        deleted = await self.db.run(lambda conn: int(conn.execute(expired).rowcount))
        return applied, deleted


@dataclass(slots=True)
class _Target:
    """The notification a report is about, locked for this transaction."""

    id: str
    status: Status
    recipient: str
    provider: str
    provider_message_id: str


def _apply_or_park(
    conn: sa.Connection, dialect: Dialect, report: DeliveryReport, now: float
) -> str | None:
    target = _lock(conn, report.provider, report.provider_message_id)
    if target is None:
        conn.execute(pending_delivery_reports.insert().values(**_parked(report, now)))
        return None
    for parked in _take_parked(conn, target):
        _record(conn, dialect, target, parked, now)
    _record(conn, dialect, target, report, now)
    return target.id


def _apply_parked(
    conn: sa.Connection, *, dialect: Dialect, key: tuple[str, str], now: float
) -> int:
    target = _lock(conn, *key)
    if target is None:
        return 0
    parked = _take_parked(conn, target)
    for report in parked:
        _record(conn, dialect, target, report, now)
    return len(parked)


def _lock(conn: sa.Connection, provider: str, message_id: str) -> _Target | None:
    found = conn.execute(
        sa.select(_n.id, _n.status, _n.recipient)
        .where(_n.provider_message_id == message_id)
        .where(_n.provider == provider)
        # Concurrent reports on one message wait here, then see each other's events.
        .with_for_update()
    ).first()
    if found is None:
        return None
    return _Target(found.id, Status(found.status), found.recipient, provider, message_id)


def _take_parked(conn: sa.Connection, target: _Target) -> list[DeliveryReport]:
    """Remove and return the reports parked for ``target``, oldest first."""
    rows = conn.execute(
        sa.select(pending_delivery_reports)
        .where(_p.provider_message_id == target.provider_message_id)
        .where(_p.provider == target.provider)
        .order_by(_p.id)
    ).all()
    if rows:
        conn.execute(pending_delivery_reports.delete().where(_p.id.in_([r.id for r in rows])))
    return [_report(row) for row in rows]


def _record(
    conn: sa.Connection, dialect: Dialect, target: _Target, report: DeliveryReport, now: float
) -> None:
    detail = report.detail
    replayed = conn.execute(
        sa.select(events.c.id)
        .where(events.c.notification_id == target.id)
        .where(events.c.actor == _ACTOR)
        .where(events.c.detail == detail)
        .limit(1)
    ).first()
    if replayed is not None:
        return
    before = target.status
    move = _MOVES.get(report.state)
    if move is not None and before is Status.SENT:
        values: dict[str, object] = {"status": move.value, "updated_at": now}
        error = report.error
        if error is not None:
            values["last_error"] = error.message + (f" [{error.code}]" if error.code else "")
            values["results"] = _results(target.recipient, error, suppress=report.suppress)
        conn.execute(notifications.update().where(_n.id == target.id).values(**values))
        target.status = move
    conn.execute(
        events.insert().values(
            notification_id=target.id,
            at=now,
            status=target.status.value,
            actor=_ACTOR,
            provider=report.provider,
            detail=detail,
        )
    )
    if target.status is Status.FAILED and before is not Status.FAILED:
        spawn_fallbacks(conn, dialect, [target.id], _ACTOR)


def _parked(report: DeliveryReport, now: float) -> dict[str, object]:
    error = report.error
    return {
        "provider": report.provider,
        "provider_message_id": report.provider_message_id,
        "state": report.state.value,
        "provider_status": report.provider_status,
        "error_kind": describe(error) if error is not None else None,
        "error_code": error.code if error is not None else None,
        "error_message": error.message if error is not None else None,
        "received_at": now,
    }


def _report(row: sa.Row[tuple[object, ...]]) -> DeliveryReport:
    """A parked report as it arrived."""
    error = (
        classified(row.error_kind, row.error_message or "", row.error_code)
        if row.error_kind is not None
        else None
    )
    return DeliveryReport(
        row.provider, row.provider_message_id, ReportedState(row.state), row.provider_status, error
    )


def _results(recipient: str, error: DeliveryError, *, suppress: bool) -> str:
    """The same per-recipient shape the worker writes, so suppression reads both alike."""
    row = {"address": recipient, "code": error.code, "message": error.message, "suppress": suppress}
    return orjson.dumps([row]).decode()
