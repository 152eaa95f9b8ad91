"""Accepting notifications: validate, prepare, and commit in groups (group commit).

A 202 (or a returned id) is only ever given after the row is committed. Concurrent
requests are gathered into one transaction while the previous one commits, which keeps
single-notification accepts cheap under load without adding latency when idle.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

import orjson

from herald.domain.channels import Channel
from herald.domain.errors import Conflict, InvalidRequest
from herald.domain.ids import new_id
from herald.domain.status import Status
from herald.pipeline.chat import prepare_chat
from herald.pipeline.email import EmailLimits, prepare_email
from herald.pipeline.errors import field_path
from herald.pipeline.fallback import fallback_requests
from herald.pipeline.fallback import unused_fields as _unused_fields
from herald.pipeline.prepared import ChannelLimits, Prepared
from herald.pipeline.push import prepare_push
from herald.pipeline.requests import (
    CONTROL_CHARACTERS,
    MAX_IDEMPOTENCY_KEY,
    NotificationRequest,
)
from herald.pipeline.sms import prepare_sms
from herald.pipeline.templating import RenderedFrom
from herald.pipeline.webhook import prepare_webhook
from herald.store.notifications import KeyConflict, NotificationStore
from herald.store.records import Accepted, NewNotification

MAX_METADATA_BYTES = 16 * 1024
_SCHEDULED, _QUEUED = Status.SCHEDULED.value, Status.QUEUED.value  # enum lookups cost µs
#: Rows per transaction when many requests are waiting.
_GROUP_ROWS = 2000


class _Pending(NamedTuple):
    rows: list[NewNotification]
    future: asyncio.Future[list[Accepted]]
    actor: str


@dataclass(frozen=True, slots=True)
class AcceptPolicy:
    max_attempts: int
    email: EmailLimits
    #: Domain for generated Message-IDs when the sender's is unknown at accept time.
    message_id_domain: str
    channels: ChannelLimits = field(default_factory=ChannelLimits)


class Pipeline:
    """Turns requests into committed notifications."""

    def __init__(
        self,
        store: NotificationStore,
        policy: AcceptPolicy,
        *,
        on_commit: Callable[[Sequence[NewNotification]], None] = lambda rows: None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._on_commit = on_commit
        self._pending: deque[_Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None

    def prepare(
        self,
        request: NotificationRequest,
        *,
        now: float,
        idempotency_key: str | None = None,
        rendered_from: RenderedFrom | None = None,
    ) -> NewNotification:
        """Validate one request and build its row; raises InvalidRequest with field errors.

        ``rendered_from``: the template ``request``'s content was rendered from.
        """
        key = request.idempotency_key or idempotency_key
        if key is not None and (problem := key_problem(key)):
            raise InvalidRequest("the idempotency key is not valid", {"idempotency_key": problem})
        unstorable = unstorable_values(request)
        if unstorable:
            raise InvalidRequest("the notification is not valid", unstorable)
        errors: dict[str, str] = {}
        send_at = request.send_at.timestamp() if request.send_at else now
        expires_at = request.expires_at.timestamp() if request.expires_at else None
        if expires_at is not None and expires_at <= max(now, send_at):
            errors["expires_at"] = "must be later than now and than send_at"
        metadata = None
        if request.metadata is not None:
            metadata = orjson.dumps(request.metadata).decode()
            if len(metadata) > MAX_METADATA_BYTES:
                errors["metadata"] = f"at most {MAX_METADATA_BYTES:,} bytes of JSON"

        errors.update(_unused_fields(request))
        notification_id = new_id(now)
        prepared = self._content(request, notification_id=notification_id, now=now)
        fallback = self._fallbacks(request, notification_id=notification_id, now=now)
        if isinstance(prepared, dict) or isinstance(fallback, dict) or errors:
            raise InvalidRequest(
                "the notification is not valid",
                {
                    **errors,
                    **(prepared if isinstance(prepared, dict) else {}),
                    **(fallback if isinstance(fallback, dict) else {}),
                },
            )
        scheduled = send_at > now
        return {
            "id": notification_id,
            "channel": request.channel.value,
            "status": _SCHEDULED if scheduled else _QUEUED,
            "priority": request.priority,
            "recipient": prepared.recipient,
            "recipient_id": request.recipient_id,
            "category": request.category,
            "payload": orjson.dumps(prepared.payload).decode(),
            "metadata": metadata,
            "idempotency_key": key,
            "request_hash": (
                request_hash(rendered_from.original if rendered_from else request) if key else None
            ),
            "max_attempts": self._policy.max_attempts,
            "send_at": max(send_at, now),
            "due_at": max(send_at, now),
            "expires_at": expires_at,
            "created_at": now,
            "fallback": orjson.dumps(fallback).decode() if fallback else None,
            "fallback_of": None,
            "template": rendered_from.template if rendered_from else None,
            "template_version": rendered_from.version if rendered_from else None,
        }

    def _content(
        self, request: NotificationRequest, *, notification_id: str, now: float
    ) -> Prepared | dict[str, str]:
        """The channel's own checks and stored payload."""
        channel = request.channel
        if channel is Channel.EMAIL:
            return prepare_email(
                request,
                notification_id=notification_id,
                now=now,
                limits=self._policy.email,
                message_id_domain=self._policy.message_id_domain,
            )
        if channel is Channel.SMS:
            return prepare_sms(request, self._policy.channels)
        if channel is Channel.PUSH:
            return prepare_push(request)
        if channel is Channel.WEBHOOK:
            size = len(orjson.dumps(request.data)) if request.data else 0
            return prepare_webhook(
                request, now=now, limits=self._policy.channels, payload_bytes=size
            )
        return prepare_chat(request)

    def _fallbacks(
        self, request: NotificationRequest, *, notification_id: str, now: float
    ) -> list[dict[str, Any]] | dict[str, str]:
        """The fallback notifications, prepared (and so checked) now, sent only if needed."""
        plan, errors = fallback_requests(request, self._policy.channels.sms_max_segments)
        prepared: list[dict[str, Any]] = []
        for derived in plan:
            channel = derived.channel
            result = self._content(derived, notification_id=notification_id, now=now)
            if isinstance(result, dict):
                for field, reason in result.items():
                    path = f"fallback_to.{channel.value}" if field == "to" else field
                    errors.setdefault(path, f"for the {channel.value} fallback: {reason}")
                continue
            prepared.append(
                {"channel": channel.value, "recipient": result.recipient, "payload": result.payload}
            )
        return errors or prepared

    def prepare_batch(
        self,
        requests: Sequence[NotificationRequest],
        *,
        now: float,
        idempotency_key: str | None,
        rendered_from: Sequence[RenderedFrom | None] | None = None,
    ) -> list[NewNotification]:
        """Prepare every item; all errors are reported at once, prefixed by the item's index."""
        if idempotency_key is not None:
            problem = key_problem(idempotency_key)
            longest = MAX_IDEMPOTENCY_KEY - len(f":{max(len(requests) - 1, 0)}")
            if problem is None and len(idempotency_key) > longest:
                problem = f"at most {longest} characters for this batch: item i gets '<key>:<i>'"
            if problem:
                raise InvalidRequest(
                    "the idempotency key is not valid", {"idempotency_key": problem}
                )
        rows: list[NewNotification] = []
        errors: dict[str, str] = {}
        for index, request in enumerate(requests):
            # A batch-wide key gives each item its own derived key.
            item_key = f"{idempotency_key}:{index}" if idempotency_key else None
            try:
                origin = rendered_from[index] if rendered_from else None
                rows.append(
                    self.prepare(request, now=now, idempotency_key=item_key, rendered_from=origin)
                )
            except InvalidRequest as exc:
                for path, reason in exc.fields.items():
                    errors[f"notifications[{index}].{path}"] = reason
        if errors:
            raise InvalidRequest("some notifications in the batch are not valid", errors)
        return rows

    async def commit(self, rows: list[NewNotification], *, actor: str) -> list[Accepted]:
        """Commit one request's rows (all or nothing), grouped with concurrent requests.

        ``actor`` names who accepted them on their timelines (``api``, ``library``, ``cli``).
        """
        future: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(rows, future, actor))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            # One transaction per group: requests of one actor, up to _GROUP_ROWS rows.
            actor = self._pending[0].actor
            group: list[_Pending] = []
            size = 0
            while (
                self._pending
                and self._pending[0].actor == actor
                and (not group or size + len(self._pending[0].rows) <= _GROUP_ROWS)
            ):
                group.append(self._pending.popleft())
                size += len(group[-1].rows)
            try:
                results = await self._store.accept([p.rows for p in group], actor=actor)
            except Exception as exc:  # the database is down or refused the write
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            committed: list[NewNotification] = []
            for (rows, future, _actor), result in zip(group, results, strict=True):
                if isinstance(result, KeyConflict):
                    error = Conflict(
                        f"idempotency key {result.key!r} was already used with a different "
                        "request body",
                        code="idempotency_key_reused",
                    )
                    if not future.done():
                        future.set_exception(error)
                    continue
                committed.extend(
                    row for row, accepted in zip(rows, result, strict=True) if not accepted.replayed
                )
                if not future.done():
                    future.set_result(result)
            if committed:
                self._on_commit(committed)


def key_problem(key: str) -> str | None:
    """Why an idempotency key from outside the body (a header, a library argument, a batch's
    derived ``<key>:<i>``) cannot be used; the body's own key is checked by its model."""
    if not key:
        return "must not be empty"
    if len(key) > MAX_IDEMPOTENCY_KEY:
        return f"at most {MAX_IDEMPOTENCY_KEY} characters"
    if CONTROL_CHARACTERS.search(key):
        return "must not contain control characters"
    return None


def unstorable_values(request: NotificationRequest) -> dict[str, str]:
    """Field errors for values JSON cannot carry on to the store: lone surrogates (JSON
    allows ``"\\ud800"``, UTF-8 does not), integers past 64 bits, and (from library
    callers) ``metadata`` values that are not JSON at all, such as sets."""
    data = request.model_dump(by_alias=True, exclude_none=True)
    try:
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)  # fallback_to has Channel keys
    except orjson.JSONEncodeError:
        found: dict[str, str] = {}
        _find_unstorable(data, (), found)
        return found or {"body": "contains a value that cannot be stored as JSON"}
    return {}


def _find_unstorable(value: Any, loc: tuple[int | str, ...], found: dict[str, str]) -> None:
    if isinstance(value, str):
        if not _is_utf8(value):
            found[field_path(loc)] = "not valid Unicode text (a lone surrogate)"
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**64:
            found[field_path(loc)] = "integers must fit in 64 bits"
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _is_utf8(key):
                found[field_path(loc)] = "a key is not valid Unicode text (a lone surrogate)"
            else:
                _find_unstorable(item, (*loc, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_unstorable(item, (*loc, index), found)
    elif not isinstance(value, float | datetime | Enum | None):
        found[field_path(loc)] = f"not a JSON value ({type(value).__name__})"


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def request_hash(request: NotificationRequest) -> str:
    """A digest of the request body, ignoring the idempotency key and field order."""
    body = request.model_dump(mode="json", exclude={"idempotency_key"}, exclude_none=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
