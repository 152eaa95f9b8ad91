"""Applying providers' delivery reports to notifications, once each and in arrival order.

A provider may report on a message before Herald has recorded sending it (the worker writes
outcomes in batches, and a callback can beat the write by milliseconds). Such a report is
parked in ``pending_delivery_reports``; the next report on the same message, or the
worker's periodic :meth:`DeliveryReportStore.sweep`, applies it once the message is known.

A message sent in several parts (``message_parts``) gets a report per part: each is an
event; the notification fails when any part fails, and is delivered once every part is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa

from herald.domain.delivery_reports import DeliveryReport, ReportedState, classified, describe
from herald.domain.message import RecipientRejection
from herald.domain.status import Status
from herald.store.database import Database, Dialect
from herald.store.queue import spawn_fallbacks
from herald.store.records import results_json
from herald.store.tables import events, message_parts, notifications, pending_delivery_reports

_ACTOR = "provider-callback"
_MOVES = {ReportedState.DELIVERED: Status.DELIVERED, ReportedState.FAILED: Status.FAILED}

_n = notifications.c
_p = pending_delivery_reports.c
_m = message_parts.c

#: Parked reports whose message (or part) is now known, one row per id, oldest first.
_MATCHED = (
    sa.select(_p.provider, _p.provider_message_id)
    .where(
        sa.or_(
            sa.exists()
            .where(_n.provider_message_id == _p.provider_message_id)
            .where(_n.provider == _p.provider),
            sa.exists()
            .where(_m.provider_message_id == _p.provider_message_id)
            .where(_m.provider == _p.provider),
        )
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

    async def parked(self) -> int:
        """How many reports are parked, waiting for their message's send to be recorded."""
        count = sa.select(sa.func.count()).select_from(pending_delivery_reports)
        return await self.db.run(lambda conn: int(conn.execute(count).scalar_one()), readonly=True)

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
class _Part:
    provider_message_id: str
    number: int
    state: str | None


@dataclass(slots=True)
class _Target:
    """The notification a report is about, locked for this transaction."""

    id: str
    status: Status
    recipient: str
    provider: str
    provider_message_id: str
    #: Every part, in order, when the message went out in several; else empty.
    parts: list[_Part]

    @property
    def message_ids(self) -> list[str]:
        return [p.provider_message_id for p in self.parts] or [self.provider_message_id]


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
    """The notification sent as ``message_id`` (its first part's id, or any part's)."""
    # Concurrent reports on one message wait on this row lock, then see each other's events.
    locked = sa.select(_n.id, _n.status, _n.recipient, _n.provider_message_id).with_for_update()
    found = conn.execute(
        locked.where(_n.provider_message_id == message_id).where(_n.provider == provider)
    ).first()
    if found is None:
        of_part = conn.execute(
            sa.select(_m.notification_id)
            .where(_m.provider_message_id == message_id)
            .where(_m.provider == provider)
        ).scalar()
        if of_part is None:
            return None
        found = conn.execute(locked.where(_n.id == of_part)).one()
    parts = [
        _Part(row.provider_message_id, row.part, row.state)
        for row in conn.execute(
            sa.select(_m.provider_message_id, _m.part, _m.state)
            .where(_m.notification_id == found.id)
            .order_by(_m.part)
        )
    ]
    return _Target(
        found.id,
        Status(found.status),
        found.recipient,
        provider,
        found.provider_message_id,
        parts,
    )


def _take_parked(conn: sa.Connection, target: _Target) -> list[DeliveryReport]:
    """Remove and return the reports parked for ``target``, oldest first."""
    rows = conn.execute(
        sa.select(pending_delivery_reports)
        .where(_p.provider_message_id.in_(target.message_ids))
        .where(_p.provider == target.provider)
        .order_by(_p.id)
    ).all()
    if rows:
        conn.execute(pending_delivery_reports.delete().where(_p.id.in_([r.id for r in rows])))
    return [_report(row) for row in rows]


def _record(
    conn: sa.Connection, dialect: Dialect, target: _Target, report: DeliveryReport, now: float
) -> None:
    part = next(
        (p for p in target.parts if p.provider_message_id == report.provider_message_id), None
    )
    detail = report.detail
    if part is not None:
        detail += f" (part {part.number} of {len(target.parts)})"
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
    if part is not None and move is not None:
        part.state = report.state.value
        conn.execute(
            message_parts.update()
            .where(_m.provider_message_id == part.provider_message_id)
            .where(_m.provider == target.provider)
            .values(state=part.state)
        )
        # One failed part fails the message; it is delivered once every part is.
        delivered = ReportedState.DELIVERED.value
        if move is Status.DELIVERED and any(p.state != delivered for p in target.parts):
            move = None
    if move is not None and before is Status.SENT:
        values: dict[str, object] = {"status": move.value, "updated_at": now}
        error = report.error
        if error is not None:
            values["last_error"] = error.summary
            values["results"] = results_json(
                [RecipientRejection(target.recipient, error.code, error.message, report.suppress)]
            )
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
