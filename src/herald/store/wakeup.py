"""Waking workers when work arrives: an in-process event, plus LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

CHANNEL = "herald_queue"


class Wakeup:
    """An edge-triggered signal: ``notify`` wakes whoever is in ``wait``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, max_wait: float) -> bool:
        """Wait for a signal (or the timeout); True if signalled."""
        try:
            await asyncio.wait_for(self._event.wait(), max_wait)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class PostgresListener:
    """Relays ``NOTIFY herald_queue`` from other processes to a :class:`Wakeup`.

    Reconnects with backoff; while disconnected the worker's polling still finds work.
    """

    def __init__(self, url: str, wakeup: Wakeup) -> None:
        parsed = make_url(url)
        self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wakeup = wakeup
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="herald-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listen_connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            lost = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, lambda *_args: self._wakeup.notify())
                self._wakeup.notify()  # catch up on anything sent while we were away
                await lost.wait()
                log.warning("listen_connection_lost")
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
