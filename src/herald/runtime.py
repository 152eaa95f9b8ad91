"""The composition root: one :class:`Herald` wires settings, store, pipeline and providers.

The HTTP API, the CLI and embedded use all go through it::

    async with Herald("sqlite:///herald.db") as herald:
        accepted = await herald.send_email(to="a@example.org", subject="Hi", text="Hello")
        async with herald.worker():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from herald import logs, metrics
from herald.config import Settings
from herald.domain.channels import Channel
from herald.domain.delivery_reports import DeliveryReport
from herald.domain.errors import ConfigurationError, InvalidRequest
from herald.domain.message import Address
from herald.domain.network import parse_networks
from herald.domain.webhook_signing import generate_secret
from herald.pipeline.accept import AcceptPolicy, Pipeline
from herald.pipeline.email import EmailLimits
from herald.pipeline.errors import invalid_request
from herald.pipeline.prepared import ChannelLimits
from herald.pipeline.requests import NotificationRequest
from herald.pipeline.templating import BUILTIN_DIR, RenderedFrom, TemplateRegistry
from herald.pipeline.views import AcceptedItem, NotificationView, notification_view
from herald.providers.base import Provider, ProviderDefaults
from herald.providers.registry import build_providers, provider_urls
from herald.store import migrate
from herald.store.api_keys import ApiKeyStore
from herald.store.captured import CapturedStore
from herald.store.database import Database
from herald.store.delivery_reports import DeliveryReportStore
from herald.store.notifications import NotificationStore
from herald.store.queue import QueueStore
from herald.store.records import NewNotification
from herald.store.templates import TemplateStore
from herald.store.wakeup import PostgresListener, Wakeup
from herald.store.webhooks import WebhookStore
from herald.templates.directory import TemplateDirectory
from herald.templates.model import StoredTemplate, TemplateBody, TemplateError
from herald.worker.dispatch import Dispatcher
from herald.worker.gone import GoneUrls
from herald.worker.resilience import build_guards
from herald.worker.runner import Worker, WorkerSettings


class Herald:
    """Herald in your process: accept, inspect and (optionally) deliver notifications."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        providers: Mapping[Channel, Sequence[Provider]] | None = None,
        migrate: bool | None = None,
        **overrides: Any,
    ) -> None:
        logs.route_to_stdlib_unless_configured()
        if database_url is not None:
            overrides["database_url"] = database_url
        self.settings = settings.model_copy(update=overrides) if settings else Settings(**overrides)
        self._given_providers = providers
        self._migrate = migrate
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        s = self.settings
        self.db = Database(s.database_url, sqlite_synchronous=s.sqlite_synchronous)
        try:
            await self._prepare_schema()
            self.webhooks = WebhookStore(self.db)
            #: The default Standard Webhooks secret(s): the setting, else generated and stored.
            self.webhook_secret = s.webhook_secret or await self.webhooks.secret(generate_secret)
            urls = {
                Channel.EMAIL: s.email,
                Channel.SMS: s.sms,
                Channel.PUSH: s.push,
                Channel.CHAT: s.chat,
                Channel.WEBHOOK: s.webhook,
            }
            configured = build_providers(
                urls,
                public_url=s.public_url,
                defaults=ProviderDefaults(
                    webhook_secret=self.webhook_secret,
                    webhook_allowed_networks=parse_networks(s.webhook_allowed_networks),
                ),
            )
            if self._given_providers is not None:
                configured.update({c: list(p) for c, p in self._given_providers.items()})
            self.guards = build_guards(
                [p for chain in configured.values() for p in chain],
                provider_urls(urls),
                redis_url=s.redis_url,
            )
            directories = _template_directories(s)
        except BaseException:
            await self.db.dispose()
            raise
        self.providers: dict[Channel, list[Provider]] = configured
        self.wakeup = Wakeup()
        self.notifications = NotificationStore(self.db)
        self.queue = QueueStore(self.db)
        self.captured = CapturedStore(self.db)
        self.delivery_reports = DeliveryReportStore(self.db)
        self.api_keys = ApiKeyStore(self.db)
        self.templates = TemplateRegistry(
            TemplateStore(self.db),
            directories,
            cache_seconds=s.templates_cache_seconds,
            sanitize_html=s.sanitize_html,
        )
        self.pipeline = Pipeline(
            self.notifications,
            AcceptPolicy(
                max_attempts=s.retry_max_attempts,
                email=EmailLimits(
                    max_message_bytes=s.max_message_bytes, max_recipients=s.max_recipients
                ),
                channels=ChannelLimits(
                    sms_default_region=s.sms_default_region,
                    sms_max_segments=s.sms_max_segments,
                    webhook_allowed_networks=parse_networks(s.webhook_allowed_networks),
                ),
                message_id_domain=s.message_id_domain or _sender_domain(configured),
            ),
            on_commit=self._committed,
        )
        self._started = True

    async def aclose(self) -> None:
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            await self.guards.aclose()
        for providers in self.providers.values():
            for provider in providers:
                with contextlib.suppress(Exception):
                    await provider.aclose()
        await self.db.dispose()

    async def __aenter__(self) -> Herald:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _prepare_schema(self) -> None:
        run = self.db.is_sqlite if self._migrate is None else self._migrate
        if run:
            await migrate.upgrade(self.db)
        elif await migrate.pending(self.db):
            raise ConfigurationError(
                "the database schema is not up to date: run `herald migrate` first"
            )

    def _committed(self, rows: Sequence[NewNotification]) -> None:
        for channel, count in Counter(row["channel"] for row in rows).items():
            metrics.ACCEPTED.labels(channel).inc(count)
        self.wakeup.notify()

    # -- accepting -------------------------------------------------------------------------

    async def send(
        self,
        request: NotificationRequest | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        actor: str = "library",
        **fields: Any,
    ) -> NotificationView:
        """Accept one notification; returns once it is committed.

        Raises :class:`~herald.domain.errors.InvalidRequest` (field-level reasons) or
        :class:`~herald.domain.errors.Conflict` (idempotency key reused with another body).
        """
        parsed, origin = await self.templates.apply(_request(request, fields))
        row = self.pipeline.prepare(
            parsed, now=time.time(), idempotency_key=idempotency_key, rendered_from=origin
        )
        (accepted,) = await self.pipeline.commit([row], actor=actor)
        if accepted.replayed:
            return await self.get(accepted.id, replayed=True, timeline=False)
        return notification_view(row)

    async def send_email(
        self,
        *,
        to: str | Sequence[str],
        subject: str,
        html: str | None = None,
        text: str | None = None,
        **fields: Any,
    ) -> NotificationView:
        """Accept one email (see :meth:`send` for the other fields)."""
        return await self.send(
            channel="email",
            to=to if isinstance(to, str) else list(to),
            subject=subject,
            html=html,
            text=text,
            **fields,
        )

    async def send_batch(
        self,
        requests: Sequence[NotificationRequest | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        actor: str = "library",
    ) -> list[AcceptedItem]:
        """Accept up to 1,000 notifications in one transaction: all of them or none."""
        parsed: list[NotificationRequest] = []
        origins: list[RenderedFrom | None] = []
        errors: dict[str, str] = {}
        for index, item in enumerate(requests):
            try:
                request, origin = await self.templates.apply(_request(item, {}))
            except InvalidRequest as exc:
                for path, reason in exc.fields.items():
                    errors[f"notifications[{index}].{path}"] = reason
                continue
            parsed.append(request)
            origins.append(origin)
        if errors:
            raise InvalidRequest("some notifications in the batch are not valid", errors)
        rows = self.pipeline.prepare_batch(
            parsed, now=time.time(), idempotency_key=idempotency_key, rendered_from=origins
        )
        accepted = await self.pipeline.commit(rows, actor=actor)
        replayed = [a.id for a in accepted if a.replayed]
        current = await self.notifications.statuses(replayed) if replayed else {}
        return [
            AcceptedItem(
                id=result.id,
                status=current.get(result.id, row["status"]),
                idempotency_key=row["idempotency_key"],
                replayed=result.replayed,
            )
            for row, result in zip(rows, accepted, strict=True)
        ]

    # -- templates -------------------------------------------------------------------------

    async def put_template(
        self, name: str, body: TemplateBody | Mapping[str, Any]
    ) -> StoredTemplate:
        """Store a new version of a template; raises InvalidRequest if it does not compile."""
        if not isinstance(body, TemplateBody):
            try:
                body = TemplateBody.model_validate(body)
            except ValidationError as exc:
                raise invalid_request(exc.errors()) from None
        return await self.templates.put(name, body)

    async def get_template(self, name: str, *, version: int | None = None) -> StoredTemplate:
        return await self.templates.get(name, version)

    async def delete_template(self, name: str) -> None:
        await self.templates.delete(name)

    async def list_templates(self) -> list[StoredTemplate]:
        return await self.templates.list()

    async def render_template(
        self, name: str, data: Mapping[str, Any] | None = None, *, locale: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Every variant rendered with ``data``, without sending anything."""
        return await self.templates.preview(name, data or {}, locale)

    # -- inspecting and changing -----------------------------------------------------------

    async def get(
        self, notification_id: str, *, replayed: bool = False, timeline: bool = True
    ) -> NotificationView:
        row, events = await self.notifications.get(notification_id)
        return notification_view(
            row, events=events if timeline else None, with_content=timeline, replayed=replayed
        )

    async def cancel(self, notification_id: str, *, actor: str = "library") -> NotificationView:
        await self.notifications.cancel(notification_id, now=time.time(), actor=actor)
        return await self.get(notification_id)

    async def retry_dead(self, notification_id: str, *, actor: str = "library") -> NotificationView:
        await self.notifications.retry_dead(notification_id, now=time.time(), actor=actor)
        self.wakeup.notify()
        return await self.get(notification_id)

    async def record_delivery_report(self, report: DeliveryReport) -> str | None:
        """Apply a provider's delivery report (a status callback); returns the notification's
        id. None when no notification has that provider message id yet: the report is
        parked, and a worker applies it once the send is recorded (or deletes it after
        ``HERALD_PENDING_REPORTS_RETENTION``)."""
        found = await self.delivery_reports.apply(report, now=time.time())
        if found is not None:
            self.wakeup.notify()  # a failure may have queued a channel fallback
        return found

    # -- delivering ------------------------------------------------------------------------

    def new_worker(self, *, concurrency: int | None = None) -> Worker:
        s = self.settings
        return Worker(
            self.queue,
            Dispatcher(
                self.providers, s.retry_policy, s.max_lag, GoneUrls(self.webhooks), self.guards
            ),
            self.wakeup,
            WorkerSettings(
                concurrency=concurrency or s.worker_concurrency,
                batch_size=s.claim_batch_size,
                lease_seconds=s.lease_seconds,
                poll_interval=s.poll_interval,
                shutdown_timeout=s.shutdown_timeout,
                pending_reports_retention=s.pending_reports_retention,
            ),
            reports=self.delivery_reports,
        )

    async def run_worker(self, stop: asyncio.Event, *, concurrency: int | None = None) -> None:
        """Deliver until ``stop`` is set (``herald worker`` and ``herald serve``)."""
        listener = None
        if not self.db.is_sqlite:
            listener = PostgresListener(self.db.url, self.wakeup)
            listener.start()
        try:
            await self.new_worker(concurrency=concurrency).run(stop)
        finally:
            if listener is not None:
                await listener.stop()

    @contextlib.asynccontextmanager
    async def worker(self, *, concurrency: int | None = None) -> AsyncIterator[None]:
        """Deliver in the background for the duration of the ``async with`` block."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run_worker(stop, concurrency=concurrency))
        try:
            yield
        finally:
            stop.set()
            await task

    async def drain(self, *, concurrency: int | None = None) -> None:
        """Deliver everything due now, then return (handy in tests and scripts)."""
        stop = asyncio.Event()
        worker = self.new_worker(concurrency=concurrency)
        task = asyncio.create_task(worker.run(stop))
        try:
            await worker.wait_idle()
        finally:
            stop.set()
            await task


def _template_directories(settings: Settings) -> list[TemplateDirectory]:
    """The templates folder (if any), then the built-in templates it may override."""
    try:
        directories = [TemplateDirectory(BUILTIN_DIR, source="builtin")]
        path = settings.templates_path
        if path is not None:
            directories.insert(0, TemplateDirectory(path, reload=settings.templates_reload))
    except TemplateError as exc:
        raise ConfigurationError(f"templates: {exc}") from None
    return directories


def _sender_domain(providers: Mapping[Channel, Sequence[Provider]]) -> str:
    """Message-IDs name the first email provider's sender domain, else this host."""
    for provider in providers.get(Channel.EMAIL, ()):
        sender = getattr(provider, "sender", None)
        if isinstance(sender, Address):
            return sender.addr.rsplit("@", 1)[1]
    return socket.getfqdn() or "localhost"


def _request(
    request: NotificationRequest | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> NotificationRequest:
    if isinstance(request, NotificationRequest):
        return request
    data = {**(request or {}), **{k: v for k, v in fields.items() if v is not None}}
    return validate_request(data)


def validate_request(data: Mapping[str, Any]) -> NotificationRequest:
    """Parse a request, turning pydantic's errors into Herald's field-level InvalidRequest."""
    try:
        return NotificationRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None
