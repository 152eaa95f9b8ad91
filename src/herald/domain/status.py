"""The notification status machine.

scheduled ─┐
queued ────┼─> sending ─> sent ─> delivered
retrying ──┘      │  └──> retrying (transient failure, lease expired)
                  ├──> dead (permanent failure or attempts exhausted) ─> queued (DLQ retry)
                  ├──> failed (permanent, nothing to retry)
                  └──> queued (released by a worker shutting down)
scheduled | queued | retrying ─> cancelled | expired | suppressed (also from sending)
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


#: Workers claim only queued rows; scheduled and retrying ones are queued when due, so the
#: claim query reads a queue that is due by construction.
CLAIMABLE: frozenset[Status] = frozenset({Status.QUEUED})

#: Statuses waiting for a time (send_at, or the next retry) before they are queued.
WAITING: frozenset[Status] = frozenset({Status.SCHEDULED, Status.RETRYING})

#: Statuses that never change again.
TERMINAL: frozenset[Status] = frozenset(
    {Status.DELIVERED, Status.FAILED, Status.CANCELLED, Status.SUPPRESSED, Status.EXPIRED}
)

_WAITING_EXITS = frozenset({Status.QUEUED, Status.CANCELLED, Status.EXPIRED, Status.SUPPRESSED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: _WAITING_EXITS,
    Status.RETRYING: _WAITING_EXITS,
    Status.QUEUED: frozenset({Status.SENDING, Status.CANCELLED, Status.EXPIRED, Status.SUPPRESSED}),
    Status.SENDING: frozenset(
        {
            Status.SENT,
            Status.RETRYING,
            Status.DEAD,
            Status.FAILED,
            Status.QUEUED,
            Status.EXPIRED,
            Status.SUPPRESSED,
        }
    ),
    Status.SENT: frozenset({Status.DELIVERED, Status.FAILED}),
    Status.DEAD: frozenset({Status.QUEUED}),
    **{status: frozenset() for status in TERMINAL},
}

#: Statuses from which a caller may still cancel.
CANCELLABLE: frozenset[Status] = frozenset({*WAITING, *CLAIMABLE})


def can_transition(current: Status, new: Status) -> bool:
    """Whether the machine allows ``current -> new``."""
    return new in TRANSITIONS[current]
