"""Delivery reports: what a provider tells Herald about a message after accepting it.

Every provider's callback (Twilio status callbacks, Vonage delivery receipts…) is normalised
into a :class:`DeliveryReport` before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from herald.domain.errors import DeliveryError, PermanentError, TransientError


class ReportedState(StrEnum):
    #: Still on its way (queued, sent, accepted, buffered…): a timeline entry only.
    PROGRESS = "progress"
    #: The handset (or the carrier on its behalf) confirmed it: ``sent`` → ``delivered``.
    DELIVERED = "delivered"
    #: It will not arrive: ``sent`` → ``failed``, with the classified error.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    provider: str  # the configured provider's name, as stored on the notification
    provider_message_id: str
    state: ReportedState
    #: The provider's own word for it (``undelivered``, ``expired``…), for the timeline.
    provider_status: str
    error: DeliveryError | None = None

    @property
    def detail(self) -> str:
        """The timeline entry: the same report always gives the same text (replays are
        recognised by it)."""
        text = f"{self.provider} reports {self.provider_status}"
        if self.error is None:
            return text
        code = f" {self.error.code}" if self.error.code else ""
        return f"{text}: error{code} ({describe(self.error)}): {self.error.message}"

    @property
    def suppress(self) -> bool:
        return isinstance(self.error, PermanentError) and self.error.suppress


def describe(error: DeliveryError) -> str:
    """``transient``, ``permanent``, ``permanent, suppress`` or ``opt-out``."""
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, PermanentError):
        if error.opt_out:
            return "opt-out"
        return "permanent, suppress" if error.suppress else "permanent"
    return "unclassified"


def classified(kind: str, message: str, code: str | None) -> DeliveryError:
    """The error that :func:`describe` words as ``kind`` (how a parked report keeps it)."""
    if kind == "transient":
        return TransientError(message, code=code)
    if kind in {"permanent", "permanent, suppress", "opt-out"}:
        return PermanentError(
            message, code=code, suppress=kind == "permanent, suppress", opt_out=kind == "opt-out"
        )
    return DeliveryError(message, code=code)
