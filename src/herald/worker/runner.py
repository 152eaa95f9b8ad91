"""The worker: one fetcher claims batches, N senders deliver, one writer records outcomes.

    fetcher ──claim N──> ready queue ──> senders (concurrency) ──> writer ──complete N──> DB
       ▲                                                              │
       └────────── wakeup (in-process / LISTEN) ── capacity freed ◄───┘

Rows stay "held" from claim until their outcome is written; held leases are renewed in
the background, so only a dead (or stuck) worker's rows ever return to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from dataclasses import dataclass

import structlog
from sqlalchemy import exc as sa_exc

from herald import metrics
from herald.store.delivery_reports import DeliveryReportStore
from herald.store.queue import QueueStore
from herald.store.records import Claimed
from herald.store.wakeup import Wakeup
from herald.worker.dispatch import Dispatcher, Verdict, release

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 64
    batch_size: int = 256
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_timeout: float = 30.0
    #: Outcomes wait this long to be written together (the send times are already taken,
    #: so latency figures don't include it; it only delays what GET shows, by milliseconds).
    flush_interval: float = 0.01
    #: Seconds a delivery report on an unknown message stays parked before it is deleted.
    pending_reports_retention: float = 86400.0


def worker_name() -> str:
    return f"worker:{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(
        self,
        queue: QueueStore,
        dispatcher: Dispatcher,
        wakeup: Wakeup,
        settings: WorkerSettings,
        *,
        name: str | None = None,
        reports: DeliveryReportStore | None = None,
    ) -> None:
        self._queue = queue
        self._reports = reports
        self._dispatcher = dispatcher
        self._wakeup = wakeup
        self._settings = settings
        self.name = name or worker_name()
        self._ready: asyncio.Queue[Claimed] = asyncio.Queue()
        self._held: dict[str, Claimed] = {}
        self._inflight: dict[str, Claimed] = {}
        self._pending: list[Verdict] = []
        self._pending_signal = asyncio.Event()
        self._space = asyncio.Event()
        self._stopping = False
        self._closing = False
        self._stop_upkeep = asyncio.Event()
        self._drained = asyncio.Event()
        self._idle = asyncio.Event()
        #: Outcome batches written so far: a write that lands while a claim is in flight
        #: may have scheduled a retry that the claim could not see yet.
        self._writes = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully."""
        log.info("worker_started", worker=self.name, concurrency=self._settings.concurrency)
        senders = [
            asyncio.create_task(self._send_loop(), name=f"herald-send-{n}")
            for n in range(self._settings.concurrency)
        ]
        writer = asyncio.create_task(self._write_loop(), name="herald-write")
        fetcher = asyncio.create_task(self._fetch_loop(), name="herald-fetch")
        upkeep = asyncio.create_task(self._upkeep_loop(), name="herald-upkeep")
        try:
            await stop.wait()
        finally:
            await self._shutdown(fetcher, upkeep, senders, writer)
        log.info("worker_stopped", worker=self.name)

    async def wait_idle(self) -> None:
        """Return once nothing is due, held or waiting to be written."""
        await self._idle.wait()

    async def _shutdown(
        self,
        fetcher: asyncio.Task[None],
        upkeep: asyncio.Task[None],
        senders: list[asyncio.Task[None]],
        writer: asyncio.Task[None],
    ) -> None:
        # Let the fetcher finish a claim in progress (cancelling it could strand rows
        # committed as "sending" until their lease expires), then stop it.
        self._stopping = True
        self._stop_upkeep.set()
        self._space.set()
        self._wakeup.notify()
        await asyncio.gather(fetcher, upkeep, return_exceptions=True)
        # Claimed but not started: back to the queue at once.
        while not self._ready.empty():
            row = self._ready.get_nowait()
            self._record(release(row, "released: the worker is shutting down"))
        if self._inflight:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._settings.shutdown_timeout)
        interrupted = list(self._inflight.values())
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for row in interrupted:
            # Interrupted mid-delivery: the provider may have it already.
            self._record(release(row, "released mid-delivery at shutdown", possibly_sent=True))
        self._inflight.clear()
        # The writer is never cancelled (that could drop a batch mid-write): it is told to
        # finish what is pending and stop.
        self._closing = True
        self._pending_signal.set()
        await writer

    # -- fetching --------------------------------------------------------------------------

    @property
    def _capacity(self) -> int:
        return self._settings.concurrency + self._settings.batch_size

    async def _fetch_loop(self) -> None:
        last_promotion = -float("inf")
        drained = True  # the last claim came back short: the queue may be empty
        while not self._stopping:
            free = self._capacity - len(self._held)
            # Keep the senders fed, but claim in worthwhile batches under load.
            if free <= 0 or (self._ready.qsize() >= self._settings.concurrency and free < 32):
                self._space.clear()
                await self._space.wait()
                continue
            if self._stopping:
                return
            limit = min(free, self._settings.batch_size)
            writes_before = self._writes
            try:
                # Scheduled and retrying rows join the queue when due: checked whenever the
                # queue runs dry, and at least every poll interval so they never starve
                # behind a long backlog.
                promoted = 0
                if drained or time.monotonic() - last_promotion >= self._settings.poll_interval:
                    promoted = await self._queue.promote_due(now=time.time(), actor="scheduler")
                    last_promotion = time.monotonic()
                rows = await self._queue.claim(
                    limit=limit,
                    now=time.time(),
                    lease_seconds=self._settings.lease_seconds,
                    token=secrets.randbits(63),
                    actor=self.name,
                )
            except Exception as exc:
                log.warning("claim_failed", worker=self.name, error=str(exc))
                await asyncio.sleep(self._settings.poll_interval)
                continue
            for row in rows:
                self._held[row.id] = row
                self._ready.put_nowait(row)
            drained = len(rows) < limit
            if rows or promoted:
                self._idle.clear()
                continue
            # Idle only if nothing is held or waiting to be written, and no outcome landed
            # while this claim ran: any of them may schedule a retry that is due at once
            # (the writer wakes us once it is written).
            if not self._held and not self._pending and self._writes == writes_before:
                self._idle.set()
            await self._wakeup.wait(self._settings.poll_interval)

    # -- sending ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            row = await self._ready.get()
            self._inflight[row.id] = row
            try:
                verdict = await self._dispatcher.deliver(row)
            except Exception as exc:  # a bug must not lose the row: retry it with backoff
                log.exception("deliver_crashed", notification_id=row.id)
                verdict = self._dispatcher.crashed(row, exc)
            finally:
                self._inflight.pop(row.id, None)
                if not self._inflight:
                    self._drained.set()
            self._record(verdict)

    def _record(self, verdict: Verdict) -> None:
        self._pending.append(verdict)
        self._pending_signal.set()

    # -- writing outcomes ------------------------------------------------------------------

    async def _write_loop(self) -> None:
        delay, failures = 0.05, 0
        while True:
            await self._pending_signal.wait()
            self._pending_signal.clear()
            if not self._closing and len(self._pending) < self._settings.batch_size:
                await asyncio.sleep(self._settings.flush_interval)
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write_isolating(batch)
                    delay, failures = 0.05, 0
                except Exception as exc:
                    # Keep them and try again; leases are renewed meanwhile.
                    failures += 1
                    log.warning("outcome_write_failed", error=str(exc), rows=len(batch))
                    self._pending = batch + self._pending
                    if self._closing and failures >= 10:
                        # Not lost: the leases expire and the rows are delivered again.
                        log.error("outcomes_not_written_at_shutdown", rows=len(self._pending))
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            # Written outcomes may have scheduled immediate retries, and freed capacity.
            self._wakeup.notify()
            if self._closing:
                return

    async def _write_isolating(self, batch: list[Verdict]) -> None:
        """Write a batch; if the database refuses its content (not a connection problem),
        split it until the refused outcome is alone, and drop that one so it cannot block
        every outcome after it. Its row keeps its lease until the lease expires, and is then
        retried like a crashed worker's (or dead once its attempts are used up)."""
        try:
            await self._write(batch)
        except (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.ProgrammingError) as exc:
            if len(batch) > 1:
                middle = len(batch) // 2
                await self._write_isolating(batch[:middle])
                await self._write_isolating(batch[middle:])
                return
            (verdict,) = batch
            metrics.OUTCOMES_DROPPED.inc()
            log.error(
                "outcome_refused_by_database",
                notification_id=verdict.outcome["id"],
                status=verdict.outcome["status"],
                error=str(exc),
            )

    async def _write(self, batch: list[Verdict]) -> None:
        applied = await self._queue.complete(
            [v.outcome for v in batch],
            [event for v in batch for event in v.events],
            actor=self.name,
            captures=[v.capture for v in batch if v.capture is not None],
            gone=[v.gone for v in batch if v.gone is not None],
            parts=[part for v in batch for part in v.parts],
        )
        for verdict in batch:
            nid = verdict.outcome["id"]
            self._held.pop(nid, None)
            if nid not in applied:
                metrics.LEASES_LOST.inc()
                log.warning(
                    "outcome_fenced",
                    notification_id=nid,
                    status=verdict.outcome["status"],
                    reason="lease expired and the notification was claimed again",
                )
        self._writes += 1
        self._space.set()

    # -- upkeep ----------------------------------------------------------------------------

    async def _upkeep_loop(self) -> None:
        """Renew held leases and return expired ones (a dead worker's) to the queue; apply
        parked delivery reports whose send is now recorded, and drop stale ones."""
        every = self._settings.lease_seconds / 3
        while not self._stop_upkeep.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_upkeep.wait(), every)
                return
            now = time.time()
            tokens = sorted({row.lease_token for row in self._held.values()})
            try:
                await self._queue.renew(tokens, until=now + self._settings.lease_seconds)
                reaped = await self._queue.reap(now=now, limit=1000, actor="reaper")
            except Exception as exc:
                log.warning("lease_upkeep_failed", error=str(exc))
            else:
                if reaped:
                    log.warning("leases_expired", count=len(reaped))
                    self._wakeup.notify()
            if self._reports is not None:
                await self._sweep_reports(self._reports, now)

    async def _sweep_reports(self, reports: DeliveryReportStore, now: float) -> None:
        try:
            applied, deleted = await reports.sweep(
                now=now, retention=self._settings.pending_reports_retention
            )
        except Exception as exc:
            log.warning("delivery_report_sweep_failed", error=str(exc))
            return
        if applied:
            log.info("parked_delivery_reports_applied", count=applied)
            self._wakeup.notify()  # a failure may have queued a channel fallback
        if deleted:
            log.warning("parked_delivery_reports_expired", count=deleted)
