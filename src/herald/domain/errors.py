"""Herald's exception tree. Every delivery failure says whether to retry.

HeraldError
├── InvalidRequest              bad input at the edge: 422 with field-level reasons
├── Conflict                    idempotency key reused with another body, or a state
│                               change the status machine refuses: 409
├── NotFound                    404
├── ConfigurationError          settings or provider URLs that cannot work
├── DatabaseUnavailable         the database could not be reached or dropped the
│                               connection: retry (503)
└── DeliveryError               raised by providers, classified:
    ├── TransientError          retry later (optionally after ``retry_after`` seconds)
    │   └── UnknownOutcome      the provider may have accepted it (e.g. a timeout after
    │                           the end of SMTP DATA): retried, counted as a possible duplicate
    └── PermanentError          never retried as is; ``suppress`` marks the address
        │                       suppress-worthy, ``recipient_fault`` says whether another
        │                       provider could do better (False: fail over)
        └── Gone                the target URL answered 410: later notifications to it
                                fail without a request
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from herald.domain.message import RecipientRejection


#: HTTP statuses worth retrying besides 5xx: timeouts, "too early", rate limits.
_TRANSIENT_HTTP = frozenset({408, 425, 429})


def transient_http_status(status: int) -> bool:
    """Whether an HTTP error status is worth retrying (408, 425, 429 and every 5xx)."""
    return status in _TRANSIENT_HTTP or status >= 500


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class InvalidRequest(HeraldError):
    """Input that Herald refuses; ``fields`` maps a field path to the reason."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})


class Conflict(HeraldError):
    """The request conflicts with the current state (409)."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(HeraldError):
    """No such resource (404)."""


class ConfigurationError(HeraldError):
    """Settings or provider URLs that cannot work."""


class DatabaseUnavailable(HeraldError):
    """The database could not be reached, or dropped the connection mid-transaction
    (stopped, restarting, out of connections, locked past the busy timeout). What was
    being written may or may not have been committed: retry, with an idempotency key
    where a duplicate matters."""


class DeliveryError(HeraldError):
    """A provider could not deliver; subclasses say what to do about it."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The provider's own code (SMTP reply/enhanced code, HTTP status, API error code).
        self.code = code

    @property
    def summary(self) -> str:
        """The message with the provider's code, as ``last_error`` shows it."""
        return self.message + (f" [{self.code}]" if self.code else "")


class TransientError(DeliveryError):
    """Worth retrying; ``retry_after`` is the provider's hint in seconds, if any."""

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UnknownOutcome(TransientError):
    """The provider may or may not have accepted the message; a retry may duplicate it."""


class PermanentError(DeliveryError):
    """Will fail again the same way.

    ``suppress``: the address itself is bad or opted out (feeds the suppression list).
    ``recipient_fault``: False when the provider side is at fault (auth, policy, config),
    so another provider may still succeed. ``rejected``: per-recipient detail, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        suppress: bool = False,
        recipient_fault: bool = True,
        opt_out: bool = False,
        rejected: Sequence[RecipientRejection] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.suppress = suppress or opt_out
        self.recipient_fault = recipient_fault
        self.opt_out = opt_out
        #: Per-recipient refusals, when every recipient of a message was refused.
        self.rejected = tuple(rejected)


class Gone(PermanentError):
    """The target (a webhook URL) no longer exists; the worker remembers it."""

    def __init__(self, message: str, *, target: str, code: str | None = "410") -> None:
        super().__init__(message, code=code)
        self.target = target
