"""Delivering one claimed notification: failover across providers, then a verdict.

The verdict follows the failure classification: success → ``sent``; transient (or an
unknown outcome) → ``retrying`` with backoff, ``dead`` once attempts are exhausted;
permanent → ``dead``. A transient failure, or a permanent one that is not the recipient's
fault (auth, policy), moves on to the next provider before any retry is scheduled.

A webhook URL that answered 410 Gone ends its notification ``failed``, is remembered, and
later notifications to it end ``failed`` without a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from herald import metrics
from herald.domain.backoff import RetryPolicy
from herald.domain.breaker import provider_fault
from herald.domain.channels import Channel
from herald.domain.errors import (
    DeliveryError,
    Gone,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import (
    Content,
    Delivery,
    Receipt,
    RecipientRejection,
    Webhook,
    content_from_payload,
)
from herald.domain.status import Status
from herald.providers.base import Provider
from herald.store.records import (
    Claimed,
    GoneUrl,
    MessagePart,
    NewCapture,
    NewEvent,
    Outcome,
    results_json,
)
from herald.worker.gone import GoneUrls
from herald.worker.resilience import ProviderGuard, Refusal

log = structlog.get_logger(__name__)

#: A provider and its breaker / rate-limit guard (None when it has neither).
_Link = tuple[Provider, ProviderGuard | None]


@dataclass(slots=True)
class Verdict:
    """Everything the outcome writer stores for one attempt."""

    outcome: Outcome
    events: list[NewEvent]
    capture: NewCapture | None = None
    gone: GoneUrl | None = None
    parts: list[MessagePart] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        providers: dict[Channel, list[Provider]],
        policy: RetryPolicy,
        max_lag: float,
        gone: GoneUrls | None = None,
        guards: Mapping[str, ProviderGuard] | None = None,
    ) -> None:
        self._policy = policy
        self._max_lag = max_lag
        self._gone = gone
        guards = guards or {}
        self._chains = {
            channel: [(p, guards.get(p.name)) for p in chain]
            for channel, chain in providers.items()
        }
        #: Channels with a provider that may decline some content (push platforms).
        self._choosy = {
            channel
            for channel, chain in self._chains.items()
            if any(hasattr(provider, "serves") for provider, _guard in chain)
        }

    async def deliver(self, row: Claimed) -> Verdict:
        now = time.time()
        channel = Channel(row.channel)
        stale = self._staleness(row, now)
        if stale is not None:
            metrics.labelled(metrics.EXPIRED, channel.value).inc()
            return _verdict(row, Status.EXPIRED, now, detail=stale, last_error=stale)
        delivery = Delivery(
            notification_id=row.id,
            channel=channel,
            attempt=row.attempts,
            content=content_from_payload(channel, orjson.loads(row.payload)),
            idempotency_key=row.idempotency_key or row.id,
            category=row.category,
        )
        content = delivery.content
        if isinstance(content, Webhook) and self._gone and await self._gone.contains(content.url):
            metrics.labelled(metrics.FAILED, channel.value, "herald", "permanent").inc()
            reason = f"{content.url} answered 410 Gone earlier; not sent"
            return _verdict(row, Status.FAILED, now, last_error=reason, detail=reason)
        chain = self._chains[channel]
        if channel in self._choosy:
            chain = _able(chain, delivery)
        events: list[NewEvent] = []
        errors: list[tuple[Provider | _Herald, DeliveryError]] = []
        refusals: list[Refusal] = []
        for index, (provider, guard) in enumerate(chain):
            following = chain[index + 1][0] if index + 1 < len(chain) else None
            if (
                guard is not None
                and not guard.unhindered
                and (refusal := await guard.enter()) is not None
            ):
                refusals.append(refusal)
                if following is not None:
                    detail = f"{refusal.reason}; failing over to {following.name}"
                    events.append(
                        _event(row.id, time.time(), Status.SENDING, provider.name, detail)
                    )
                continue
            try:
                receipt = await _send(provider, delivery)
            except DeliveryError as error:
                if guard is not None:
                    guard.exit(error)
                errors.append((provider, error))
                kind = _kind(error)
                metrics.labelled(metrics.FAILED, channel.value, provider.name, kind).inc()
                if following is None or not _fails_over(error):
                    break
                events.append(
                    _event(
                        row.id,
                        time.time(),
                        Status.SENDING,
                        provider.name,
                        f"{error.message}; failing over to {following.name}",
                    )
                )
                continue
            except BaseException:
                if guard is not None:
                    guard.abandon()
                raise
            if guard is not None:
                guard.exit(None)
            return self._sent(row, channel, provider, receipt, events)
        if not errors:
            return _deferred(row, refusals, events)
        return self._failed(row, channel, errors, events)

    def _staleness(self, row: Claimed, now: float) -> str | None:
        if row.expires_at is not None and now >= row.expires_at:
            return "expired: expires_at passed before it could be sent"
        if now - row.send_at > self._max_lag:
            late = int(now - row.send_at)
            return f"expired: {late} s past its due time (HERALD_MAX_LAG is {int(self._max_lag)})"
        return None

    def _sent(
        self,
        row: Claimed,
        channel: Channel,
        provider: Provider,
        receipt: Receipt,
        events: list[NewEvent],
    ) -> Verdict:
        now = time.time()
        metrics.labelled(metrics.SENT, channel.value, provider.name).inc()
        metrics.labelled(metrics.ACCEPT_TO_SENT, channel.value).observe(max(now - row.send_at, 0.0))
        detail = receipt.detail or "accepted by the provider"
        if receipt.rejected:
            refused = "; ".join(f"{r.address}: {r.message}" for r in receipt.rejected)
            detail = f"{detail} (refused recipients: {refused})"
        verdict = _verdict(
            row,
            Status.SENT,
            now,
            provider=provider.name,
            # The column holds 255; no real provider id comes close, but a broken one must
            # not make the outcome unstorable.
            provider_message_id=(receipt.provider_message_id or "")[:255] or None,
            results=results_json(receipt.rejected),
            detail=detail,
            events=events,
        )
        verdict.outcome["sent_at"] = now
        verdict.parts = [
            {
                "provider": provider.name,
                "provider_message_id": part_id[:255],
                "notification_id": row.id,
                "part": number,
            }
            for number, part_id in enumerate(receipt.parts, 1)
        ]
        if receipt.captured is not None:
            verdict.capture = {
                "notification_id": row.id,
                "channel": channel.value,
                "provider": provider.name,
                "recipient": row.recipient,
                "content": orjson.dumps(receipt.captured).decode(),
                "created_at": now,
            }
        return verdict

    def _failed(
        self,
        row: Claimed,
        channel: Channel,
        errors: Sequence[tuple[Provider | _Herald, DeliveryError]],
        events: list[NewEvent],
    ) -> Verdict:
        now = time.time()
        provider, error = errors[-1]
        unknown = any(isinstance(e, UnknownOutcome) for _, e in errors)
        if unknown:
            metrics.labelled(metrics.POSSIBLE_DUPLICATES, channel.value).inc()
        message = error.summary
        permanent = isinstance(error, PermanentError)
        if isinstance(error, Gone):
            verdict = _verdict(
                row,
                Status.FAILED,
                now,
                provider=provider.name,
                last_error=message,
                detail=message,
                events=events,
            )
            verdict.gone = {
                "url": error.target,
                "at": now,
                "notification_id": row.id,
                "detail": message,
            }
            if self._gone is not None:
                self._gone.add(error.target)
        elif permanent or self._policy.exhausted(row.attempts):
            metrics.labelled(metrics.DEAD, channel.value).inc()
            reason = message if permanent else f"attempts exhausted ({row.attempts}): {message}"
            verdict = _verdict(
                row,
                Status.DEAD,
                now,
                provider=provider.name,
                last_error=reason,
                results=_permanent_results(row, error),
                detail=reason,
                events=events,
            )
        else:
            retry_after = error.retry_after if isinstance(error, TransientError) else None
            delay = self._policy.delay_for(row.attempts, retry_after=retry_after)
            metrics.labelled(metrics.RETRIED, channel.value).inc()
            verdict = _verdict(
                row,
                Status.RETRYING,
                now,
                provider=provider.name,
                last_error=message,
                detail=f"{message}; retrying in {delay:.1f} s",
                events=events,
            )
            verdict.outcome["due_at"] = now + delay
        if unknown:
            verdict.outcome["dup"] = 1
        log.info(
            "delivery_failed",
            notification_id=row.id,
            provider=provider.name,
            status=verdict.outcome["status"],
            error=message,
        )
        return verdict

    def crashed(self, row: Claimed, exc: BaseException) -> Verdict:
        """A verdict for a row whose delivery raised something unexpected (a bug)."""
        error = TransientError(f"internal error: {exc!r}")
        return self._failed(row, Channel(row.channel), [(_Herald(), error)], [])


class _Herald:
    """Stands in for a provider when Herald itself failed before reaching one."""

    name = "herald"


async def _send(provider: Provider, delivery: Delivery) -> Receipt:
    """A provider raising anything but a DeliveryError has a bug; treat it as transient
    (retried with backoff, dead once attempts run out) rather than crashing the worker."""
    try:
        return await provider.send(delivery)
    except DeliveryError:
        raise
    except Exception as exc:
        log.exception(
            "provider_crashed", provider=provider.name, notification_id=delivery.notification_id
        )
        raise TransientError(f"{provider.name} failed unexpectedly: {exc!r}") from exc


def _deferred(row: Claimed, refusals: Sequence[Refusal], events: list[NewEvent]) -> Verdict:
    """No provider could be called (circuits open, rate limits full): wait until the first
    may be asked again, without counting an attempt."""
    now = time.time()
    due = min(r.retry_at for r in refusals)
    reasons = "; ".join(r.reason for r in refusals)
    verdict = _verdict(
        row,
        Status.RETRYING,
        now,
        last_error=reasons,
        detail=f"{reasons}; deferred {max(due - now, 0.0):.1f} s (no attempt used)",
        events=events,
    )
    verdict.outcome["attempts_delta"] = -1
    verdict.outcome["due_at"] = due
    return verdict


def release(row: Claimed, reason: str, *, possibly_sent: bool = False) -> Verdict:
    """Give a claimed row back to the queue without counting an attempt."""
    verdict = _verdict(row, Status.QUEUED, time.time(), detail=reason)
    verdict.outcome["attempts_delta"] = -1
    verdict.outcome["due_at"] = time.time()
    verdict.outcome["dup"] = int(possibly_sent)
    return verdict


def _verdict(
    row: Claimed,
    status: Status,
    at: float,
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
    last_error: str | None = None,
    results: str | None = None,
    detail: str | None = None,
    events: list[NewEvent] | None = None,
) -> Verdict:
    timeline = events or []
    timeline.append(_event(row.id, at, status, provider, detail))
    outcome: Outcome = {
        "id": row.id,
        "token": row.lease_token,
        "status": status.value,
        "at": at,
        "due_at": None,
        "provider": provider,
        "provider_message_id": provider_message_id,
        "last_error": last_error,
        "results": results,
        "sent_at": None,
        "dup": 0,
        "attempts_delta": 0,
    }
    return Verdict(outcome=outcome, events=timeline)


def _event(
    nid: str, at: float, status: Status, provider: str | None, detail: str | None
) -> NewEvent:
    return {"nid": nid, "at": at, "status": status.value, "provider": provider, "detail": detail}


def _able(chain: list[_Link], delivery: Delivery) -> list[_Link]:
    """The providers that can carry this delivery. A provider with a ``serves(content)``
    method may decline content it cannot carry (a push provider for another platform's
    tokens), so failover, and the final verdict, involve only those that can. When none
    can, all are tried and say why they cannot."""
    able: list[_Link] = []
    for link in chain:
        serves: Callable[[Content], bool] | None = getattr(link[0], "serves", None)
        if serves is None or serves(delivery.content):
            able.append(link)
    return able or chain


def _kind(error: DeliveryError) -> str:
    if isinstance(error, UnknownOutcome):
        return "unknown"
    return "transient" if isinstance(error, TransientError) else "permanent"


def _fails_over(error: DeliveryError) -> bool:
    # An unknown outcome may already have been delivered: a second provider would
    # duplicate it for sure, so it waits for a retry on the same chain instead.
    return not isinstance(error, UnknownOutcome) and provider_fault(error)


def _permanent_results(row: Claimed, error: DeliveryError) -> str | None:
    """Per-recipient detail of a permanent failure, keeping its suppress-worthiness."""
    if not isinstance(error, PermanentError):
        return None
    if error.rejected:
        return results_json(error.rejected)
    if row.channel == Channel.EMAIL.value:
        payload = orjson.loads(row.payload)
        recipients = [a[1] for a in (*payload["to"], *payload["cc"], *payload["bcc"])]
    else:
        recipients = [row.recipient]
    return results_json(
        [RecipientRejection(a, error.code, error.message, error.suppress) for a in recipients]
    )
